"""A large .xlsx sheet cut into two workbooks of about half its rows each, for two processes to parse.

fastexcel parses a sheet on one core, and always the whole sheet: asking for fewer rows parses them
all (the README's Performance section). Two workbooks, each holding half the rows, can be parsed by
two processes at once: the sheet's XML is inflated once, as a stream, cut at the first ``<row>``
tag past 55% of it, and written out as two workbooks, the sheet stored uncompressed:

- the *first* workbook holds the sheet up to the cut, everything above the rows included; it is
  complete, and can be read, while the second is still being written;
- the *second* holds the header row, renumbered to the row just above the cut, then the rest of
  the sheet. Cells keep their own references (``r="C500001"``), so each row keeps its Excel number,
  and the rows above the cut are not there to be parsed.

The other members of the archive (workbook, styles, shared strings, other sheets) are copied
byte for byte. The sheet's ``<dimension>`` is dropped from both: it states the whole sheet's range,
not a half's (calamine reads the cells either way: kept or dropped, a half took the same time and
memory, one-off).

Only the cut is decided here; ``toolkit.read`` reads both halves and joins them only where that
gives what the read of the whole sheet gives, else reads the whole sheet. Anything unexpected
(tags with a namespace prefix, a row without its number, a sheet over 4 GiB) gives None: a
wrong guess must only ever cost time, never a row.
"""

from __future__ import annotations

import re
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from toolkit import xlsx

#: Below this much sheet XML (uncompressed), one process reads as fast: the helper costs ~0.5 s to
#: start and import, which its half must win back. On the benchmark's loans sheets (read_rows,
#: medians of 5, one-off): 200k rows (59 MiB) 0.69 s in halves and whole alike, 300k (88 MiB)
#: 0.86 s against 1.04 s, 1M (296 MiB) 2.1-2.3 s against 3.4-3.5 s; 100k (30 MiB) 0.52 s against 0.35 s.
SPLIT_FROM_BYTES = 64 * 1024**2

_PIECE = 4 * 1024 * 1024  # inflated at a time
_TAG_ROOM = 4096  # the row tag at the cut is read whole: tags are ~100 bytes (longer: not cut)
# Where the cut is looked for, as a share of the XML: past the middle, because the helper's half is
# parsed later (after its imports and the whole cut, where this process reads its half from the
# moment it is written) and sent back (~0.2 s for half a million rows). On the 1M-row benchmark
# sheet, 55% had both halves done within 0.05 s of each other (2.1-2.3 s, three one-off runs).
_CUT_AT = 0.55
_HEAD_LIMITS = (1024**2, 16 * 1024**2, 64 * 1024**2)  # the header row must end within the last
_ZIP32_LIMIT = 0xFFFF_FFFF  # sizes and offsets beyond need zip64, which this writer does not write
_SHEET_DATA = re.compile(rb"<sheetData(?:\s[^>]*)?>")
_DIMENSION = re.compile(rb"<dimension\b[^>]*/>")
_ROW_NUMBER = re.compile(rb'<row\b[^>]*?\sr="(\d+)"[^>]*>')
_CELL_ROW = re.compile(rb'(<c\b[^>]*?\sr="[A-Z]{1,3})(\d+)(")')
_ENDING = b"</sheetData></worksheet>"
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
    header_values: int  # value tags in the second's header row (see xlsx.VALUE_TAGS)


def cut(
    path: Path, part: str, *, header_row: int, folder: Path, first_ready: Callable[[Path], None] | None = None
) -> Halves | None:
    """Write the two halves of sheet ``part`` of the .xlsx at ``path`` into ``folder``; None where
    the sheet cannot be cut as described above (the caller then reads it whole).

    The XML is streamed: ``first_ready(path)`` is called once the first workbook is complete, while
    the second is still being written, so that its read can start (and is called even when the
    second then fails: None is returned after it).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if any(info.flag_bits & xlsx.ENCRYPTED for info in infos):
                return None
            total = archive.getinfo(part).file_size
            if total > _ZIP32_LIMIT:
                return None
            with xlsx.open_member(archive, part) as stream:
                return _cut(stream, total, path, infos, part, header_row, folder, first_ready)
    except (KeyError, OSError, zipfile.BadZipFile, ValueError, EOFError):
        return None  # an unreadable member, or no room in the temporary folder: read whole


def _cut(
    stream: xlsx.Readable,
    total: int,
    path: Path,
    infos: list[zipfile.ZipInfo],
    part: str,
    header_row: int,
    folder: Path,
    first_ready: Callable[[Path], None] | None,
) -> Halves | None:
    data, done = b"", 0  # data: the XML read and not written yet, from offset ``done``
    for limit in _HEAD_LIMITS:  # the header row is near the top: read further only if it is not there
        while len(data) < limit and (piece := stream.read(_PIECE)):
            data += piece
        opening = _SHEET_DATA.search(data)
        header = None if opening is None else _row_element(data, opening.end(), header_row)
        if header is not None or len(data) < limit:
            break
    if opening is None or header is None:
        return None  # no sheet data (or its tags have a namespace prefix), or no header row to carry over
    top = _DIMENSION.sub(b"", data[: opening.end()])
    header_xml = data[header[0] : header[1]]
    search_from = max(int(total * _CUT_AT), header[1])
    first = folder / "first.xlsx"
    with _StoredZip(first, path, infos, part) as out:
        out.write(top)
        written = opening.end()  # of data
        while True:
            at = data.find(b"<row", max(search_from - done, written))
            if at >= 0 and len(data) - at < _TAG_ROOM and (piece := stream.read(_PIECE)):
                data += piece  # the whole tag must be there to be read
                continue
            if at >= 0:
                break
            keep = max(len(data) - len(b"<row") + 1, written)  # a tag may start at the end
            out.write(memoryview(data)[written:keep])
            data, done, written = data[keep:], done + keep, 0
            if not (piece := stream.read(_PIECE)):
                return None  # no row past the middle: too few rows to cut
            data += piece
        tag = _ROW_NUMBER.match(data, at)
        cut_row = int(tag[1]) if tag is not None else 0
        renumbered = _renumbered(header_xml, header_row, cut_row - 1) if cut_row - 1 > header_row else None
        if renumbered is None:
            return None
        out.write(memoryview(data)[written:at])
        out.write(_ENDING)
    if first_ready is not None:
        first_ready(first)
    second = folder / "second.xlsx"
    with _StoredZip(second, path, infos, part) as out:
        out.write(top)
        out.write(renumbered)
        out.write(memoryview(data)[at:])
        del data
        while piece := stream.read(_PIECE):
            out.write(piece)
    header_values = xlsx.TagCount(xlsx.VALUE_TAGS)
    header_values.add(renumbered)
    return Halves(first, second, cut_row, header_values.total)


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
            if end < 0 or all(head.find(value, tag.end(), end) < 0 for value in xlsx.VALUE_TAGS):
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


class _StoredZip:
    """A zip written in one pass: the members of ``source`` in order, copied raw, except ``part``,
    whose bytes are written (stored, uncompressed) between the members before and after it."""

    def __init__(self, target: Path, source: Path, infos: list[zipfile.ZipInfo], part: str) -> None:
        self._out = open(target, "wb")  # noqa: SIM115 - closed by __exit__
        self._source = open(source, "rb")  # noqa: SIM115 - closed by __exit__
        self._central: list[bytes] = []
        index = [info.filename for info in infos].index(part)
        self._part, self._after = infos[index], infos[index + 1 :]
        self._crc = self._size = 0
        for info in infos[:index]:
            self._copy(info)
        self._part_at, self._part_entry = self._out.tell(), len(self._central)
        self._central.append(self._header(self._part, 0, 0))  # its CRC and size are written in at the end

    def write(self, data: bytes | memoryview) -> None:
        self._crc = xlsx.crc32(data, self._crc)
        self._size += len(data)
        self._out.write(data)

    def __enter__(self) -> _StoredZip:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None) -> None:
        try:
            if kind is None:
                self._finish()
        finally:
            self._out.close()
            self._source.close()

    def _finish(self) -> None:
        if self._size > _ZIP32_LIMIT:
            raise ValueError("too large for a zip without zip64")
        end = self._out.tell()
        self._out.seek(self._part_at)
        self._central[self._part_entry] = self._header(self._part, self._crc, self._size)
        self._out.seek(end)
        for info in self._after:
            self._copy(info)
        start = self._out.tell()
        for entry in self._central:
            self._out.write(entry)
        size = self._out.tell() - start
        self._out.write(_END.pack(b"PK\x05\x06", 0, 0, len(self._central), len(self._central), size, start, 0))

    def _copy(self, info: zipfile.ZipInfo) -> None:
        raw = xlsx.raw_member(self._source, info)
        self._central.append(self._header(info, info.CRC, info.file_size, method=info.compress_type, packed=len(raw)))
        self._out.write(raw)

    def _header(
        self, info: zipfile.ZipInfo, crc: int, size: int, *, method: int = zipfile.ZIP_STORED, packed: int | None = None
    ) -> bytes:
        """Write the member's local header here; its central directory entry is returned."""
        name = info.filename.encode("utf-8" if info.flag_bits & _UTF8_NAME else "cp437")
        packed = size if packed is None else packed
        # The name's encoding, and deflate's level bits for a member copied compressed.
        flags = info.flag_bits & (_UTF8_NAME | (0x6 if method == zipfile.ZIP_DEFLATED else 0))
        offset = self._out.tell()
        if offset > _ZIP32_LIMIT:
            raise ValueError("too large for a zip without zip64")
        dos_time, dos_date = _dos_time(info.date_time)
        self._out.write(_LOCAL.pack(b"PK\x03\x04", 20, flags, method, dos_time, dos_date, crc, packed, size, len(name), 0))
        self._out.write(name)
        entry = _CENTRAL.pack(
            b"PK\x01\x02", 20, 20, flags, method, dos_time, dos_date, crc, packed, size, len(name), 0, 0, 0, 0, 0, offset
        )
        return entry + name


def _dos_time(date_time: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    year, month, day, hour, minute, second = date_time
    return hour << 11 | minute << 5 | second // 2, max(year - 1980, 0) << 9 | month << 5 | day
