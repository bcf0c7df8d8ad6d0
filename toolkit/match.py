"""Find the header row of a grid and match its headers to a table spec.

Headers match when they are equal after case folding and dropping everything but letters and
digits, so ``Customer ID``, ``customer_id``, ``CUSTOMER-ID`` and ``Customer\\nID`` are the same
header; a spec column may also list aliases. The header row is the first of the sheet's first
20 rows that holds every required header of a spec (or the row given with ``header_row``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import polars as pl

from toolkit.errors import HeaderError, SheetError
from toolkit.read import ROW, Grid, Sheet, read_rows
from toolkit.specs import TableSpec

#: How many rows from the top of the sheet are searched for the header row.
HEADER_SEARCH_ROWS = 20
_NOT_ALNUM = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class MappedSheet:
    """The data rows of a sheet under a spec, in spec column names, plus ``__row``: each column as
    read (typed where the sheet's column holds one kind of cell, else text; see read.read_rows)."""

    spec: TableSpec
    header_row: int
    headers: dict[str, str]  # spec column name -> header text as found in the file
    raw: pl.DataFrame
    cell_errors: pl.DataFrame  # __row, column (spec column name), error
    unmapped_columns: list[str]
    blank_rows: int

    @property
    def present(self) -> list[str]:
        """Spec columns the file provides, in spec order."""
        return [name for name in self.spec.names if name in self.headers]


def normalize_header(text: str) -> str:
    return _NOT_ALNUM.sub("", text.casefold())


def label_lookup(spec: TableSpec | None, *, names: Iterable[str] = ()) -> dict[str, str]:
    """Normalised header or alias -> spec column name; ``names`` (columns the spec may lack, or
    all of them without a spec) are found by the name itself."""
    table: dict[str, str] = {}
    for column in spec.columns if spec is not None else ():
        for label in (column.name, column.header, *column.aliases):
            table.setdefault(normalize_header(label), column.name)
    for name in names:
        table.setdefault(normalize_header(name), name)
    return table


def _match_row(row: Mapping[str, str], spec: TableSpec) -> dict[str, list[str]]:
    """Spec column name -> letters of the row's cells whose header names it."""
    lookup = label_lookup(spec)
    found: dict[str, list[str]] = {}
    for letter, text in row.items():
        name = lookup.get(normalize_header(text))
        if name:
            found.setdefault(name, []).append(letter)
    return found


def _missing_required(found: Mapping[str, list[str]], spec: TableSpec) -> list[str]:
    return [c.header for c in spec.columns if c.required and c.name not in found]


def match_header(
    grid: Grid,
    specs: Mapping[str, TableSpec],
    *,
    table: str | None = None,
    header_row: int | None = None,
) -> tuple[int, TableSpec, dict[str, list[str]], dict[str, str]]:
    """Find the header row among the grid's first rows and the spec it matches: (Excel row, spec,
    spec column -> letters of its header, letter -> header text). Reads no data row.

    Raises:
        SheetError: the sheet holds no cells at all.
        HeaderError: no row holds a spec's required headers, or two headers name one column.
    """
    where = f"{grid.path.name}, sheet {grid.sheet!r}"
    filled = filled_rows(grid)
    if header_row is not None:
        candidates = grid.cells.filter(pl.col(ROW) == header_row)
        if candidates.is_empty():
            raise SheetError(f"{where}: header row {header_row} is beyond the sheet's last row ({grid.cells.height})")
    else:
        candidates = header_search_rows(filled)
    candidates = candidates.select(ROW, *(pl.col(c).str.strip_chars() for c in grid.letters))
    pool = {table: _spec(specs, table, where)} if table else dict(specs)

    best: tuple[int, int, TableSpec, dict[str, list[str]], dict[str, str]] | None = None
    for record in candidates.iter_rows(named=True):
        row = {k: v for k, v in record.items() if k != ROW and v}
        for spec in pool.values():
            found = _match_row(row, spec)
            if _missing_required(found, spec):
                continue
            if best is None or (best[0] == record[ROW] and len(found) > best[1]):
                best = (record[ROW], len(found), spec, found, row)
        if best is not None:
            break
    if best is None:
        raise _no_match(candidates, pool, where, table)
    row_number, _, spec, found, row = best
    clashes = {name: ls for name, ls in found.items() if len(ls) > 1}
    if clashes:
        name, clash_letters = next(iter(clashes.items()))
        both = " and ".join(f"{row[letter]!r} (column {letter})" for letter in clash_letters)
        raise HeaderError(f"{where}: headers {both} both map to column {spec.column(name).header!r}; rename or remove one")

    return row_number, spec, found, row


def filled_rows(grid: Grid) -> pl.DataFrame:
    """The grid's rows holding a value, cells as read.

    Raises:
        SheetError: no row holds one: the sheet is empty.
    """
    letters = grid.letters
    if letters:  # polars cannot fold any_horizontal over no columns
        filled = grid.cells.filter(pl.any_horizontal(pl.col(c).str.strip_chars().fill_null("") != "" for c in letters))
        if not filled.is_empty():
            return filled
    raise SheetError(f"{grid.path.name}, sheet {grid.sheet!r}: the sheet is empty (no header row, no data)")


def header_search_rows(filled: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``filled_rows`` searched for the header row: those among the sheet's first
    ``HEADER_SEARCH_ROWS`` rows, or down to its first filled row when that lies further."""
    return filled.filter(pl.col(ROW) <= max(HEADER_SEARCH_ROWS, int(filled[ROW][0])))


def map_sheet(
    source: Grid | Sheet,
    specs: Mapping[str, TableSpec],
    *,
    table: str | None = None,
    header_row: int | None = None,
    read_processes: int = 2,
) -> MappedSheet:
    """Choose the header row and spec, and return the data rows under spec column names.

    ``source`` is a sheet read as text (``read_grid``) or a sheet opened for the typed read
    (``open_sheet``): the header row is found in its first rows, then the rows below it are read
    (by ``read_processes`` processes, for a large .xlsx sheet: see ``toolkit.read.read_rows``).

    Raises:
        SheetError: the sheet holds no cells at all.
        HeaderError: no row holds a spec's required headers, or two headers name one column.
    """
    grid = source.head if isinstance(source, Sheet) else source
    row_number, spec, found, row = match_header(grid, specs, table=table, header_row=header_row)
    letter_of = {name: ls[0] for name, ls in found.items()}
    name_of = {letter: name for name, letter in letter_of.items()}
    if isinstance(source, Sheet):
        body = read_rows(source, header_row=row_number, processes=read_processes)
    else:
        body = grid.below(row_number)
    data = body.cells
    # Excel error cells in columns the spec does not map are ignored: they count as empty.
    ignored = body.cell_errors.filter(~pl.col("letter").is_in(list(name_of)))
    ignored_rows = {str(k[0]): g[ROW].to_list() for k, g in ignored.group_by("letter")}
    is_blank = pl.all_horizontal(_blank(c, data.schema[c]) | pl.col(ROW).is_in(ignored_rows.get(c, [])) for c in body.letters)
    blank_rows = 0
    if body.letters:
        blank_rows = data.select(is_blank.sum()).item()
        if blank_rows:  # most sheets have none: no copy of every row to drop nothing
            data = data.filter(~is_blank)
    ordered = [name for name in spec.names if name in letter_of]
    missing_letters = [letter_of[name] for name in ordered if letter_of[name] not in data.columns]
    if missing_letters:  # a header with no cell under it in the whole sheet
        data = data.with_columns(pl.lit(None, dtype=pl.String).alias(letter) for letter in missing_letters)
    raw = data.select(ROW, *(pl.col(letter_of[name]).alias(name) for name in ordered))
    errors = body.cell_errors.filter(pl.col("letter").is_in(list(name_of)))
    errors = errors.select(ROW, pl.col("letter").replace_strict(name_of).alias("column"), "error")
    unmapped = _unmapped(grid, row, data, set(name_of))
    return MappedSheet(
        spec=spec,
        header_row=row_number,
        headers={name: row[letter_of[name]] for name in ordered},
        raw=raw,
        cell_errors=errors,
        unmapped_columns=unmapped,
        blank_rows=int(blank_rows),
    )


def _spec(specs: Mapping[str, TableSpec], table: str, where: str) -> TableSpec:
    if table not in specs:
        raise HeaderError(f"{where}: no table spec named {table!r} (known: {', '.join(sorted(specs))})")
    return specs[table]


def _blank(column: str, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.String:
        return pl.col(column).str.strip_chars().fill_null("") == ""
    return pl.col(column).is_null()


def _unmapped(grid: Grid, header: Mapping[str, str], data: pl.DataFrame, mapped: set[str]) -> list[str]:
    unmapped = []
    letters = sorted({*grid.letters, *(c for c in data.columns if c != ROW)}, key=lambda c: (len(c), c))
    for letter in letters:
        if letter in mapped:
            continue
        if header.get(letter):
            unmapped.append(header[letter])
        elif letter in data.columns and data[letter].drop_nulls().len():
            unmapped.append(f"(no header, column {letter})")
    return unmapped


def _no_match(candidates: pl.DataFrame, pool: Mapping[str, TableSpec], where: str, table: str | None) -> HeaderError:
    # Report against the row and spec that came closest, so the message says what to fix.
    best_missing: list[str] | None = None
    best_row: dict[str, str] = {}
    best_spec = next(iter(pool.values()))
    for record in candidates.iter_rows(named=True):
        row = {k: v for k, v in record.items() if k != ROW and v}
        for spec in pool.values():
            missing = _missing_required(_match_row(row, spec), spec)
            if best_missing is None or len(missing) < len(best_missing):
                best_missing, best_row, best_spec = missing, row, spec
    missing = best_missing or []
    found = ", ".join(repr(v) for v in best_row.values()) or "nothing"
    listed = ", ".join(repr(m) for m in missing)
    if table:
        noun = "column" if len(missing) == 1 else "columns"
        return HeaderError(f"{where}: {len(missing)} required {noun} missing for table {table!r}: {listed} (found: {found})")
    return HeaderError(
        f"{where}: no table spec matches the headers (found: {found}); closest is {best_spec.table!r}, "
        f"missing {listed}; pass --table or --spec"
    )
