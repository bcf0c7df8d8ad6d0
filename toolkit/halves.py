"""A large .xlsx sheet cut into two workbooks of about half its rows each, for two processes to parse.

fastexcel parses a sheet on one core, and always the whole sheet: asking for fewer rows parses them
all (the README's Performance section). Two workbooks, each holding half the rows, can be parsed by
two processes at once: the sheet's XML is inflated once, cut at a ``<row>`` tag near its middle,
and written out twice, uncompressed:

- the *first* workbook holds the sheet up to the cut, everything above the rows included;
- the *second* holds the header row, renumbered to the row just above the cut, then the rest of
  the sheet. Cells keep their own references (``r="C500001"``), so each row keeps its Excel number,
  and the rows above the cut are not there to be parsed.

The other members of the archive (workbook, styles, shared strings, other sheets) are copied
byte for byte. The sheet's ``<dimension>`` is dropped from both: calamine would reserve room for
the whole sheet's cells in each half.

Only the cut is decided here; ``toolkit.read`` reads both halves and joins them only where that
gives what the read of the whole sheet gives, else reads the whole sheet. Anything unexpected
(tags with a namespace prefix, a row without its number, a sheet over 4 GiB) gives None: a
wrong guess must only ever cost time, never a row.
"""

from __future__ import annotations

import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from toolkit import xlsx

#: Below this much sheet XML (uncompressed), one process reads faster: a second one costs ~0.4 s to
#: start and import, which the half it parses must win back. The 1M-row benchmark sheet is 310 MB,
#: its 100k-row one 31 MB (0.3 s to read whole).
SPLIT_FROM_BYTES = 96 * 1024**2

_PIECE = 4 * 1024 * 1024  # inflated at a time
# Where the cut is looked for, as a share of the XML: past the middle, because the helper's half is
# parsed later (it starts after the cut) and sent back (~0.2 s for half a million rows).
_CUT_AT = 0.55
_HEAD_LIMITS = (1024**2, 16 * 1024**2, 64 * 1024**2)  # the header row must end within the last
_ENCRYPTED = 0x1
_ZIP32_LIMIT = 0xFFFF_FFFF  # sizes and offsets beyond need zip64, which this writer does not write
_SHEET_DATA = re.compile(rb"<sheetData(?:\s[^>]*)?>")
_DIMENSION = re.compile(rb"<dimension\b[^>]*/>")
_ROW_NUMBER = re.compile(rb'<row\b[^>]*?\sr="(\d+)"[^>]*>')
_CELL_ROW = re.compile(rb'(<c\b[^>]*?\sr="[A-Z]{1,3})(\d+)(")')
_ENDING = b"</sheetData></worksheet>"
_VALUE = re.compile(rb"<(?:v|is)>")
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header (APPNOTE 4.3.7)
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # central directory header (APPNOTE 4.3.12)
_END = struct.Struct("<4s4H2LH")  # end of central directory record (APPNOTE 4.3.16)
_UTF8_NAME = 0x800


@dataclass(frozen=True)
class Halves:
    """The two workbooks: ``first`` has the sheet's rows above ``cut_row``, ``second`` its header
    row at ``cut_row - 1`` and the rows from ``cut_row`` on."""

    first: Path
    second: Path
    cut_row: int


def cut(path: Path, part: str, *, header_row: int, folder: Path) -> Halves | None:
    """Write the two halves of sheet ``part`` of the .xlsx at ``path`` into ``folder``; None where
    the sheet cannot be cut as described above (the caller then reads it whole)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            pieces = _inflated(archive, part)
    except (KeyError, OSError, zipfile.BadZipFile, ValueError, EOFError):
        return None
    total = sum(len(piece) for piece in pieces)
    if total > _ZIP32_LIMIT:
        return None
    if any(info.flag_bits & _ENCRYPTED for info in infos):
        return None
    xml = _Pieces(pieces)
    for limit in _HEAD_LIMITS:  # the header row is near the top: look further only if it is not there
        head = xml.prefix(limit)
        opening = _SHEET_DATA.search(head)
        header = None if opening is None else _row_element(head, opening.end(), header_row)
        if header is not None or limit >= total:
            break
    if opening is None or header is None:
        return None  # no sheet data (or its tags have a namespace prefix), or no header row to carry over
    at = xml.find(b"<row", max(int(total * _CUT_AT), header[1]))
    tag = None if at < 0 else _ROW_NUMBER.match(xml.slice(at, at + 4096))
    if tag is None:
        return None
    cut_row = int(tag[1])
    if cut_row - 1 <= header_row:
        return None
    top = _DIMENSION.sub(b"", head[: opening.end()])
    renumbered = _renumbered(head[header[0] : header[1]], header_row, cut_row - 1)
    if renumbered is None:
        return None
    first, second = folder / "first.xlsx", folder / "second.xlsx"
    try:
        _write(path, infos, part, first, [top, *xml.pieces(opening.end(), at), _ENDING])
        _write(path, infos, part, second, [top, renumbered, *xml.pieces(at, total)])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # no room in the temporary folder, say: the sheet is read whole
    return Halves(first, second, cut_row)


def _inflated(archive: zipfile.ZipFile, part: str) -> list[bytes]:
    found = []
    with xlsx.open_member(archive, part) as stream:
        while piece := stream.read(_PIECE):
            found.append(piece)
    return found


def _row_element(head: bytes, start: int, number: int) -> tuple[int, int] | None:
    """(start, end) of the ``<row>`` element numbered ``number`` in ``head`` after ``start``."""
    for tag in _ROW_NUMBER.finditer(head, start):
        found = int(tag[1])
        if found > number:
            return None
        if found == number:
            if tag[0].endswith(b"/>"):
                return None  # an empty header row: nothing to carry over
            end = head.find(b"</row>", tag.end())
            if end < 0 or not _VALUE.search(head, tag.end(), end):
                return None  # fastexcel takes the first row holding a value for the header
            return tag.start(), end + len(b"</row>")
    return None


def _renumbered(row: bytes, old: int, new: int) -> bytes | None:
    """The row element ``row`` (number ``old``) as row ``new``: its own number and its cells'."""
    tag = _ROW_NUMBER.match(row)
    if tag is None or int(tag[1]) != old:
        return None
    number = str(new).encode()
    row_tag = tag[0][: tag.start(1) - tag.start()] + number + tag[0][tag.end(1) - tag.start() :]
    cells = row[tag.end() :]
    if any(int(found[2]) != old for found in _CELL_ROW.finditer(cells)):
        return None
    return row_tag + _CELL_ROW.sub(lambda found: found[1] + number + found[3], cells)


class _Pieces:
    """The inflated XML as the pieces it came in, searched and sliced without joining them all."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces
        self._starts = []
        at = 0
        for piece in pieces:
            self._starts.append(at)
            at += len(piece)
        self._total = at

    def prefix(self, limit: int) -> bytes:
        return self.slice(0, min(limit, self._total))

    def slice(self, start: int, stop: int) -> bytes:
        return b"".join(bytes(view) for view in self.pieces(start, min(stop, self._total)))

    def pieces(self, start: int, stop: int) -> list[memoryview]:
        """Views of the bytes from ``start`` to ``stop``, in order."""
        found = []
        for begin, piece in zip(self._starts, self._pieces, strict=True):
            end = begin + len(piece)
            if end <= start or begin >= stop:
                continue
            found.append(memoryview(piece)[max(start - begin, 0) : min(stop, end) - begin])
        return found

    def find(self, needle: bytes, start: int) -> int:
        """The first place of ``needle`` at or after ``start``, across pieces; -1 if none."""
        step = _PIECE
        while start < self._total:
            window = self.slice(start, start + step + len(needle))
            found = window.find(needle)
            if found >= 0:
                return start + found
            start += step
        return -1


def _write(source: Path, infos: list[zipfile.ZipInfo], part: str, target: Path, data: list[bytes | memoryview]) -> None:
    """A zip at ``target``: the members of ``source`` in order, raw, with ``part`` stored as ``data``."""
    central = []
    with open(source, "rb") as original, open(target, "wb") as out:
        for info in infos:
            name = info.filename.encode("utf-8" if info.flag_bits & _UTF8_NAME else "cp437")
            offset = out.tell()
            if info.filename == part:
                crc, size = 0, 0
                for chunk in data:
                    crc = xlsx.crc32(chunk, crc)
                    size += len(chunk)
                method, packed, flags = zipfile.ZIP_STORED, size, info.flag_bits & _UTF8_NAME
                body: list[bytes | memoryview] = data
            else:
                crc, size, packed, method = info.CRC, info.file_size, info.compress_size, info.compress_type
                flags = info.flag_bits & (_UTF8_NAME | 0x6)  # the name's encoding, deflate's level bits
                body = [xlsx.raw_member(original, info)]
            if offset > _ZIP32_LIMIT or size > _ZIP32_LIMIT:
                raise ValueError("too large for a zip without zip64")
            dos_time, dos_date = _dos_time(info.date_time)
            out.write(_LOCAL.pack(b"PK\x03\x04", 20, flags, method, dos_time, dos_date, crc, packed, size, len(name), 0))
            out.write(name)
            for chunk in body:
                out.write(chunk)
            central.append(
                _CENTRAL.pack(
                    b"PK\x01\x02", 20, 20, flags, method, dos_time, dos_date, crc, packed, size, len(name), 0, 0, 0, 0, 0, offset
                )
                + name
            )
        start = out.tell()
        for entry in central:
            out.write(entry)
        directory = out.tell() - start
        out.write(_END.pack(b"PK\x05\x06", 0, 0, len(central), len(central), directory, start, 0))


def _dos_time(date_time: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    year, month, day, hour, minute, second = date_time
    return hour << 11 | minute << 5 | second // 2, max(year - 1980, 0) << 9 | month << 5 | day
