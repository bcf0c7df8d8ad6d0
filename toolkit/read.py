"""Workbook -> grid of raw cell text with Excel row numbers (the fastexcel boundary).

Every cell is read as text (``dtypes="string"``) with ``header_row=None, skip_rows=0`` so that
frame row *i* is Excel row *i + 1* whatever the sheet's layout: fastexcel would otherwise skip
leading empty rows and make positions relative to where the data starts. Reading text keeps the
cell exactly as the workbook holds it, so no cell silently becomes null on a failed conversion;
validation converts it and quotes it when it cannot. Excel error cells (``#DIV/0!``...) come back
as null plus an entry in fastexcel's cell-error list; they are put back as their error text and
listed in :attr:`Grid.cell_errors` so a rule can reject the row and name the error.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fastexcel
import polars as pl

from toolkit.errors import SheetError, UnreadableFileError
from toolkit.limits import DEFAULT_MAX_CELLS, DEFAULT_MAX_UNCOMPRESSED_BYTES, refuse_oversized

ROW = "__row"
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
# Cells fastexcel cannot give as text although they hold text: an ODS duration (PT01H02M03S).
_TEXT_DETAIL = re.compile(r"""got '(?:DurationIso|DateTimeIso)\("([^"]*)"\)'""")


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
) -> Grid:
    """Read one sheet (default: the first visible one) as raw text with Excel row numbers.

    ``max_cells`` and ``max_uncompressed_bytes`` refuse, before parsing, a sheet declaring more
    cells (rows x columns) or a zipped workbook declaring more unpacked bytes (see toolkit.limits).

    Raises:
        UnreadableFileError: the file is missing, empty, not a workbook, encrypted or corrupt, or
            declares more than a cap.
        SheetError: the named sheet does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise UnreadableFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise UnreadableFileError(f"{path.name}: the file is empty (0 bytes); it is not a workbook")
    refuse_oversized(path, sheet=sheet, max_cells=max_cells, max_uncompressed_bytes=max_uncompressed_bytes)
    with _reader_boundary(path):
        reader = _open(path)
        names = list(reader.sheet_names)
        if not names:
            raise SheetError(f"{path.name}: the workbook has no sheets")
        loaded = _load(reader, path, names, sheet)
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
    if cell_errors.height:
        frame = _put_back_error_text(frame, cell_errors)
        # Put back as their text but not listed: they are values, and a text column takes them.
        cell_errors = cell_errors.filter(pl.Series([_TEXT_DETAIL.search(e.detail) is None for e in reported], dtype=pl.Boolean))
    return Grid(path=path, sheet=name, cells=frame, cell_errors=cell_errors)


def _load(reader: fastexcel.ExcelReader, path: Path, names: list[str], sheet: str | int | None) -> fastexcel.ExcelSheet:
    def load(which: str | int) -> fastexcel.ExcelSheet:
        return reader.load_sheet(which, header_row=None, skip_rows=0, dtypes="string")

    if sheet is None:
        # Hidden and very-hidden sheets are ignored unless asked for by name.
        for index in range(len(names)):
            candidate = load(index)
            if candidate.visible == "visible":
                return candidate
        raise SheetError(f"{path.name}: every sheet is hidden; name one with --sheet (sheets: {_quoted(names)})")
    if isinstance(sheet, int):
        if not 0 <= sheet < len(names):
            raise SheetError(f"{path.name}: no sheet number {sheet} (sheets: {_quoted(names)})")
        return load(sheet)
    if sheet not in names:
        raise SheetError(f"{path.name}: no sheet named {sheet!r} (sheets: {_quoted(names)})")
    return load(sheet)


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _error_text(detail: str) -> str:
    text = _TEXT_DETAIL.search(detail)
    if text:
        return text[1]
    match = _ERROR_DETAIL.search(detail)
    if match:
        return EXCEL_ERRORS.get(match[1], f"#{match[1].upper()}")
    return f"unreadable cell ({detail})"


def _put_back_error_text(frame: pl.DataFrame, cell_errors: pl.DataFrame) -> pl.DataFrame:
    for (letter,), errors in cell_errors.group_by("letter"):
        texts = dict(zip(errors[ROW].to_list(), errors["error"].to_list(), strict=True))
        frame = frame.with_columns(
            pl.col(ROW)
            .replace_strict(texts, default=None, return_dtype=pl.String)
            .fill_null(pl.col(str(letter)))
            .alias(str(letter))
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
