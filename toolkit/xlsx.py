"""A quick look inside .xlsx/.xlsm files, before and beside the full read by fastexcel.

The fast typed read (see ``toolkit.read``) needs two things fastexcel cannot give without parsing
the whole sheet, which costs as much as reading it (and ``toolkit.limits`` finds the sheet it
judges with ``sheets``, so that the part judged is the part read):

- the first rows as text, to find the header row *before* the typed read: the sheet's XML is
  streamed and the stream closed after those rows;
- where the boolean cells are: fastexcel's type guess reads TRUE/FALSE in a column of numbers as
  1/0 without a word, so the sheet's XML is scanned for boolean cells. The scan runs on another
  thread while fastexcel parses (both release the GIL), so it costs no time, only the CPU of the
  second core (kept small: see _Inflating and _mark_starts);
- where the duration cells are (numbers styled as elapsed time, ``[h]:mm:ss``): fastexcel's text
  read shows them as date-times on Excel's day zero (36 hours as ``1900-01-01 12:00:00``), which a
  date column would take. Only a workbook with an elapsed-time style has its sheet scanned.

Anything unexpected returns None, and the caller falls back to the slower text read: a wrong
guess here must only ever cost time, never a row.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO, Protocol
from xml.etree import ElementTree


class Readable(Protocol):
    """What the scans read: a zip member's stream (zipfile's, or _Inflating)."""

    def read(self, size: int, /) -> bytes: ...


_inflate: ModuleType
try:  # ISA-L inflates a sheet's XML ~4x faster than zlib (see _Inflating); zlib where it has no wheel
    from isal import isal_zlib as _inflate
except ImportError:  # a platform without an isal wheel (pyproject.toml installs it only where there is one)
    _inflate = zlib

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_CELL_REF = re.compile(r"^([A-Z]{1,3})(\d+)$")
#: Rows a head may span before the probe gives up (the table then starts very far down).
MAX_HEAD_ROWS = 10_000
#: Shared strings read while looking for the head's strings (they come first in practice).
MAX_SHARED_STRINGS = 500_000
_CHUNK = 4 * 1024 * 1024
# workbook.xml and its relationships name the sheets; far larger ones are not parsed.
_INDEX_BYTES = 16 * 1024**2
_BOOL_MARKS = (b' t="b"', b" t='b'")
_BOOL_ANCHOR = 4  # the b of each mark: a byte rare in a sheet's XML (see _mark_starts)
# OOXML writes characters XML cannot hold (NUL, control characters, CR) as _xHHHH_, and a literal
# "_x" as _x005F_x: undone here as fastexcel does, or a header read here would not be the same text.
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")


@dataclass(frozen=True)
class SheetPart:
    name: str
    state: str  # visible, hidden, veryHidden
    part: str  # path of the sheet's XML inside the zip


@dataclass(frozen=True)
class Head:
    """The first rows of a sheet as text: ``rows[i]`` is Excel row ``i + 1``, letter -> text."""

    rows: list[dict[str, str]]
    errors: dict[tuple[int, str], str]  # (Excel row, letter) -> error text, for error cells


def column_number(letters: str) -> int:
    """A column's letters as Excel numbers it: 'A' -> 1, 'Z' -> 26, 'AA' -> 27 (any case)."""
    number = 0
    for char in letters.upper():
        number = number * 26 + ord(char) - 64
    return number


def sheets(source: str | Path | zipfile.ZipFile) -> list[SheetPart] | None:
    """The workbook's sheets in order, with their visibility and XML part, or None when
    ``xl/workbook.xml`` and its relationships do not tell them (missing, unparsable, too big).

    ``source`` is a path, or an archive already open: then what fails in reading it (a corrupt
    member) is raised for the caller to report, where a path gives None.
    """
    if isinstance(source, zipfile.ZipFile):
        return _sheets(source)
    try:
        with zipfile.ZipFile(source) as archive:
            return _sheets(archive)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return None


def _sheets(archive: zipfile.ZipFile) -> list[SheetPart] | None:
    members = _members(archive)
    book, rels = members.get("xl/workbook.xml"), members.get("xl/_rels/workbook.xml.rels")
    if book is None or rels is None or max(book.file_size, rels.file_size) > _INDEX_BYTES:
        return None
    try:  # expat (2.4.1 and later) refuses entity-expansion bombs; nothing external is fetched
        book_root = ElementTree.fromstring(archive.read(book))
        rels_root = ElementTree.fromstring(archive.read(rels))
    except ElementTree.ParseError:
        return None
    # Matched by local name: strict OOXML and some writers use other namespaces, or prefixes.
    targets = {e.get("Id"): e.get("Target", "") for e in rels_root.iter() if _local(e.tag) == "Relationship"}
    found = []
    for sheet in (e for e in book_root.iter() if _local(e.tag) == "sheet"):
        target, name = targets.get(_attribute(sheet, "id")), sheet.get("name")
        if not target or name is None:
            return None
        # Targets are relative to xl/ unless absolute ("/xl/worksheets/sheet1.xml"); member names
        # are matched whatever their case, as Excel does.
        part = _normalise(target.lstrip("/") if target.startswith("/") else f"xl/{target}")
        info = members.get(part.casefold())
        found.append(SheetPart(name, sheet.get("state", "visible"), info.filename if info is not None else part))
    return found or None


def member(archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo | None:
    """The archive's member of that name, whatever its case."""
    return _members(archive).get(name.casefold())


def _members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    found: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        found.setdefault(info.filename.casefold(), info)
    return found


def _normalise(part: str) -> str:
    pieces: list[str] = []
    for piece in part.split("/"):
        if piece == "..":
            if pieces:
                pieces.pop()
        elif piece not in ("", "."):
            pieces.append(piece)
    return "/".join(pieces)


def _attribute(element: ElementTree.Element, local: str) -> str | None:
    return next((v for k, v in element.attrib.items() if _local(k) == local), None)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def head(path: str, part: str, *, rows: int) -> Head | None:
    """The sheet's first ``rows`` rows as text, or None when they cannot be read reliably.

    Rows past ``rows`` are read until the first row holding a value, so that a table starting
    far down still shows its first row (the header search extends to it, as in ``toolkit.match``).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            cells = _head_cells(archive, part, rows)
            if cells is None:
                return None
            wanted = {int(v) for (_, kind, v) in cells.values() if kind == "s" and v.isdigit()}
            shared = _shared_strings(archive, max(wanted)) if wanted else {}
            if shared is None:
                return None
    except (KeyError, OSError, zipfile.BadZipFile, ElementTree.ParseError, ValueError, EOFError):
        return None
    last = max((r for r, _ in cells), default=0)
    table: list[dict[str, str]] = [{} for _ in range(last)]
    errors: dict[tuple[int, str], str] = {}
    for (row, letter), (text, kind, value) in cells.items():
        if kind == "s":
            if not value.isdigit() or int(value) not in shared:
                return None
            text = shared[int(value)]
        elif kind == "e":
            errors[(row, letter)] = text
        if text:
            table[row - 1][letter] = text
    return Head(table, errors)


def _head_cells(archive: zipfile.ZipFile, part: str, rows: int) -> dict[tuple[int, str], tuple[str, str, str]] | None:
    """(Excel row, letter) -> (text, type, raw value) for the head's cells; shared strings unresolved."""
    cells: dict[tuple[int, str], tuple[str, str, str]] = {}
    first_filled: int | None = None
    with archive.open(part) as stream:
        for _, element in ElementTree.iterparse(stream, events=("end",)):
            if element.tag != f"{_MAIN}row":
                continue
            number = element.get("r")
            if number is None or not number.isdigit():
                return None  # rows without numbers: positions would be guesses
            row = int(number)
            if row > MAX_HEAD_ROWS or (first_filled is not None and row > max(rows, first_filled)):
                break
            for cell in element.iter(f"{_MAIN}c"):
                parsed = _cell(cell)
                if parsed is None:
                    return None
                letter, value = parsed
                cells[(row, letter)] = value
                if first_filled is None and value[0].strip():
                    first_filled = row
            element.clear()
        else:
            if first_filled is None:
                return cells  # the whole sheet was read: it is small or empty
    if first_filled is None:
        return None  # nothing within MAX_HEAD_ROWS rows: leave it to the full read
    return cells


def _cell(cell: ElementTree.Element) -> tuple[str, tuple[str, str, str]] | None:
    ref = _CELL_REF.match(cell.get("r", ""))
    if ref is None:
        return None
    kind = cell.get("t", "n")
    value = cell.findtext(f"{_MAIN}v") or ""
    if kind == "inlineStr":
        text = _unescape("".join(t.text or "" for t in cell.iter(f"{_MAIN}t")))
    elif kind == "str":
        text = _unescape(value)
    elif kind in ("e", "s", "d"):
        text = value
    elif kind == "b":
        text = {"1": "true", "0": "false"}.get(value.strip(), value)
    else:
        text = _number_text(value)
    return ref[1], (text, kind, value)


def _number_text(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() and abs(number) < 2**63 else repr(number)


def _shared_strings(archive: zipfile.ZipFile, needed: int) -> dict[int, str] | None:
    if needed >= MAX_SHARED_STRINGS:
        return None
    found: dict[int, str] = {}
    info = member(archive, "xl/sharedStrings.xml")  # names compared ignoring case, as everywhere here
    if info is None:
        return None
    stream = archive.open(info)
    with stream:
        index = 0
        for _, element in ElementTree.iterparse(stream, events=("end",)):
            if element.tag != f"{_MAIN}si":
                continue
            # Phonetic runs (rPh) are reading aids, not part of the cell's text.
            found[index] = _unescape("".join(t.text or "" for t in _text_runs(element)))
            element.clear()
            if index >= needed:
                return found
            index += 1
    return None


def _unescape(text: str) -> str:
    return _ESCAPED.sub(lambda found: chr(int(found[1], 16)), text) if "_x" in text else text


def _text_runs(si: ElementTree.Element) -> Iterator[ElementTree.Element]:
    for child in si:
        if child.tag == f"{_MAIN}t":
            yield child
        elif child.tag == f"{_MAIN}r":
            yield from child.iter(f"{_MAIN}t")


def boolean_cells(path: str, part: str, *, tally: TagCount | None = None) -> dict[str, list[int]] | None:
    """Letter -> Excel rows of the sheet's boolean cells, or None if a cell's place is unclear.

    ``tally``: also fed every byte of the sheet's XML, on the way (complete when the answer is not None).
    """
    found: dict[str, list[int]] = {}
    try:
        with zipfile.ZipFile(path) as archive, open_member(archive, part) as member:
            stream = member if tally is None else _Tallied(member, tally)
            for window, at in _marked_places(stream, _BOOL_MARKS, back=_TAG_BYTES, ahead=_TAG_BYTES, anchor=_BOOL_ANCHOR):
                place = _owning_cell(window, at)
                if place is None:
                    return None
                found.setdefault(place[0], []).append(place[1])
    except (KeyError, OSError, zipfile.BadZipFile, ValueError, EOFError):
        return None
    return found


#: The tags a cell's value is in: ``<v>`` (numbers, shared strings, formulas' results, errors) and
#: ``<is>`` (inline strings). Any other element starting so would count too: only ever more.
VALUE_TAGS = (b"<v", b"<is")


class TagCount:
    """How often ``tags`` occur in a stream of pieces, those split between two pieces included."""

    def __init__(self, tags: Sequence[bytes]) -> None:
        self.tags = tuple(tags)
        self.total = 0
        self._tail = b""
        self._room = max(len(tag) for tag in self.tags) - 1  # a tag across a seam starts this near its end

    def add(self, piece: bytes) -> None:
        self.total += sum(piece.count(tag) for tag in self.tags)
        seam, cut = self._tail + piece[: self._room], len(self._tail)  # in neither piece's count
        self.total += sum(seam.startswith(tag, i) for tag in self.tags for i in range(cut) if i + len(tag) > cut)
        if self._room:
            self._tail = piece[-self._room :] if len(piece) >= self._room else (self._tail + piece)[-self._room :]


class _Tallied:
    """A stream whose every piece read is added to a TagCount on the way."""

    def __init__(self, stream: Readable, tally: TagCount) -> None:
        self._stream, self._tally = stream, tally

    def read(self, size: int) -> bytes:
        piece = self._stream.read(size)
        self._tally.add(piece)
        return piece


def duration_cells(path: str, sheet: str) -> dict[tuple[int, str], float] | None:
    """(Excel row, letter) -> value in days of the duration cells (numbers whose style is an
    elapsed-time format) of the sheet named ``sheet``, or None when they cannot all be placed (the
    caller keeps the text read's text). A workbook without an elapsed-time style has none: then
    neither its sheet list nor the sheet is read here."""
    found: dict[tuple[int, str], float] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            styles = _elapsed_styles(archive)
            if not styles:
                return found
            part = next((p.part for p in _sheets(archive) or [] if p.name == sheet), None)
            if part is None:
                return None
            marks = [m for style in sorted(styles) for m in (b' s="%d"' % style, b" s='%d'" % style)]
            with open_member(archive, part) as stream:
                # A whole cell, up to _CARRY bytes, follows each mark: its value is read too.
                for window, at in _marked_places(stream, marks, back=_BACK, ahead=_CARRY):
                    cell = _duration_cell(window, at)
                    if cell is _INCOMPLETE or cell is _UNCLEAR:
                        return None  # a cell longer than the overlap, or without its place
                    if isinstance(cell, tuple):
                        found[cell[0]] = cell[1]
        return found
    except (KeyError, OSError, zipfile.BadZipFile, ValueError, EOFError):
        return None


#: A zip member's flag bit for encryption (APPNOTE 4.4.4).
ENCRYPTED = 0x1
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a member's local file header (APPNOTE 4.3.7)
# Compressed bytes inflated at a time. Its unused tail is copied for every piece inflated from it:
# 64 KiB took the scan of the 1M-row sheet 0.22-0.29 s, 1 MiB 0.5-0.6 s (fresh processes, one-off).
_RAW_CHUNK = 64 * 1024


def open_member(archive: zipfile.ZipFile, name: str) -> IO[bytes] | _Inflating:
    """The member ``name`` of ``archive`` (opened from a path) as a stream of its bytes, for a scan
    of all of them. A stored or plainly deflated member is read and inflated here (see _Inflating);
    anything else (encrypted, another compression) is left to zipfile."""
    info = archive.getinfo(name)
    plain = info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) and not info.flag_bits & ENCRYPTED
    if not plain or archive.filename is None:
        return archive.open(info)
    return _Inflating(archive.filename, info)


def _seek_data(file: IO[bytes], info: zipfile.ZipInfo) -> None:
    """Move ``file`` (the archive) to the first byte of member ``info``'s data, past its local header."""
    file.seek(info.header_offset)  # zipfile has made it absolute (data before the archive)
    header = file.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"{info.filename}: no local file header where the directory says")
    fields = _LOCAL_HEADER.unpack(header)
    file.seek(fields[-2] + fields[-1], 1)  # past the name and the extra field


def raw_member(file: IO[bytes], info: zipfile.ZipInfo) -> bytes:
    """Member ``info``'s data as the archive ``file`` holds it (compressed, if it is)."""
    _seek_data(file, info)
    data = file.read(info.compress_size)
    if len(data) < info.compress_size:
        raise EOFError(f"{info.filename}: the archive ends inside the member")
    return data


def crc32(data: bytes | memoryview, value: int = 0) -> int:
    """The zip CRC of ``data`` continuing from ``value`` (ISA-L's where installed: see _Inflating)."""
    return int(_inflate.crc32(data, value))


class _Inflating:
    """A stored or deflated zip member read from its archive's file, inflated with ISA-L.

    zipfile inflates with zlib: for the 1M-row benchmark sheet (53 MB deflated, 310 MB of XML)
    0.55-0.72 s against ISA-L's 0.18 s (one-off timings), most of the boolean scan's time, on the
    second core beside fastexcel's parse, and so CPU that a run of several files, or a read
    process of a cluster, needs for other files. As zipfile does, the member's size and CRC are
    checked at its end: a mismatch raises zipfile.BadZipFile, as truncated data does.
    """

    def __init__(self, path: str, info: zipfile.ZipInfo) -> None:
        self._info = info
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close(), as a stream is
        try:
            _seek_data(self._file, info)
        except BaseException:
            self._file.close()
            raise
        self._left = info.compress_size  # compressed bytes not read yet
        self._inflater = None if info.compress_type == zipfile.ZIP_STORED else _inflate.decompressobj(-15)
        self._crc = 0
        self._size = 0

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of the member (at least one until its end), then b""."""
        while True:
            if self._inflater is None:
                data = self._raw(size)
            else:
                # Called with no input too: what was inflated beyond the last piece's size waits inside.
                pending = self._inflater.unconsumed_tail or self._raw(_RAW_CHUNK)
                try:
                    data = self._inflater.decompress(pending, size)
                except _inflate.error as exc:  # isal's error is no zlib.error: both said as zipfile says it
                    raise zipfile.BadZipFile(f"{self._info.filename}: the compressed data is corrupt ({exc})") from exc
            if data:
                self._crc = _inflate.crc32(data, self._crc)
                self._size += len(data)
                if self._size > self._info.file_size:
                    raise zipfile.BadZipFile(f"{self._info.filename}: more bytes than the directory says")
                return data
            if not self._left and (self._inflater is None or not self._inflater.unconsumed_tail):
                self._finish()
                return b""

    def _raw(self, size: int) -> bytes:
        wanted = min(size, self._left)
        data = self._file.read(wanted)
        if len(data) < wanted:
            raise EOFError(f"{self._info.filename}: the archive ends inside the member")
        self._left -= len(data)
        return data

    def _finish(self) -> None:
        if self._inflater is not None and not self._inflater.eof:
            raise zipfile.BadZipFile(f"{self._info.filename}: the compressed data ends early")
        if self._size != self._info.file_size or self._crc != self._info.CRC:
            raise zipfile.BadZipFile(f"{self._info.filename}: bad CRC or size")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _Inflating:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None) -> None:
        self.close()


def _marked_places(
    stream: Readable, marks: Sequence[bytes], *, back: int, ahead: int, anchor: int | None = None
) -> Iterator[tuple[bytes, int]]:
    """(window, index in it) of each place in ``stream`` where one of ``marks`` starts, each once.

    The stream is read in _CHUNK pieces; the window around a place holds the ``back`` bytes before
    it and the ``ahead`` bytes after it, as far as the stream has them: a place in the last
    ``ahead`` bytes read so far waits for the next window, which keeps ``back`` bytes before it.
    ``anchor``: see _mark_starts.
    """
    carry, fresh = b"", 0  # fresh: where the places not looked at yet begin in the window
    while True:
        chunk = stream.read(_CHUNK)
        window, final = carry + chunk, not chunk
        settled = len(window) if final else max(fresh, len(window) - ahead)
        for at in _mark_starts(window, marks, fresh, settled, anchor):
            yield window, at
        if final:
            return
        keep = max(0, settled - back)
        carry, fresh = window[keep:], settled - keep


#: Anchor bytes looked at in a window before _mark_starts looks for the marks themselves instead.
_ANCHOR_HITS = 4096


def _mark_starts(window: bytes, marks: Sequence[bytes], start: int, stop: int, anchor: int | None) -> list[int]:
    """Where one of ``marks`` starts in ``window``, from ``start`` up to (not including) ``stop``, ascending.

    ``anchor``: an index at which every mark holds the same byte, one rare in a sheet's XML (the
    ``b`` of ``t="b"``). That byte is looked for (memchr, one byte at a time) and the marks checked
    only where it is: over the 1M-row benchmark sheet's 310 MB, 0.02 s against 0.37 s for finding
    each mark (one-off timings; a mark's leading space and quotes are everywhere). Where the byte
    is frequent after all (words in inline strings), the rest of the window is searched for the
    marks, once _ANCHOR_HITS of it have been looked at.
    """
    found: list[int] = []
    if anchor is not None:
        byte = marks[0][anchor : anchor + 1]
        assert all(mark[anchor : anchor + 1] == byte for mark in marks), "the anchor byte must be every mark's"
        budget = _ANCHOR_HITS
        hit = window.find(byte, start + anchor)
        while hit != -1 and hit - anchor < stop and budget:
            if any(window.startswith(mark, hit - anchor) for mark in marks):
                found.append(hit - anchor)
            budget -= 1
            hit = window.find(byte, hit + 1)
        if hit == -1 or hit - anchor >= stop:
            return found
        # Every mark starting before this hit's place has its anchor byte before the hit: found already.
        start = hit - anchor
    for mark in marks:
        at = window.find(mark, start)
        while at != -1 and at < stop:
            found.append(at)
            at = window.find(mark, at + 1)
    return sorted(found)


_TAG_BYTES = 512  # around a boolean mark: its cell's tag (_owning_cell looks 400 bytes back)
_CARRY = 64 * 1024
_BACK = 4 * 1024
_MAX_DAYS = 1e9  # in milliseconds, far inside 64 bits
_INCOMPLETE, _UNCLEAR, _NOT_A_DURATION = object(), object(), object()
_CELL_TAG = re.compile(rb"<(?:\w+:)?c\s")
_TYPE_ATTR = re.compile(rb'\st=["\']([^"\']*)["\']')
_CELL_CLOSE = re.compile(rb"</(?:\w+:)?c>")
_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]*)</(?:\w+:)?v>")


def _duration_cell(window: bytes, at: int) -> tuple[tuple[int, str], float] | object:
    """The place and value of the cell whose style attribute is at ``at``; _NOT_A_DURATION for a
    row's or column's style, text that merely reads so, an empty cell or a text cell."""
    opening, closing = window.rfind(b"<", 0, at), window.rfind(b">", 0, at)
    if opening == -1:
        return _UNCLEAR
    if closing > opening or not _CELL_TAG.match(window, opening):
        return _NOT_A_DURATION  # inside text, or an attribute of another element (<row s="3">)
    end = window.find(b">", at)
    if end == -1:
        return _INCOMPLETE
    tag = window[opening : end + 1]
    kind = _TYPE_ATTR.search(tag)
    if tag.endswith(b"/>") or (kind is not None and kind[1] != b"n"):
        return _NOT_A_DURATION
    ref = _REF_ATTR.search(tag)
    if ref is None:
        return _UNCLEAR
    close = _CELL_CLOSE.search(window, end)
    if close is None:
        return _INCOMPLETE
    value = _VALUE.search(window, end, close.start())
    if value is None:
        return _NOT_A_DURATION
    try:
        days = float(value[1])
    except ValueError:
        return _NOT_A_DURATION
    if not abs(days) < _MAX_DAYS:  # NaN, infinities and sizes no duration has: left as the text read shows them
        return _NOT_A_DURATION
    return (int(ref[2]), ref[1].decode()), days


# An elapsed-time token ([h], [mm], [ss]...) outside quoted text: what makes a format a duration
# for Excel and for fastexcel's typed read; 46 is the built-in [h]:mm:ss.
_ELAPSED = re.compile(r"\[(?:h+|m+|s+)\]", re.IGNORECASE)
_QUOTED = re.compile(r'"[^"]*"|\\.')


def _elapsed_styles(archive: zipfile.ZipFile) -> frozenset[int]:
    """Indices of the cell styles (a cell's ``s``) whose number format is an elapsed time."""
    info = member(archive, "xl/styles.xml")
    if info is None or info.file_size > _INDEX_BYTES:
        return frozenset()
    try:
        root = ElementTree.fromstring(archive.read(info))
    except ElementTree.ParseError:
        return frozenset()
    elapsed = {"46"} | {
        e.get("numFmtId", "")
        for e in root.iter()
        if _local(e.tag) == "numFmt" and _ELAPSED.search(_QUOTED.sub("", e.get("formatCode", "")))
    }
    cell_styles = next((e for e in root.iter() if _local(e.tag) == "cellXfs"), None)
    if cell_styles is None:
        return frozenset()
    styles = [e for e in cell_styles if _local(e.tag) == "xf"]
    return frozenset(i for i, style in enumerate(styles) if style.get("numFmtId", "0") in elapsed)


_OPEN_CELL = re.compile(rb'<(?:\w+:)?c\s[^<>]*$')
_REF_ATTR = re.compile(rb'\sr="([A-Z]{1,3})(\d+)"')


def _owning_cell(window: bytes, at: int) -> tuple[str, int] | None:
    """The cell reference of the ``<c ...>`` tag whose attributes hold position ``at``."""
    opening = _OPEN_CELL.search(window, max(0, at - 400), at)
    if opening is None:
        return None
    end = window.find(b">", at)
    tag = window[opening.start() : end if end != -1 else len(window)]
    ref = _REF_ATTR.search(tag)
    if ref is None:
        return None
    return ref[1].decode(), int(ref[2])
