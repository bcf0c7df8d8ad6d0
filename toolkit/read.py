"""Workbook -> grid of raw cell text with Excel row numbers (the fastexcel boundary).

Every cell is read as text (``dtypes="string"``) with ``header_row=None, skip_rows=0`` so that
frame row *i* is Excel row *i + 1* whatever the sheet's layout: fastexcel would otherwise skip
leading empty rows and make positions relative to where the data starts. Reading text keeps the
cell exactly as the workbook holds it, so no cell silently becomes null on a failed conversion;
validation converts it and quotes it when it cannot. Excel error cells (``#DIV/0!``...) come back
as null plus an entry in fastexcel's cell-error list; they are put back as their error text and
listed in :attr:`Grid.cell_errors` so a rule can reject the row and name the error.

That text read is what ``read_grid`` does, and it has two costs: turning every number into text
takes as long again as parsing the sheet, and fastexcel writes numbers as Excel displays them,
with at most nine decimals (1/3 becomes ``0.333333333``). So ingestion reads in two steps instead
(``open_sheet`` then ``read_rows``): the first rows as text, to find the header row (for .xlsx and
.xlsm straight from the sheet's XML, see ``toolkit.xlsx``; for other formats with the text read),
then the rows below it with the column types fastexcel finds over *every* row. A column of one
kind of cell (numbers, dates, booleans) keeps its exact values; a column mixing kinds comes back
as fastexcel's text, its numbers written in full where fastexcel's rounding may have shown them
otherwise (``_exact_numbers``; the text read that ingestion falls back on gets that too). What the
type guess would hide is put back as text, so validation still sees every cell as found: error
cells, text cells, and boolean cells in a column of numbers
(fastexcel reads those as 1 and 0; they are found by scanning the sheet's XML, or in the text read).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import re
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import fastexcel
import polars as pl

from toolkit import halves, xlsx
from toolkit.choose import choose_sheet
from toolkit.errors import SheetError, ToolkitError, UnreadableFileError
from toolkit.limits import DEFAULT_MAX_CELLS, DEFAULT_MAX_UNCOMPRESSED_BYTES, refuse_oversized
from toolkit.workers import Pool

ROW = "__row"
T = TypeVar("T")
EXCEL_ERRORS = {
    "Div0": "#DIV/0!",
    "NA": "#N/A",
    "Name": "#NAME?",
    "Null": "#NULL!",
    "Num": "#NUM!",
    "Ref": "#REF!",
    "Value": "#VALUE!",
    "GettingData": "#GETTING_DATA",
}
_ERROR_DETAIL = re.compile(r"Error\((\w+)\)")
# Cells the text read cannot give as text although they hold a value: an ODS duration (PT01H02M03S).
_TEXT_DETAIL = re.compile(r"""got '(DurationIso|DateTimeIso)\("([^"]*)"\)'""")
_ISO_DURATION = re.compile(r"^(-?)P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(\.\d+)?S)?)?$")


@dataclass(frozen=True)
class Grid:
    """A sheet as raw text: one String column per sheet column, named by its Excel letter,
    plus ``__row`` (the Excel row number). ``cell_errors`` has ``__row``, ``letter``, ``error``."""

    path: Path
    sheet: str
    cells: pl.DataFrame
    cell_errors: pl.DataFrame

    @property
    def letters(self) -> list[str]:
        return [c for c in self.cells.columns if c != ROW]

    def below(self, row: int) -> Grid:
        """The rows below Excel row ``row`` (a header row), with their cell errors."""
        return Grid(self.path, self.sheet, self.cells.filter(pl.col(ROW) > row), self.cell_errors.filter(pl.col(ROW) > row))


def column_letter(index: int) -> str:
    """0 -> 'A', 25 -> 'Z', 26 -> 'AA'."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def sheet_names(path: str | Path) -> list[str]:
    """The names of a workbook's sheets, in workbook order."""
    path = Path(path)
    with _reader_boundary(path):
        return list(_open(path).sheet_names)


def read_grid(
    path: str | Path,
    *,
    sheet: str | int | None = None,
    max_cells: int = DEFAULT_MAX_CELLS,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    prefer_sheet: str | None = None,
) -> Grid:
    """Read one sheet (default: the sheet named ``prefer_sheet`` if there is one, else the first
    visible one) as raw text with Excel row numbers.

    ``max_cells`` and ``max_uncompressed_bytes`` refuse, before parsing, a sheet declaring more
    cells (rows x columns) or a zipped workbook declaring more unpacked bytes (see toolkit.limits).

    Raises:
        UnreadableFileError: the file is missing, empty, not a workbook, encrypted or corrupt, or
            declares more than a cap.
        SheetError: the named sheet does not exist.
    """
    path = Path(path)
    _refuse_unreadable(path, sheet, prefer_sheet, max_cells, max_uncompressed_bytes)
    return _read_text(path, sheet, prefer_sheet)


def _read_text(path: Path, sheet: str | int | None, prefer_sheet: str | None) -> Grid:
    """What read_grid reads, for a file whose checks have passed (they are not run again)."""
    with _reader_boundary(path):
        loaded = _load(_open(path), path, sheet, prefer_sheet)
        batch, errors = loaded.to_arrow_with_errors()
        absolute = [info.absolute_index for info in loaded.selected_columns]
        name = loaded.name
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    letters = [column_letter(i) for i in absolute]
    frame = frame.rename(dict(zip(frame.columns, letters, strict=True)))
    reported = errors.errors if errors else []
    error_rows = [{ROW: e.position[0] + 1, "letter": letters[e.position[1]], "error": _error_text(e.detail)} for e in reported]
    cell_errors = pl.DataFrame(error_rows, schema={ROW: pl.Int64, "letter": pl.String, "error": pl.String})
    frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    durations = _duration_texts(path, name, letters)
    if cell_errors.height or durations:
        frame = _put_back(frame, durations, cell_errors)
        # Put back as their text but not listed: they are values, and a text column takes them.
        cell_errors = cell_errors.filter(pl.Series([_TEXT_DETAIL.search(e.detail) is None for e in reported], dtype=pl.Boolean))
    return Grid(path=path, sheet=name, cells=frame, cell_errors=cell_errors)


def _duration_texts(path: Path, name: str, letters: list[str]) -> dict[str, dict[int, str]]:
    """Letter -> Excel row -> text of the sheet's duration cells (.xlsx/.xlsm), as the typed read
    shows a duration (``36:00:00``): the text read shows them as date-times on Excel's day zero."""
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        return {}
    found = xlsx.duration_cells(str(path), name)
    columns = set(letters)
    wanted = {place: days for place, days in (found or {}).items() if place[1] in columns}
    if not wanted:
        return {}
    # Milliseconds as fastexcel's typed read takes them, so both reads give a duration one text.
    millis = pl.Series([round(days * 86_400_000) for days in wanted.values()], dtype=pl.Int64).cast(pl.Duration("ms"))
    shown = millis.to_frame("d").select(as_text(pl.col("d"), pl.Duration("ms")))["d"].to_list()
    texts: dict[str, dict[int, str]] = {}
    for (row, letter), text in zip(wanted, shown, strict=True):
        texts.setdefault(letter, {})[row] = text
    return texts


@dataclass(frozen=True)
class Sheet:
    """A chosen sheet: its first rows as text (``head``), the rest read on demand (``read_rows``).

    ``head`` holds at least the first ``head_rows`` rows (and up to the first row with a value).
    ``part`` is the sheet's XML part in an .xlsx/.xlsm archive, which the head was read from and
    the boolean-cell scan reads; without one, the head came from the text read (``whole``).
    """

    path: Path
    name: str
    head: Grid
    part: str | None = None

    @property
    def whole(self) -> bool:
        """Whether ``head`` holds the whole sheet (it came from the text read)."""
        return self.part is None


def open_sheet(
    path: str | Path,
    *,
    sheet: str | int | None = None,
    head_rows: int = 20,
    max_cells: int = DEFAULT_MAX_CELLS,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    prefer_sheet: str | None = None,
) -> Sheet:
    """Choose a sheet (default: the one named ``prefer_sheet`` if there is one, else the first
    visible one) and read its first rows as text.

    Raises the same errors as :func:`read_grid`, the caps included.
    """
    path = Path(path)
    quick = quick_head(
        path,
        sheet=sheet,
        head_rows=head_rows,
        max_cells=max_cells,
        max_uncompressed_bytes=max_uncompressed_bytes,
        prefer_sheet=prefer_sheet,
    )
    if quick is not None:
        return quick
    grid = _read_text(path, sheet, prefer_sheet)  # the file is checked: quick_head did it
    return Sheet(path, grid.sheet, grid)


def quick_head(
    path: str | Path,
    *,
    sheet: str | int | None = None,
    head_rows: int = 20,
    max_cells: int = DEFAULT_MAX_CELLS,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    prefer_sheet: str | None = None,
) -> Sheet | None:
    """The file checked as :func:`open_sheet` checks it, then its sheet's head straight from the
    sheet's XML (.xlsx/.xlsm), or None where that quick look is not possible: the caller would
    then need the whole sheet read as text."""
    path = Path(path)
    judged = _refuse_unreadable(path, sheet, prefer_sheet, max_cells, max_uncompressed_bytes)
    return _quick_head(path, judged, head_rows)


def _quick_head(path: Path, part: xlsx.SheetPart | None, head_rows: int) -> Sheet | None:
    """The head straight from the sheet's XML: ``part`` is the sheet the size check judged."""
    if part is None or path.suffix.lower() not in (".xlsx", ".xlsm"):
        return None
    head = xlsx.head(str(path), part.part, rows=head_rows)
    if head is None or not head.rows:
        return None  # an empty sheet or an unusual file: the text read says what it is
    return Sheet(path, part.name, _head_grid(path, part.name, head), part=part.part)


def _head_grid(path: Path, name: str, head: xlsx.Head) -> Grid:
    letters = sorted({letter for row in head.rows for letter in row}, key=lambda c: (len(c), c))
    columns = {letter: [row.get(letter) for row in head.rows] for letter in letters}
    schema = {ROW: pl.Int64, **dict.fromkeys(letters, pl.String)}
    cells = pl.DataFrame({ROW: list(range(1, len(head.rows) + 1)), **columns}, schema=schema)
    errors = pl.DataFrame(
        [{ROW: row, "letter": letter, "error": text} for (row, letter), text in sorted(head.errors.items())],
        schema={ROW: pl.Int64, "letter": pl.String, "error": pl.String},
    )
    return Grid(path=path, sheet=name, cells=cells, cell_errors=errors)


def read_rows(sheet: Sheet, *, header_row: int, processes: int = 2) -> Grid:
    """The rows below ``header_row`` (an Excel row number), typed where a column holds one kind of
    cell, as text where it mixes kinds; cells the typing would hide come back as their text.

    ``processes=2`` lets a large .xlsx sheet be parsed in two halves by this process and a helper
    process at once (see :func:`_read_in_halves`); 1 keeps the read in this process (as each worker
    of a multi-file ingest does: the cores are taken).
    """
    if processes not in (1, 2):
        raise ValueError(f"processes must be 1 or 2, got {processes!r}")
    if processes == 2:
        joined = _read_in_halves(sheet, header_row)
        if joined is not None:
            return joined
    typed = _typed_rows(sheet, sheet.path, header_row, header_row)
    return typed.grid if typed is not None else _text_rows(sheet, header_row)


@dataclass(frozen=True)
class _Typed:
    """A typed read: its grid, the type fastexcel gave each column before cells were put back, and
    the columns whose numbers were looked at again, in full."""

    grid: Grid
    read_types: dict[str, pl.DataType]
    read_again: set[str]  # text columns read again as numbers (_exact_numbers)
    value_tags: int | None = None  # the sheet XML's value tags, where counted (xlsx.VALUE_TAGS)


def _typed_rows(sheet: Sheet, path: Path, header_row: int, head_row: int, *, count_values: bool = False) -> _Typed | None:
    """The typed read of ``read_rows`` from the workbook at ``path``: ``sheet``'s own, or a half of
    it (same sheet name and part) whose header is at ``header_row``, the row the sheet's head has
    it at being ``head_row``. None where only the text read can be trusted. ``count_values``: the
    scan also counts the XML's value tags (for the second half, see _joined)."""
    # The XML scan for boolean cells runs beside fastexcel's parse of the same sheet.
    tally = xlsx.TagCount(xlsx.VALUE_TAGS) if count_values else None
    scanning = functools.partial(xlsx.boolean_cells, tally=tally)
    scan = Background(scanning, str(path), sheet.part, name="toolkit-boolean-scan") if sheet.part else None
    with _reader_boundary(path):
        reader = _open(path)
        try:
            loaded = reader.load_sheet(sheet.name, header_row=header_row - 1, schema_sample_rows=None)
        except (fastexcel.UnsupportedColumnTypeCombinationError, fastexcel.CalamineCellError):
            # Cells fastexcel's type guess cannot take (a duration among other cells, a #NAME?
            # error): the text read takes every cell.
            return None
        batch, errors = loaded.to_arrow_with_errors()
        columns = [(info.absolute_index, info.name) for info in loaded.selected_columns]
    letters = [column_letter(index) for index, _ in columns]
    if not _same_headers(sheet.head, head_row, letters, [name for _, name in columns]):
        return None  # the scan's answer is not needed: checked before waiting for it
    booleans = scan.result() if scan else _text_booleans(sheet)
    if booleans is None:
        return None
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.rename(dict(zip(frame.columns, letters, strict=True)))
    frame = frame.with_row_index(ROW, offset=header_row + 1).with_columns(pl.col(ROW).cast(pl.Int64))
    found = _typed_cell_errors(errors, letters, header_row)
    if found is None:
        return None
    cell_errors, texts = found
    read_types = dict(frame.schema)
    read_again = _maybe_rounded(frame)
    frame = _exact_numbers(path, sheet.name, frame, header_row=header_row, columns=read_again)
    for letter, rows in booleans.items():
        if letter in frame.columns and frame.schema[letter] not in (pl.String, pl.Boolean):
            hidden = frame.filter(pl.col(ROW).is_in(rows) & pl.col(letter).is_not_null()).select(ROW, letter).rows()
            texts.setdefault(letter, {}).update({row: "true" if value else "false" for row, value in hidden})
    frame = _put_back(frame, texts, cell_errors)
    grid = Grid(path=sheet.path, sheet=sheet.name, cells=frame, cell_errors=cell_errors)
    return _Typed(grid, read_types, set(read_again), tally.total if tally is not None else None)


def _read_in_halves(sheet: Sheet, header_row: int) -> Grid | None:
    """A large .xlsx sheet read as two halves (``toolkit.halves``), the second by a helper process
    while this one reads the first; None where that is not done or would not give what reading the
    whole sheet gives (the caller then reads it whole)."""
    if sheet.part is None or _usable_cores() < 2:
        return None
    try:
        with zipfile.ZipFile(sheet.path) as archive:
            size = archive.getinfo(sheet.part).file_size
    except (KeyError, OSError, zipfile.BadZipFile):
        return None
    if size < halves.SPLIT_FROM_BYTES:
        return None
    # The helper starts first: its imports (~0.5 s) run while the sheet is cut. This process reads
    # the first half, from the moment it is written: the cut writes the second meanwhile.
    try:
        pool = Pool(1, read_half, niced=False)
    except OSError:
        return None  # no process to be had (a limit on processes, say): one reads it all
    halving = tempfile.TemporaryDirectory(prefix="toolkit-halves-", ignore_cleanup_errors=True)
    try:
        with halving as folder:
            reading: list[Background[_Typed | None]] = []

            def read_first(path: Path) -> None:
                reading.append(Background(read_half, sheet, path, header_row, header_row, False, name="toolkit-first-half"))

            cut = halves.cut(sheet.path, sheet.part, header_row=header_row, folder=Path(folder), first_ready=read_first)
            later = None
            if cut is not None:
                job = (sheet.name, (sheet, cut.second, cut.cut_row - 1, header_row, True))
                later = [result for _, result in pool.run([job])][0]
            first = reading[0].result() if reading else None  # waited for even when not needed: it reads the folder
    finally:
        # The helper exits once its input closes (~0.1 s): nothing waits for that.
        threading.Thread(target=pool.close, name=HELPER_EXIT_THREAD, daemon=True).start()
    if cut is None or first is None or not isinstance(later, _Typed):  # the helper's reader crashed, say
        return None
    return _joined(first, later, header_row=header_row, cut=cut)


#: The thread that waits for the helper process to exit (a benchmark waits for it to count its CPU).
HELPER_EXIT_THREAD = "toolkit-helper-exit"


def read_half(sheet: Sheet, path: Path, header_row: int, head_row: int, count_values: bool) -> _Typed | None:
    """One half's typed read in :func:`_read_in_halves`: the first here, the second in the helper
    process (run by ``toolkit.workers``), its values counted. A ToolkitError is None: the whole
    read then says what is wrong, naming the file rather than a half."""
    try:
        return _typed_rows(sheet, path, header_row, head_row, count_values=count_values)
    except ToolkitError:
        return None


def _values(cells: pl.DataFrame) -> int:
    """How many cells of ``cells`` hold something (a value read, or a text put back)."""
    if cells.width <= 1:
        return 0
    return int(cells.select(pl.sum_horizontal(pl.all().exclude(ROW).is_not_null().sum())).item())


def _joined(first: _Typed, second: _Typed, *, header_row: int, cut: halves.Halves) -> Grid | None:
    """The two halves' rows as one grid, as reading the whole sheet gives them; None where a value
    of the second half did not come back, or the halves disagree on what the columns are: their
    letters, the type fastexcel found (numbers in one half, text in the other), or which text
    columns to read again as numbers; only the whole sheet's read settles those."""
    top, bottom = first.grid.cells, second.grid.cells
    cut_row = cut.cut_row
    # A cell placed elsewhere than its row says (a crafted file) is read where its own reference
    # puts it: in the first half below the cut, which shows; in the second above the cut, where
    # fastexcel does not look (above its header). So every value of the second half's rows must
    # come back: as many cells hold something as the XML has value tags (an empty text counts as
    # a tag but holds nothing: the sheet is then read whole, which costs only time).
    if second.value_tags is None or _values(bottom) != second.value_tags - cut.header_values:
        return None
    if not top.is_empty() and top[ROW][-1] >= cut_row:
        return None
    if top.columns != bottom.columns or first.read_again != second.read_again:
        # A text column read again in one half only: the whole read reads it again in full, and
        # writes the other half's numbers shown rounded in full too.
        return None
    upper, lower = [], []
    for column in top.columns:
        found = {first.read_types[column], second.read_types[column]} - {pl.Null}  # Null: no value in that half
        if len(found) > 1:
            return None
        # Where one half put cells back as text (an error cell, a boolean among numbers), the whole
        # read puts them back too, and writes the column's other cells as _put_back does.
        kinds = (top.schema[column], bottom.schema[column])
        text = pl.String in kinds and kinds[0] != kinds[1]
        typed = [k for k in kinds if k != pl.Null]
        kind: pl.DataType = pl.String() if text else (typed[0] if typed else pl.Null())
        upper.append(_as_kind(column, kinds[0], kind))
        lower.append(_as_kind(column, kinds[1], kind))
    parts = [top.select(upper)]
    if not bottom.is_empty():
        # The first half ends at its last row holding a value; the empty rows between it and the
        # cut are rows of the whole sheet's read, which has rows below them.
        after = top[ROW][-1] + 1 if not top.is_empty() else header_row + 1  # rows ascend
        empty = pl.DataFrame({ROW: list(range(after, cut_row))}, schema={ROW: pl.Int64})
        parts.append(
            empty.with_columns(pl.lit(None, dtype=top.schema[c]).alias(c) for c in top.columns if c != ROW).select(upper)
        )
        parts.append(bottom.select(lower))
    cells = pl.concat(parts)
    # In fastexcel's order: column by column, each column's rows ascending.
    place = {letter: i for i, letter in enumerate(top.columns)}
    errors = pl.concat([first.grid.cell_errors, second.grid.cell_errors])
    errors = errors.sort(pl.col("letter").replace_strict(place, default=len(place)), ROW, maintain_order=True)
    return Grid(first.grid.path, first.grid.sheet, cells, errors)


def _as_kind(column: str, kind: pl.DataType, wanted: pl.DataType) -> pl.Expr:
    if kind == wanted:
        return pl.col(column)
    if wanted == pl.String:
        return as_text(pl.col(column), kind).alias(column)
    return pl.col(column).cast(wanted)


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Background(Generic[T]):
    """``work(*args)`` on a daemon thread of its own, to run while fastexcel parses a sheet (which
    lets go of the GIL). ``result()`` waits for it and gives its value, or raises what it raised;
    a caller that fails first need not wait for it, nor does the interpreter at exit."""

    def __init__(self, work: Callable[..., T], *args: Any, name: str) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work, args), name=name, daemon=True)
        self._thread.start()

    def _run(self, work: Callable[..., T], args: tuple[Any, ...]) -> None:
        try:
            self._value = work(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)


def _text_booleans(sheet: Sheet) -> dict[str, list[int]]:
    """Boolean cells as the text read shows them (``true``/``false``), for formats without a scan
    (their head is the whole sheet: ``sheet.whole``)."""
    cells = sheet.head.cells
    found = {}
    for letter in sheet.head.letters:
        rows = cells.filter(pl.col(letter).is_in(["true", "false"]))[ROW].to_list()
        if rows:
            found[letter] = rows
    return found


def _text_rows(sheet: Sheet, header_row: int) -> Grid:
    """The rows below the header from the text read: the fallback when the typed read cannot be trusted."""
    # open_sheet has checked the file (with the caller's caps): not again, with the defaults.
    grid = sheet.head if sheet.whole else _read_text(sheet.path, sheet.name, None)
    # Here every number is text: all of them are looked at, so both reads give a number one text.
    cells = _exact_numbers(sheet.path, grid.sheet, grid.cells, header_row=None, every_number=True)
    return dataclasses.replace(grid, cells=cells).below(header_row)


_MAYBE_ROUNDED = r"^-?\d+\.\d{9}$|^-?0$"  # what fastexcel shows of a number it rounded


def _maybe_rounded(frame: pl.DataFrame, *, every_number: bool = False) -> list[str]:
    """The text columns of ``frame`` holding a text fastexcel's rounding could have made (see
    :func:`_exact_numbers`), or with ``every_number`` any number."""
    texts = [c for c in frame.columns if c != ROW and frame.schema[c] == pl.String]
    if not texts:
        return []

    def may_be_rounded(column: str) -> pl.Expr:
        if every_number:
            return pl.col(column).cast(pl.Float64, strict=False).is_not_null()
        return pl.col(column).str.contains(_MAYBE_ROUNDED)

    maybe = frame.select(may_be_rounded(c).any() for c in texts).row(0)
    return [c for c, found in zip(texts, maybe, strict=True) if found]


def _exact_numbers(
    path: Path,
    name: str,
    frame: pl.DataFrame,
    *,
    header_row: int | None,
    every_number: bool = False,
    columns: list[str] | None = None,
) -> pl.DataFrame:
    """``frame`` (cells read below Excel row ``header_row``, or the whole sheet read as text when
    None) with each number in its text columns written in full.

    fastexcel writes a number in a text column rounded to nine decimals (``1/3`` becomes
    ``0.333333333``, ``1e-10`` becomes ``0``). Where a text column holds a text that rounding
    could have made (nine decimals, or a zero), its column is read again as numbers: a cell whose
    text is a number other than the one read that way is a number shown rounded, and gets the
    number's exact text. A text cell keeps its text: read as a number it is the number its own
    text says (``+3``, ``1e3``). Rounding that leaves fewer decimals (``0.1000000000001`` shown
    as ``0.1``) changes a number by less than a billionth of a unit and is only looked for with
    ``every_number`` (a column holding any number is read again), as in the text read, where
    columns of nothing but numbers are text too. ``columns``: those columns, when known already.
    """
    texts = _maybe_rounded(frame, every_number=every_number) if columns is None else columns
    if not texts:
        return frame
    wanted = {xlsx.column_number(letter) - 1: letter for letter in texts}  # fastexcel counts from 0
    try:
        with _reader_boundary(path):
            loaded = _open(path).load_sheet(
                name,
                header_row=None if header_row is None else header_row - 1,
                skip_rows=0 if header_row is None else None,
                use_columns=list(wanted),
                dtypes=dict.fromkeys(wanted, "float"),
            )
            batch, _ = loaded.to_arrow_with_errors()  # cells that are no numbers: null here, kept as text
            found = [info.absolute_index for info in loaded.selected_columns]
    except (fastexcel.FastExcelError, UnreadableFileError):
        return frame  # read once already: the text stays as it was read
    if sorted(found) != sorted(wanted):
        return frame  # not the columns asked for: nothing to match the text with
    letters = [wanted[index] for index in found]
    numbers = pl.from_arrow(batch)
    assert isinstance(numbers, pl.DataFrame)
    numbers = numbers.rename({old: f"{letter}__number" for old, letter in zip(numbers.columns, letters, strict=True)})
    first = 1 if header_row is None else header_row + 1
    numbers = numbers.with_row_index(ROW, offset=first).with_columns(pl.col(ROW).cast(pl.Int64))
    joined = frame.join(numbers, on=ROW, how="left", maintain_order="left")
    exact = []
    for letter in letters:
        number = pl.col(f"{letter}__number")
        shown_rounded = number.is_finite() & (pl.col(letter).cast(pl.Float64, strict=False) != number)
        exact.append(pl.when(shown_rounded).then(as_text(number, pl.Float64())).otherwise(pl.col(letter)).alias(letter))
    return joined.with_columns(exact).select(frame.columns)


def _same_headers(head: Grid, header_row: int, letters: list[str], names: list[str]) -> bool:
    """Whether fastexcel saw the header row the head shows: same columns, same header text."""
    found = head.cells.filter(pl.col(ROW) == header_row)
    if found.is_empty():
        return False
    row = found.row(0, named=True)
    expected = {letter: (text or "").strip() for letter, text in row.items() if letter != ROW and (text or "").strip()}
    seen = dict(zip(letters, names, strict=True))
    return all(seen.get(letter, "").strip() == text for letter, text in expected.items())


_GOT = re.compile(r"^Expected \w+ but got '(.*)'$", re.DOTALL)
_WRAPPED_TEXT = re.compile(r'^(?:String|DateTimeIso|DurationIso)\("(.*)"\)$', re.DOTALL)
_RUST_ESCAPE = re.compile(r"\\(u\{[0-9a-fA-F]+\}|.)", re.DOTALL)
_RUST_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "0": "\0"}


def _typed_cell_errors(
    errors: fastexcel.CellErrors | None, letters: list[str], header_row: int
) -> tuple[pl.DataFrame, dict[str, dict[int, str]]] | None:
    """(Excel error cells, texts of the cells a typed column could not hold), or None when a
    cell error is of a kind not understood here (the caller then reads the sheet as text)."""
    found: list[dict[str, object]] = []
    texts: dict[str, dict[int, str]] = {}
    for error in errors.errors if errors else []:
        offset_row, offset_column = error.offset_position
        row, letter = header_row + 1 + offset_row, letters[offset_column]
        got = _GOT.match(error.detail)
        if got is None:
            return None
        detail = got[1]
        if _ERROR_DETAIL.fullmatch(detail):
            found.append({ROW: row, "letter": letter, "error": _error_text(detail)})
        elif detail == "Empty":
            continue
        elif wrapped := _WRAPPED_TEXT.match(detail):
            text = _unescape_rust(wrapped[1])
            if text.strip():
                texts.setdefault(letter, {})[row] = text
        else:
            return None
    cell_errors = pl.DataFrame(found, schema={ROW: pl.Int64, "letter": pl.String, "error": pl.String})
    return cell_errors, texts


def _unescape_rust(text: str) -> str:
    """Undo Rust's Debug escaping of a string (fastexcel quotes the cell that way)."""

    def one(match: re.Match[str]) -> str:
        code = match[1]
        if code.startswith("u{"):
            return chr(int(code[2:-1], 16))
        return _RUST_ESCAPES.get(code, code)

    return _RUST_ESCAPE.sub(one, text)


def as_text(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A typed cell as text, the way it reads in the sheet: whole numbers without ``.0``, other
    numbers in full (shortest exact form), date-times as ``YYYY-MM-DD HH:MM:SS[.fff]``."""
    if dtype == pl.String:
        return value
    if dtype == pl.Float64 or dtype == pl.Float32:
        whole = value.is_finite() & (value == value.floor()) & (value.abs() < 2.0**63)
        return pl.when(whole).then(value.cast(pl.Int64, strict=False).cast(pl.String)).otherwise(value.cast(pl.String))
    if isinstance(dtype, pl.Datetime):
        plain = value.dt.to_string("%Y-%m-%d %H:%M:%S")
        return pl.when(value.dt.millisecond() == 0).then(plain).otherwise(value.dt.to_string("%Y-%m-%d %H:%M:%S%.3f"))
    if dtype == pl.Date:
        return value.dt.to_string("%Y-%m-%d")
    if isinstance(dtype, pl.Duration):
        millis = value.dt.total_milliseconds()
        seconds = millis // 1000
        thousandths = (millis % 1000).cast(pl.String).str.zfill(3)
        fraction = pl.when(millis % 1000 != 0).then(pl.format(".{}", thousandths)).otherwise(pl.lit(""))
        return pl.format(
            "{}:{}:{}{}",
            seconds // 3600,
            (seconds % 3600 // 60).cast(pl.String).str.zfill(2),
            (seconds % 60).cast(pl.String).str.zfill(2),
            fraction,
        )
    return value.cast(pl.String)  # booleans, integers, an all-null column


def text_frame(frame: pl.DataFrame, columns: list[str] | None = None) -> pl.DataFrame:
    """The cell columns (default: every column but ``__row``) as text (see :func:`as_text`)."""
    names = [c for c in frame.columns if c != ROW] if columns is None else columns
    return frame.with_columns(as_text(pl.col(c), frame.schema[c]).alias(c) for c in names)


def _refuse_unreadable(
    path: Path, sheet: str | int | None, prefer_sheet: str | None, max_cells: int, max_uncompressed_bytes: int
) -> xlsx.SheetPart | None:
    """Raise unless ``path`` is a file worth opening: present, not empty, and the sheet that will
    be read within the caps; the .xlsx sheet judged, if the size check found it (refuse_oversized)."""
    if not path.is_file():
        raise UnreadableFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise UnreadableFileError(f"{path.name}: the file is empty (0 bytes); it is not a workbook")
    return refuse_oversized(
        path, sheet=sheet, prefer_sheet=prefer_sheet, max_cells=max_cells, max_uncompressed_bytes=max_uncompressed_bytes
    )


def _load(reader: fastexcel.ExcelReader, path: Path, sheet: str | int | None, prefer_sheet: str | None) -> fastexcel.ExcelSheet:
    # fastexcel tells a sheet's visibility only once it is loaded: the sheet last loaded to ask is
    # kept, not loaded again when it is the one chosen (and no earlier, hidden one is kept).
    last: dict[int, fastexcel.ExcelSheet] = {}

    def load(index: int) -> fastexcel.ExcelSheet:
        if index not in last:
            loaded = reader.load_sheet(index, header_row=None, skip_rows=0, dtypes="string")
            last.clear()
            last[index] = loaded
        return last[index]

    names = list(reader.sheet_names)
    return load(choose_sheet(path.name, names, lambda i: load(i).visible, sheet=sheet, prefer_sheet=prefer_sheet))


def _error_text(detail: str) -> str:
    text = _TEXT_DETAIL.search(detail)
    if text:
        return _duration_text(text[2]) if text[1] == "DurationIso" else text[2]
    match = _ERROR_DETAIL.search(detail)
    if match:
        return EXCEL_ERRORS.get(match[1], f"#{match[1].upper()}")
    return f"unreadable cell ({detail})"


def _duration_text(iso: str) -> str:
    """``PT1H2M3S`` -> ``1:02:03``, as the typed read shows a duration (``as_text``); fractions of a
    second are kept as written. Other forms stay as the file has them."""
    found = _ISO_DURATION.match(iso)
    if found is None:
        return iso
    sign, days, hours, minutes, seconds, fraction = found.groups()
    total_hours = int(days or 0) * 24 + int(hours or 0)
    return f"{sign}{total_hours}:{int(minutes or 0):02d}:{int(seconds or 0):02d}{fraction or ''}"


def _put_back(frame: pl.DataFrame, texts: dict[str, dict[int, str]], cell_errors: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with cells put back as text: ``texts`` (letter -> Excel row -> text), then every
    error cell as its error text. A column given a text becomes text, its other cells written
    exactly (``as_text``, not rounded as fastexcel's text read would; a text column is unchanged)."""
    by_letter = {letter: dict(by_row) for letter, by_row in texts.items()}
    for row, letter, error in cell_errors.rows():
        by_letter.setdefault(letter, {})[row] = error
    for letter, by_row in by_letter.items():
        exact = as_text(pl.col(letter), frame.schema[letter])
        frame = frame.with_columns(
            pl.col(ROW).replace_strict(by_row, default=None, return_dtype=pl.String).fill_null(exact).alias(letter)
        )
    return frame


def _open(path: Path) -> fastexcel.ExcelReader:
    return fastexcel.read_excel(path)


@contextlib.contextmanager
def _reader_boundary(path: Path) -> Iterator[None]:
    """Translate every reader failure into UnreadableFileError with one line of text.

    A Rust panic inside the reader is a ``BaseException`` and prints its own report on fd 2
    before Python sees it, so fd 2 is captured around the call and folded into the message.
    """
    failure: BaseException | None = None
    with _captured_stderr() as captured:
        try:
            yield
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except (SheetError, UnreadableFileError):
            raise
        except BaseException as exc:  # noqa: BLE001 - pyo3 panics derive from BaseException
            failure = exc
    # Described only once fd 2 is restored: the captured lines are filled in on the way out.
    if failure is not None:
        raise UnreadableFileError(f"{path.name}: {_describe(failure, captured)}") from failure


def _describe(exc: BaseException, captured: list[str]) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    lowered = text.lower()
    if "password" in lowered or "encrypt" in lowered:
        return "the workbook is password-protected; save an unprotected copy and ingest that"
    if "zip" in lowered or "eocd" in lowered or "cfb" in lowered or "invalid file" in lowered:
        return f"not a readable workbook, or the file is corrupt ({text.removeprefix('calamine error: ')})"
    if type(exc).__name__ == "PanicException":
        panic = next((line for line in captured if "panicked" in line), "")
        detail = f" ({text}; {panic.strip().rstrip(':')})" if panic else f" ({text})"
        return f"the reader crashed on this file; it is probably corrupt{detail}"
    return f"cannot read the workbook ({text.removeprefix('calamine error: ')})"


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Send fd 2 to a temporary file for the duration; yield a list filled with its lines."""
    lines: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (e.g. some embedded interpreters): nothing to capture
        yield lines
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())


def file_sha256(path: str | Path) -> str:
    """The sha256 of the file's bytes, in hex; a file that cannot be read raises UnreadableFileError."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
