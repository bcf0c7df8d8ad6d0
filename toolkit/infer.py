"""Draft a table spec from a sample workbook: ``python -m toolkit infer WORKBOOK > spec.toml``.

Types come from the values through the same conversions validation uses, so ingesting the sample
with its own inferred spec rejects nothing. Bounds seen in the sample are written as commented-out
settings, for the analyst to keep or drop; so is ``unique`` on columns that merely happen to be
unique in the sample.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from toolkit.errors import SheetError
from toolkit.match import HEADER_SEARCH_ROWS, normalize_header
from toolkit.read import ROW, read_grid
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


def infer_columns(path: str | Path, *, sheet: str | int | None = None, header_row: int | None = None) -> list[InferredColumn]:
    grid = read_grid(path, sheet=sheet)
    letters = grid.letters
    cells = grid.cells
    non_blank = (
        cells.filter(pl.any_horizontal(pl.col(c).str.strip_chars().fill_null("") != "" for c in letters)) if letters else cells
    )
    if not letters or non_blank.is_empty():
        raise SheetError(f"{Path(path).name}, sheet {grid.sheet!r}: the sheet is empty (no header row, no data)")
    header_at = header_row if header_row is not None else int(non_blank[ROW][0])
    if header_at > max(HEADER_SEARCH_ROWS, int(non_blank[ROW][0])) and header_row is None:
        header_at = int(non_blank[ROW][0])
    header = cells.filter(pl.col(ROW) == header_at).row(0, named=True)
    data = non_blank.filter(pl.col(ROW) > header_at)
    error_letters = set(grid.cell_errors["letter"].to_list())
    taken: set[str] = set()
    seen_headers: set[str] = set()
    columns = []
    for letter in letters:
        text = (header.get(letter) or "").strip()
        if not text or normalize_header(text) in seen_headers:
            continue  # no header, or a repeated one: it cannot be matched, so the spec leaves it out
        seen_headers.add(normalize_header(text))
        name = column_name(text, taken)
        raw = data.select(pl.col(letter).alias(raw_name(name)))
        columns.append(_infer_one(name, text, raw, has_errors=letter in error_letters))
    return columns


def _infer_one(name: str, header: str, raw: pl.DataFrame, *, has_errors: bool) -> InferredColumn:
    stripped = raw[raw_name(name)].str.strip_chars()
    present = stripped.filter(stripped.fill_null("") != "")
    required = present.len() == raw.height and raw.height > 0 and not has_errors
    chosen, values = "text", present
    # Leading zeros ("007") are identifiers, not numbers: converting would lose them.
    leading_zero = present.str.contains(r"^0\d").any()
    for kind in _CANDIDATE_TYPES:
        if present.is_empty() or (leading_zero and kind in ("integer", "number")):
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
    columns = infer_columns(path, sheet=sheet, header_row=header_row)
    table = table or column_name(path.stem, set())
    key = choose_key(columns) or _pair_key(path, columns, sheet=sheet, header_row=header_row)
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
    return "\n".join(lines)


def _pair_key(path: Path, columns: Sequence[InferredColumn], *, sheet: str | int | None, header_row: int | None) -> list[str]:
    """Two required columns that are unique together in the sample, if any."""
    required = [c for c in columns if c.required and c.type in ("integer", "text", "date")]
    if len(required) < 2:
        return []
    grid = read_grid(path, sheet=sheet)
    header_at = header_row or int(grid.cells.filter(pl.any_horizontal(pl.col(c).is_not_null() for c in grid.letters))[ROW][0])
    header = grid.cells.filter(pl.col(ROW) == header_at).row(0, named=True)
    letter_of = {(header.get(letter) or "").strip(): letter for letter in grid.letters}
    data = grid.cells.filter(pl.col(ROW) > header_at)
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
