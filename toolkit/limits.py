"""Refuse a workbook too big to read safely, before the reader allocates anything (zip bombs).

The reader holds a whole sheet in memory as a dense grid: rows x columns of the range between
the first and the last cell, blank cells included, at about 100 bytes a cell once read. A file of
a few megabytes can claim far more, so two caps are checked from what the file declares, before
parsing:

* ``max_uncompressed_bytes``: the declared unpacked size of a zipped workbook (xlsx, xlsm, xlsb,
  ods), summed over its parts.
* ``max_cells``: the sheet's cells. For xlsx/xlsm, from the ``<dimension ref="A1:X9">`` element at
  the top of the sheet's XML part (found through ``xl/workbook.xml`` and its relationships; only
  the first bytes are unpacked), and also from the declared size of that part, so that a missing or
  understated dimension is still caught; for ods, from the declared size of ``content.xml``; for
  xlsb, from the declared size of its largest worksheet part; for xls, from the file size.

Estimates from a size assume the fewest bytes a cell with a value takes in that format, so a real
sheet is never estimated above its true size by much. What is not caught before parsing: a sheet
whose dimension understates a sparse range (a few cells far apart) — see README, "What the
toolkit trusts".
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from toolkit import xlsx
from toolkit.choose import choose_sheet
from toolkit.errors import UnreadableFileError

#: Declared unpacked size above which a zipped workbook is refused unread.
DEFAULT_MAX_UNCOMPRESSED_BYTES = 4 * 1024**3
#: Cells (rows x columns) above which a sheet is refused unread: Excel's 1,048,576 rows by 47
#: columns, about 5 GB once read. A full-height sheet of 20 columns is well inside.
DEFAULT_MAX_CELLS = 50_000_000

ZIPPED = {".xlsx", ".xlsm", ".xlsb", ".ods"}
# zipfile.is_zipfile() says yes to some xls files (a zip signature among their bytes): sniff instead.
_CFB_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")
# The fewest bytes a cell with a value takes: '<c r="A1"><v>1</v></c>' is 22 in xlsx, and a
# real sheet averages 30-55 (measured); ods cells carry their type twice; xlsb records are
# binary; an xls RK record is 10 bytes, MULRK 6 a cell.
_BYTES_PER_CELL = {".xlsx": 32, ".xlsm": 32, ".ods": 64, ".xlsb": 12, ".xls": 6}
# Enough for the XML declaration, namespaces and sheetPr that precede <dimension>.
_HEAD_BYTES = 64 * 1024
_DIMENSION = re.compile(rb"<(?:\w+:)?dimension\b[^>]*?\bref\s*=\s*[\"']([^\"']*)[\"']")
# Wider than Excel's XFD1048576 on purpose: a bomb's dimension is counted, not dismissed.
_REF = re.compile(r"^\$?([A-Za-z]{1,4})\$?([0-9]{1,12})$")
_WORKSHEET = re.compile(r"^xl/worksheets/[^/]+\.(xml|bin)$", re.IGNORECASE)


def refuse_oversized(
    path: Path,
    *,
    sheet: str | int | None,
    prefer_sheet: str | None = None,
    max_cells: int = DEFAULT_MAX_CELLS,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> xlsx.SheetPart | None:
    """Raise UnreadableFileError when the file declares more than either cap; read nothing else.

    The sheet judged is the one the reader will read, chosen by the same rule from ``sheet`` and
    ``prefer_sheet`` (see toolkit.choose); a sheet that does not exist raises the reader's
    SheetError. Files that are not what their name says are left to the reader, which reports
    them itself.

    Returns:
        The .xlsx/.xlsm sheet judged, as ``workbook.xml`` lists it, for the reader to read that
        part; None for other formats, or when the workbook does not list its sheets plainly.
    """
    with path.open("rb") as handle:
        magic = handle.read(8)
    if magic == _CFB_MAGIC:  # xls: one compound file, cells counted from its size
        _check_cells(path, None, path.stat().st_size // _BYTES_PER_CELL[".xls"], "from the file size", max_cells)
        return None
    if not magic.startswith(b"PK") or not zipfile.is_zipfile(path):
        return None  # not a zip, or a broken one: the reader says so
    suffix = path.suffix.lower() if path.suffix.lower() in ZIPPED else ".xlsx"
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
            if declared > max_uncompressed_bytes:
                raise UnreadableFileError(
                    f"{path.name}: unpacks to {_mib(declared)} MiB, over the limit of {_mib(max_uncompressed_bytes)} MiB; "
                    "if the file is trusted, raise it with --max-unpacked-mb N (max_uncompressed_bytes in Python)"
                )
            return _check_sheet(path, archive, suffix, sheet, prefer_sheet, max_cells)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise UnreadableFileError(f"{path.name}: not a readable workbook, or the file is corrupt ({exc})") from exc


def dimension_cells(ref: str) -> int | None:
    """Cells in a range reference: ``A1:C10`` -> 30, ``B2`` -> 1; None when not a reference."""
    parts = ref.split(":")
    if len(parts) > 2:
        return None
    corners = []
    for part in parts:
        found = _REF.match(part.strip())
        if found is None:
            return None
        corners.append((xlsx.column_number(found[1]), int(found[2])))
    (col1, row1), (col2, row2) = corners[0], corners[-1]
    return (abs(row2 - row1) + 1) * (abs(col2 - col1) + 1)


def _check_sheet(
    path: Path, archive: zipfile.ZipFile, suffix: str, sheet: str | int | None, prefer_sheet: str | None, max_cells: int
) -> xlsx.SheetPart | None:
    per_cell = _BYTES_PER_CELL[suffix]
    if suffix == ".ods":
        info = xlsx.member(archive, "content.xml")
        if info is not None:
            _check_cells(path, None, info.file_size // per_cell, f"from {_size(info.file_size)} of content.xml", max_cells)
        return None
    chosen = _xlsx_sheet(path, archive, sheet, prefer_sheet) if suffix != ".xlsb" else None
    info = xlsx.member(archive, chosen.part) if chosen is not None else None
    if info is None:
        # The sheet cannot be told apart (xlsb indexes its sheets in binary): judge the biggest.
        chosen, parts = None, [i for i in archive.infolist() if _WORKSHEET.match(i.filename)]
        if not parts:
            return None
        info = max(parts, key=lambda i: i.file_size)
    name = chosen.name if chosen is not None else None
    found = None
    if suffix != ".xlsb":  # a binary sheet has no <dimension> to read
        with archive.open(info) as handle:
            head = handle.read(_HEAD_BYTES)
        found = _DIMENSION.search(head.split(b"<sheetData", 1)[0])
    if found is not None:
        ref = found[1].decode("ascii", "replace")
        cells = dimension_cells(ref)
        if cells is not None:
            _check_cells(path, name, cells, f"dimension {ref}", max_cells, exact=True)
    _check_cells(path, name, info.file_size // per_cell, f"from {_size(info.file_size)} of sheet data", max_cells)
    return chosen


def _check_cells(path: Path, sheet: str | None, cells: int, source: str, limit: int, *, exact: bool = False) -> None:
    if cells <= limit:
        return
    where = f"{path.name}, sheet {sheet!r}" if sheet is not None else path.name
    amount = f"{cells:,} cells" if exact else f"about {cells:,} cells"
    raise UnreadableFileError(
        f"{where}: {amount} ({source}), over the limit of {limit:,} cells; "
        "if the file is trusted, raise it with --max-cells N (max_cells in Python)"
    )


def _xlsx_sheet(
    path: Path, archive: zipfile.ZipFile, sheet: str | int | None, prefer_sheet: str | None
) -> xlsx.SheetPart | None:
    """The sheet the reader will load, when workbook.xml lists the sheets plainly."""
    parts = xlsx.sheets(archive)
    if parts is None:
        return None  # unlisted, unparsable or far too big: the biggest worksheet part is judged
    names = [p.name for p in parts]
    return parts[choose_sheet(path.name, names, lambda i: parts[i].state, sheet=sheet, prefer_sheet=prefer_sheet)]


def _mib(size: int) -> str:
    return f"{size / 1024**2:,.0f}"


def _size(size: int) -> str:
    return f"{_mib(size)} MiB" if size >= 1024**2 else f"{size / 1024:,.0f} KiB"
