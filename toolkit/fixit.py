"""Rejected rows back to the user as a workbook to correct in Excel and ingest again.

The fix-it workbook holds the rejected rows of a run under the file's own headers, in the file's
column order, so ``python -m toolkit ingest fix.xlsx`` matches it like the original. Two columns
follow: ``Errors`` (every reason, one a line) and ``Source row`` (the row in the original file);
ingest ignores both (they show up in ``unmapped_columns``). Failing cells are filled red and carry
each reason as a cell comment; a failure that names no single cell marks every cell it is about
(the columns a cross-column rule uses, the columns of a composite key).

Cells are written so that reading them back gives the text the toolkit read the first time:
plain numbers as numbers, ``YYYY-MM-DD HH:MM:SS`` as real dates, everything else as text.
Text starting with ``=``, ``+``, ``-`` or ``@`` is always written as text, never as a formula.
A cell longer than Excel's 32,767 characters cannot be written whole: it is cut to that length,
marked failing and commented saying so (its full text stays in ``_rejects``), never cut silently.

Which rows: those of the run named, else of the latest run of each table (or of one table): the
rejects that the most recent load left behind. One sheet per table, named after it, oldest run
first; tables whose latest run rejected nothing get no sheet (unless no table has rejects, when
the workbook holds their headers only).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from toolkit.errors import WarehouseError
from toolkit.runs import RejectedRow, RunReport, Specs, connect_read_only, read_reports, select_runs

ERRORS_HEADER = "Errors"
SOURCE_ROW_HEADER = "Source row"
#: Text a spreadsheet would take for a formula (or DDE payload) if written as a plain value.
FORMULA_PREFIXES = ("=", "+", "-", "@")
#: The most characters an Excel cell holds; xlsxwriter would silently cut a longer text.
EXCEL_CELL_CHARS = 32_767
_FILL = "#FFC7CE"
_INTEGER = re.compile(r"^(0|[1-9][0-9]{0,14})$")
# At most nine decimals and fifteen digits: fastexcel reads a number in a column that also
# holds text as Excel shows it, which keeps no more, so a number with more would not read back as
# the same text; it stays text (read back exactly, and converted by validation as before).
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,14})\.[0-9]{0,8}[1-9]$")
_MOST_DIGITS = 15
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\]")


@dataclass(frozen=True)
class FixitSheet:
    """The rejected rows of one run, as they will appear on one sheet."""

    name: str
    run: RunReport

    @property
    def rows(self) -> tuple[RejectedRow, ...]:
        return self.run.rejected


def fixit_sheets(
    db: str | Path, *, run_id: str | None = None, table: str | None = None, specs: Specs | None = None
) -> list[FixitSheet]:
    """What :func:`write_fixit_workbook` would write, without writing it.

    Raises:
        WarehouseError: the warehouse is missing, busy or not a toolkit warehouse; the run is unknown;
            no run loaded ``table``.
    """
    con = connect_read_only(db)
    try:
        run_ids = select_runs(con, run_ids=[run_id]) if run_id else _latest_per_table(con, table)
        runs = read_reports(con, run_ids, limit=None, specs=specs)
    except WarehouseError as exc:
        raise WarehouseError(f"{db}: {exc}") from exc
    finally:
        con.close()
    with_rows = [r for r in runs if r.rejected] or runs
    names: list[str] = []
    for run in with_rows:
        names.append(_sheet_name(run.table or "rejects", names))
    return [FixitSheet(name, run) for name, run in zip(names, with_rows, strict=True)]


def write_fixit_workbook(
    db: str | Path, out: str | Path, *, run_id: str | None = None, table: str | None = None, specs: Specs | None = None
) -> Path:
    """Write the rejected rows of a run (default: of the latest run of each table) as a workbook to fix.

    Args:
        db: the warehouse file.
        out: the ``.xlsx`` file to write (replaced if it exists).
        run_id: the run whose rejected rows to export.
        table: only this table's latest run (ignored when ``run_id`` is given).
        specs: the table specs (default: the built-in ones), to mark the cells a cross-column rule uses.

    Returns:
        The path written.

    Raises:
        WarehouseError: the warehouse is missing, busy or not a toolkit warehouse; the run is unknown.
    """
    return write_sheets(fixit_sheets(db, run_id=run_id, table=table, specs=specs), out)


def write_sheets(sheets: Sequence[FixitSheet], out: str | Path) -> Path:
    """Write fix-it sheets to ``out``; see the module docstring for the layout."""
    out = Path(out)
    book = xlsxwriter.Workbook(str(out))
    created = min((s.run.started_at for s in sheets if s.run.started_at), default=None)
    book.set_properties(
        {
            "title": "Rejected rows to fix",
            "comments": "Correct the highlighted cells (reasons in the comments and the Errors column), "
            "then ingest this file again; the Errors and Source row columns are ignored.",
            **({"created": created} if created else {}),
        }
    )
    formats = _Formats(book)
    for sheet in sheets:
        _write_sheet(book.add_worksheet(sheet.name), sheet.run, formats)
    book.close()
    return out


class _Formats:
    """Cell formats by (kind, failing), made once per workbook as xlsxwriter requires."""

    def __init__(self, book: xlsxwriter.Workbook) -> None:
        self.book = book
        self.cache: dict[tuple[str, bool], Format] = {}
        self.header = book.add_format({"bold": True, "bg_color": "#F2F2F2", "bottom": 1, "text_wrap": True, "valign": "top"})
        self.errors = book.add_format({"text_wrap": True, "valign": "top", "font_color": "#9C0006"})

    def get(self, kind: str, failing: bool) -> Format:
        if (kind, failing) not in self.cache:
            spec: dict[str, object] = {"valign": "top"}
            if kind == "date":
                spec["num_format"] = "yyyy-mm-dd"
            elif kind == "datetime":
                spec["num_format"] = "yyyy-mm-dd hh:mm:ss"
            elif kind == "text":
                spec["num_format"] = "@"
            if failing:
                spec.update({"bg_color": _FILL, "font_color": "#9C0006"})
            self.cache[(kind, failing)] = self.book.add_format(spec)
        return self.cache[(kind, failing)]


def _write_sheet(ws: Worksheet, run: RunReport, formats: _Formats) -> None:
    headers = list(run.headers)
    extra = [_free_name(ERRORS_HEADER, headers), _free_name(SOURCE_ROW_HEADER, headers)]
    for col, header in enumerate([*headers, *extra]):
        ws.write_string(0, col, header, formats.header)
    widths = [min(max(len(h), 8), 40) for h in headers]
    for r, row in enumerate(run.rejected, start=1):
        failing = row.failing(run.rule_cells)
        cuts: list[str] = []
        for col, header in enumerate(headers):
            value = row.cells.get(header)
            notes = list(failing.get(header, []))
            if value is not None and len(value) > EXCEL_CELL_CHARS:
                cuts.append(
                    f"{header}: {len(value):,} characters, more than an Excel cell holds: cut to {EXCEL_CELL_CHARS:,} here"
                )
                notes.append(cuts[-1])
                value = value[:EXCEL_CELL_CHARS]
            _write_cell(ws, r, col, value, formats, failing=bool(notes))
            if notes:
                ws.write_comment(r, col, "\n".join(notes), {"author": "toolkit", "x_scale": 2.5, "y_scale": 1.5})
            widths[col] = min(max(widths[col], len(value or "")), 40)
        ws.write_string(r, len(headers), "\n".join([*row.reasons, *cuts]), formats.errors)
        ws.write_number(r, len(headers) + 1, row.row)
    for col, width in enumerate(widths):
        ws.set_column(col, col, width + 2)
    ws.set_column(len(headers), len(headers), 60)
    ws.set_column(len(headers) + 1, len(headers) + 1, 11)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, max(len(run.rejected), 1), len(headers) + 1)


def _write_cell(ws: Worksheet, row: int, col: int, text: str | None, formats: _Formats, *, failing: bool) -> None:
    """One raw cell, typed only where reading it back gives the same text (see the module docstring)."""
    if text is None:
        if failing:
            ws.write_blank(row, col, None, formats.get("blank", failing))
        return
    if text.startswith(FORMULA_PREFIXES):
        ws.write_string(row, col, text, formats.get("text", failing))
    elif _INTEGER.match(text):
        ws.write_number(row, col, int(text), formats.get("number", failing))
    elif _DECIMAL.match(text) and repr(float(text)) == text and len(text.replace(".", "").lstrip("0")) <= _MOST_DIGITS:
        ws.write_number(row, col, float(text), formats.get("number", failing))
    elif _DATETIME.match(text) and (moment := _parse_datetime(text)) is not None:
        kind = "date" if text.endswith(" 00:00:00") else "datetime"
        ws.write_datetime(row, col, moment, formats.get(kind, failing))
    else:
        ws.write_string(row, col, text, formats.get("text", failing))


def _parse_datetime(text: str) -> datetime | None:
    try:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    # Excel's calendar starts in 1900 and counts a 29 February 1900 that never was: readers and
    # writers disagree about the two months before it, so those dates stay text.
    return moment if moment >= datetime(1900, 3, 1) else None


def _latest_per_table(con: duckdb.DuckDBPyConnection, table: str | None) -> list[str]:
    query = (
        "SELECT run_id FROM (SELECT run_id, started_at, row_number() OVER "
        "(PARTITION BY table_name ORDER BY started_at DESC, run_id DESC) AS n FROM _runs WHERE ? IS NULL OR table_name = ?) "
        "WHERE n = 1 ORDER BY started_at, run_id"
    )
    found = [r[0] for r in con.execute(query, [table, table]).fetchall()]
    if not found:
        raise WarehouseError(f"no run loaded table {table!r}" if table else "no runs recorded in _runs yet")
    return found


def _sheet_name(table: str, taken: Sequence[str]) -> str:
    """A valid, unused sheet name: at most 31 characters, none of []:*?/\\ ."""
    base = _SHEET_NAME_BAD.sub("_", table)[:31] or "rejects"
    name, n = base, 2
    while name.casefold() in {t.casefold() for t in taken}:
        suffix = f" ({n})"
        name, n = base[: 31 - len(suffix)] + suffix, n + 1
    return name


def _free_name(wanted: str, headers: Sequence[str]) -> str:
    """``wanted``, or ``wanted (toolkit)`` when the file already has a column of that name."""
    return wanted if wanted not in headers else f"{wanted} (toolkit)"
