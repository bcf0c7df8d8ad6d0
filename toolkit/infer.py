"""Draft a table spec from a sample workbook: ``python -m toolkit infer WORKBOOK > spec.toml``.

Types come from the values through the same conversions validation uses, so ingesting the sample
with its own inferred spec rejects nothing. Bounds seen in the sample are written as commented-out
settings (numbers) or commented-out ``[[rules]]`` (dates), for the analyst to keep or drop; so is
``unique`` on columns that merely happen to be unique in the sample.

The header row (unless given) is found among the filled rows of Excel rows 1-20 (or the first filled
row, if lower; see match.header_search_rows), so a title and
a blank row above the table are skipped: it is the first row whose non-empty cells are all text
(no number, no date) and as many as in the widest of those rows; failing that, the widest
all-text row with a row below it; failing that, the first row as wide as the widest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from toolkit import sql
from toolkit.errors import SheetError
from toolkit.match import filled_rows, header_search_rows, normalize_header
from toolkit.read import ROW, Grid, read_grid
from toolkit.rules import convert, raw_name
from toolkit.specs import Column

#: Tried in this order: the first type every value converts to wins.
_CANDIDATE_TYPES = ("integer", "number", "date", "datetime", "boolean")
_KEY_HINT = re.compile(r"(^|_)(id|key|code|sku|number|no)$")


@dataclass(frozen=True)
class InferredColumn:
    name: str
    header: str
    type: str
    required: bool
    unique: bool
    low: object = None
    high: object = None


def column_name(header: str, taken: set[str]) -> str:
    """A spec column name from a header: ``'Loan Amount (₹)'`` -> ``loan_amount``."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", header.strip().lower()).strip("_") or "column"
    if name[0].isdigit():
        name = f"c_{name}"
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


@dataclass(frozen=True)
class _Sample:
    """A sheet split at its header row: ``header`` maps letters to header text; ``data`` holds the
    non-blank rows below it."""

    grid: Grid
    header_row: int
    header: dict[str, str]
    data: pl.DataFrame


def _read_sample(path: str | Path, *, sheet: str | int | None, header_row: int | None) -> _Sample:
    grid = read_grid(path, sheet=sheet)
    cells = grid.cells
    filled = filled_rows(grid)
    if header_row is not None and cells.filter(pl.col(ROW) == header_row).is_empty():
        raise SheetError(f"{Path(path).name}, sheet {grid.sheet!r}: header row {header_row} is beyond the last row")
    header_at = header_row if header_row is not None else find_header_row(header_search_rows(filled))
    header = cells.filter(pl.col(ROW) == header_at).row(0, named=True)
    texts = {letter: (header.get(letter) or "").strip() for letter in grid.letters}
    return _Sample(grid, header_at, texts, filled.filter(pl.col(ROW) > header_at))


def find_header_row(rows: pl.DataFrame) -> int:
    """The Excel row of the headers among ``rows`` (``__row`` and raw text cells; see the module docstring)."""
    shapes = []
    for record in rows.iter_rows(named=True):
        values = [str(v).strip() for k, v in record.items() if k != ROW and v is not None and str(v).strip()]
        shapes.append((int(record[ROW]), len(values), all(not _looks_like_a_value(v) for v in values)))
    widest = max(n for _, n, _ in shapes)
    for row, n, all_text in shapes:
        if all_text and n == widest:
            return row
    # A text row above data (a narrower header, data spilling into unheaded columns), else the
    # first row as wide as the data (headers that are numbers, such as years).
    texts = [(row, n) for row, n, all_text in shapes[:-1] if all_text]
    if texts:
        return max(texts, key=lambda row_n: (row_n[1], -row_n[0]))[0]
    return next(row for row, n, _ in shapes if n == widest)


_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")


def _looks_like_a_value(text: str) -> bool:
    """A number or a date (as the reader gives date cells): a data cell, not a header."""
    try:
        float(text)
    except ValueError:
        return bool(_DATE_TEXT.match(text))
    return True


def infer_columns(path: str | Path, *, sheet: str | int | None = None, header_row: int | None = None) -> list[InferredColumn]:
    return _columns(_read_sample(path, sheet=sheet, header_row=header_row))


def _columns(sample: _Sample) -> list[InferredColumn]:
    error_letters = set(sample.grid.cell_errors["letter"].to_list())
    taken: set[str] = set()
    seen_headers: set[str] = set()
    columns = []
    for letter in sample.grid.letters:
        text = sample.header[letter]
        if not text or normalize_header(text) in seen_headers:
            continue  # no header, or a repeated one: it cannot be matched, so the spec leaves it out
        seen_headers.add(normalize_header(text))
        name = column_name(text, taken)
        raw = sample.data.select(pl.col(letter).alias(raw_name(name)))
        columns.append(_infer_one(name, text, raw, has_errors=letter in error_letters))
    return columns


def _infer_one(name: str, header: str, raw: pl.DataFrame, *, has_errors: bool) -> InferredColumn:
    stripped = raw[raw_name(name)].str.strip_chars()
    present = stripped.filter(stripped.fill_null("") != "")
    required = present.len() == raw.height and raw.height > 0 and not has_errors
    chosen, values = "text", present
    # Leading zeros ("007") are identifiers, not numbers: converting would lose them.
    leading_zero = present.str.contains(r"^0\d").any()
    # A time of day or a duration is a date-time on Excel's day zero as text, but a duration when
    # ingest reads the column typed: neither a date nor a date-time, so the column stays text.
    day_zero = present.str.starts_with("1899-12-31 ").any()
    for kind in _CANDIDATE_TYPES:
        if present.is_empty() or (leading_zero and kind in ("integer", "number")) or (day_zero and kind in ("date", "datetime")):
            break
        if kind == "boolean" and not present.str.to_lowercase().is_in(["true", "false"]).all():
            continue
        converted = raw.select(convert(Column(name=name, header=header, type=kind)))[name]
        if converted.null_count() == raw.height - present.len():
            chosen, values = kind, converted.drop_nulls()
            break
    unique = values.len() > 0 and values.n_unique() == values.len()
    low = high = None
    if chosen in ("integer", "number") and values.len():
        low, high = values.min(), values.max()
    elif chosen in ("date", "datetime") and values.len():
        # as text: a date past year 9999 exists in polars but not in Python's datetime
        frame = values.to_frame("v")
        low, high = frame.select(pl.col("v").min().cast(pl.String), pl.col("v").max().cast(pl.String).alias("w")).row(0)
    return InferredColumn(name, header, chosen, required, unique, low, high)


def choose_key(columns: Sequence[InferredColumn], raw_pairs: pl.DataFrame | None = None) -> list[str]:
    """A required column unique in the sample (preferring ID-like names), else none."""
    candidates = [c for c in columns if c.required and c.unique and c.type in ("integer", "text")]
    candidates.sort(key=lambda c: (not _KEY_HINT.search(c.name), columns.index(c)))
    return [candidates[0].name] if candidates else []


def infer_spec(
    path: str | Path, *, sheet: str | int | None = None, table: str | None = None, header_row: int | None = None
) -> str:
    """TOML text of a draft spec for the sheet; the analyst reviews it before use."""
    path = Path(path)
    sample = _read_sample(path, sheet=sheet, header_row=header_row)
    columns = _columns(sample)
    table = table or column_name(path.stem, set())
    key = choose_key(columns) or _pair_key(sample, columns)
    lines = [
        f"# Draft spec inferred from {path.name}: review types, required flags, the key and the rules.",
        f"table = {json.dumps(table)}",
        f"key = {json.dumps(key)}"
        if key
        else "key = []  # no unique column or pair in the sample: rows are identified by all their values",
        "",
    ]
    for column in columns:
        lines += [
            "[[columns]]",
            f"name = {json.dumps(column.name)}",
            f"header = {json.dumps(column.header)}",
            f"type = {json.dumps(column.type)}",
            f"required = {str(column.required).lower()}",
        ]
        if column.unique and column.name not in key:
            lines.append("# unique = true  # unique in the sample")
        if column.low is not None and column.type in ("integer", "number"):
            lines.append(f"# min = {_toml_value(column.low)}  # smallest in the sample")
            lines.append(f"# max = {_toml_value(column.high)}  # largest in the sample")
        elif column.low is not None:
            lines.append(f"# in the sample: from {column.low} to {column.high}")
        lines.append("")
    return "\n".join(lines + _date_rules(columns))


def _date_rules(columns: Sequence[InferredColumn]) -> list[str]:
    """The sample's first and last dates as ``[[rules]]``, commented out: uncommented, they compile."""
    lines = []
    for c in columns:
        if c.type not in ("date", "datetime") or not all(_DATE_TEXT.match(str(v)) for v in (c.low, c.high)):
            continue  # no dates, or beyond year 9999 (no SQL literal for those)
        literal = "DATE" if c.type == "date" else "TIMESTAMP"
        for suffix, op, moment, word in (("from", ">=", c.low, "before"), ("until", "<=", c.high, "after")):
            value = str(moment).removesuffix(".000000")
            edge = "earliest" if suffix == "from" else "latest"
            lines += [
                "# [[rules]]",
                f"# name = {json.dumps(f'{c.name}_{suffix}')}",
                f"# check = {json.dumps(f'{_sql_name(c.name)} {op} {literal} {_sql_string(value)}')}",
                f"# message = {json.dumps(f'{c.header} is {word} {value}, the {edge} in the sample')}",
                "#",
            ]
    if not lines:
        return []
    return ["# Dates seen in the sample, as rules: uncomment a block (drop the leading '# ') to keep it.", *lines[:-1], ""]


def _sql_name(name: str) -> str:
    """The column as SQL: bare when polars reads it as that column, else quoted (date, end, order...)."""
    try:
        if pl.sql_expr(f"{name} IS NULL").meta.root_names() == [name]:
            return name
    except Exception:  # noqa: BLE001 - a keyword polars cannot parse as a column; quoted below
        pass
    return sql.quote(name)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _pair_key(sample: _Sample, columns: Sequence[InferredColumn]) -> list[str]:
    """Two required columns that are unique together in the sample, if any."""
    required = [c for c in columns if c.required and c.type in ("integer", "text", "date")]
    if len(required) < 2:
        return []
    letter_of = {text: letter for letter, text in reversed(sample.header.items())}
    data = sample.data
    for i, first in enumerate(required):
        for second in required[i + 1 :]:
            pair = data.select(letter_of[first.header], letter_of[second.header])
            if pair.height and pair.n_unique() == pair.height:
                return [first.name, second.name]
    return []


def _toml_value(value: object) -> str:
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))
