"""A spec's columns and rules as data: conversions from cell text and named boolean checks.

Null policy, written once: a missing cell (empty or whitespace only) fails only the
``required`` check; every other check passes on a missing or unconvertible value, so each
problem is reported once, by the check that owns it. Check names read ``column|check``.

A raw column is text (the cell as found) or, where the sheet's column holds one kind of cell,
typed (numbers, dates, booleans: see ``toolkit.read``). Typed cells convert directly; any pair of
spec type and cell type without a direct conversion goes through the cell's text, so both reads
judge a cell the same way, and messages always quote the cell's text.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from toolkit.read import as_text
from toolkit.specs import Column, TableSpec

_TIME_PART = r"^([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?$"
_MIDNIGHT = r"^([ T]0{1,2}:00(:00(\.0+)?)?)?$"
TEXT = pl.String()  # the type of a raw column read as text
_TRUE = ["true", "yes", "y", "1"]
_FALSE = ["false", "no", "n", "0"]


@dataclass(frozen=True)
class Check:
    """A named rule: ``valid`` is True for rows that pass; ``message`` is evaluated on failures."""

    name: str
    column: str | None  # spec column the check is about; None for cross-column rules
    valid: pl.Expr
    message: pl.Expr


def raw_name(column: str) -> str:
    """Name of the frame column holding a spec column's cells as read (text, or the one type they share)."""
    return f"{column}__raw"


def text(column: str, dtype: pl.DataType = TEXT) -> pl.Expr:
    """The cell text with surrounding whitespace stripped; empty text is null (missing)."""
    if dtype != pl.String:
        return as_text(pl.col(raw_name(column)), dtype)
    stripped = pl.col(raw_name(column)).str.strip_chars()
    return pl.when(stripped != "").then(stripped)


def present(column: str, dtype: pl.DataType = TEXT) -> pl.Expr:
    """Whether the cell holds a value (not empty, not only whitespace)."""
    return text(column, dtype).is_not_null() if dtype == pl.String else pl.col(raw_name(column)).is_not_null()


def convert(column: Column, dtype: pl.DataType = TEXT) -> pl.Expr:
    """Raw cell -> the column's type; null where missing or not convertible."""
    typed = _convert_typed(column, dtype)
    if typed is not None:
        return typed.cast(column.polars_type).alias(column.name)
    return _convert_text(column, text(column.name, dtype))


def _convert_typed(column: Column, dtype: pl.DataType) -> pl.Expr | None:
    """The direct conversion of a typed cell, or None to go through its text."""
    if dtype == pl.String:
        return None
    raw = pl.col(raw_name(column.name))
    kind = column.type
    if dtype == pl.Null:
        return pl.lit(None, dtype=column.polars_type)
    numeric = dtype in (pl.Float64, pl.Float32, pl.Int64, pl.Int32)
    if kind in ("integer", "integer32") and numeric:
        if dtype in (pl.Int64, pl.Int32):
            return _in_32_bits(column, raw)
        # An Excel number is a double: a whole one converts exactly; a fraction is not a whole number.
        whole = raw.is_finite() & (raw == raw.floor()) & (raw.abs() < 2.0**63)
        return _in_32_bits(column, pl.when(whole).then(raw.cast(pl.Int64, strict=False)))
    if kind == "number" and numeric:
        return pl.when(raw.cast(pl.Float64).is_finite()).then(raw.cast(pl.Float64))
    if kind == "date" and isinstance(dtype, pl.Datetime):
        return pl.when(raw.dt.time() == pl.time(0)).then(raw.dt.date())
    if kind == "date" and dtype == pl.Date:
        return raw
    if kind == "datetime" and isinstance(dtype, (pl.Datetime, pl.Date)):
        return raw.cast(pl.Datetime("us"))
    if kind == "boolean" and dtype == pl.Boolean:
        return raw
    if kind in ("integer", "integer32", "number", "date", "datetime") and dtype in (
        pl.Boolean,
        pl.Datetime,
        pl.Date,
        pl.Duration,
    ):
        return pl.lit(None, dtype=column.polars_type)  # a boolean, date or duration cell is not a number; a non-date not a date
    return None


def _in_32_bits(column: Column, value: pl.Expr) -> pl.Expr:
    """For an integer32 column, null beyond 32 bits (never an overflow); column_checks says why."""
    return pl.when(value.is_between(-(2**31), 2**31 - 1)).then(value) if column.type == "integer32" else value


def _convert_text(column: Column, s: pl.Expr) -> pl.Expr:
    """Stripped cell text -> the column's type; null where missing or not convertible."""
    kind = column.type
    if kind in ("integer", "integer32"):
        # "12.0" becomes "12" as text, so no digit is lost past 2**53; the float path is only for
        # exponent forms ("1e3") and only where a float holds every whole number exactly, so a
        # fraction ("12.0000000000000001") is never rounded away.
        digits = s.str.replace(r"^([+-]?\d+)\.0*$", "${1}")
        as_float = s.cast(pl.Float64, strict=False)
        whole = s.str.contains("[eE]") & as_float.is_finite() & (as_float == as_float.floor()) & (as_float.abs() < 2.0**53)
        value = pl.coalesce(digits.cast(pl.Int64, strict=False), pl.when(whole).then(as_float.cast(pl.Int64, strict=False)))
        value = _in_32_bits(column, value)
    elif kind == "number":
        as_float = s.cast(pl.Float64, strict=False)
        value = pl.when(as_float.is_finite()).then(as_float)
    elif kind.startswith("decimal"):
        dtype = column.polars_type
        assert isinstance(dtype, pl.Decimal)
        fraction = s.str.extract(r"\.(\d*?)0*$").str.len_chars().fill_null(0)
        value = pl.when(fraction <= (dtype.scale or 0)).then(s.cast(dtype, strict=False))
    elif kind == "date":
        day = s.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        value = pl.when(s.str.slice(10).str.contains(_MIDNIGHT)).then(day)
    elif kind == "datetime":
        value = s.str.replace("T", " ").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False)
        value = pl.coalesce(value, s.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")))
    elif kind == "boolean":
        lowered = s.str.to_lowercase()
        value = pl.when(lowered.is_in(_TRUE)).then(True).when(lowered.is_in(_FALSE)).then(False)
    elif column.normalize == "phone_in":
        value = _indian_phone(s)
    else:
        value = s
    return value.cast(column.polars_type).alias(column.name)


def _indian_phone(s: pl.Expr) -> pl.Expr:
    """10-digit Indian number: drop separators, then +91/0091/91 (12+ digits) or 0 (11 digits)."""
    compact = s.str.replace_all(r"[\s\-.()]", "")
    plus = compact.str.starts_with("+")
    body = compact.str.strip_prefix("+")
    n = body.str.len_chars()
    national = (
        pl.when((n >= 12) & body.str.starts_with("0091"))
        .then(body.str.slice(4))
        .when((n >= 12) & body.str.starts_with("91"))
        .then(body.str.slice(2))
        .when((n == 11) & body.str.starts_with("0") & ~plus)
        .then(body.str.slice(1))
        .when(~plus)
        .then(body)
    )
    return pl.when(national.str.contains(r"^\d{10}$")).then(national)


def _quoted(header: str, template: str, s: pl.Expr) -> pl.Expr:
    """``Header: 'value' <template>`` with the cell text quoted as found."""
    return pl.format(f"{header}: '{{}}' {template}", s.fill_null(""))


_TYPE_MESSAGES = {
    "integer": "is not a whole number",
    "number": "is not a number",
    "date": "is not a date (expected a date cell or YYYY-MM-DD text)",
    "datetime": "is not a date-time (expected a date cell or YYYY-MM-DD HH:MM:SS text)",
    "boolean": "is not true/false (expected TRUE, FALSE, yes, no, 1 or 0)",
}


_INT32_MESSAGE = "is too large for a 32-bit whole number (the range is -2147483648 to 2147483647)"


def column_checks(column: Column, header: str, *, error_rows: list[int] | None = None, dtype: pl.DataType = TEXT) -> list[Check]:
    """Checks for one column present in the file; ``header`` is the header as found and ``dtype``
    the raw column's type (text, or the one kind of cell the sheet's column holds)."""
    name = column.name
    s = text(name, dtype)
    value = pl.col(name)
    filled = present(name, dtype)
    checks: list[Check] = []
    is_error = pl.col("__row").is_in(error_rows) if error_rows else pl.lit(False)
    if error_rows:
        checks.append(Check(f"{name}|excel_error", name, ~is_error, pl.format(f"{header}: Excel error {{}}", s)))
    if column.required:
        checks.append(Check(f"{name}|required", name, filled, pl.lit(f"Missing {header}")))
    convertible = ~filled | is_error | value.is_not_null()
    if column.type == "date":
        if dtype == pl.String:
            day_part = s.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
            after = s.str.slice(10)
            has_time = day_part.is_not_null() & after.str.contains(_TIME_PART) & ~after.str.contains(_MIDNIGHT)
        elif isinstance(dtype, pl.Datetime):
            raw = pl.col(raw_name(name))
            has_time = raw.is_not_null() & (raw.dt.time() != pl.time(0))
        else:
            has_time = pl.lit(False)
        checks.append(Check(f"{name}|date", name, convertible | has_time, _quoted(header, _TYPE_MESSAGES["date"], s)))
        checks.append(
            Check(f"{name}|time_of_day", name, ~has_time, _quoted(header, "has a time of day; the column holds dates only", s))
        )
    elif column.type.startswith("decimal"):
        scale = column.type.split(",")[1].rstrip(") ")
        message = f"is not a number with at most {scale} decimal places"
        checks.append(Check(f"{name}|decimal", name, convertible, _quoted(header, message, s)))
    elif column.normalize == "phone_in":
        checks.append(Check(f"{name}|phone", name, convertible, _quoted(header, "is not a 10-digit phone number", s)))
    elif column.type == "integer32":
        # One check, as for 64 bits; a whole number that does not fit in 32 bits is said as such.
        f = s.cast(pl.Float64, strict=False)
        too_large = f.is_finite() & (f == f.floor()) & (f.abs() >= 2**31)
        said = pl.when(too_large).then(_quoted(header, _INT32_MESSAGE, s))
        checks.append(Check(f"{name}|integer", name, convertible, said.otherwise(_quoted(header, _TYPE_MESSAGES["integer"], s))))
    elif column.type in _TYPE_MESSAGES:
        checks.append(Check(f"{name}|{column.type}", name, convertible, _quoted(header, _TYPE_MESSAGES[column.type], s)))
    bounds = (
        ("min", column.min, pl.Expr.__ge__, "is less than the minimum {}"),
        ("max", column.max, pl.Expr.__le__, "is more than the maximum {}"),
        ("greater_than", column.greater_than, pl.Expr.__gt__, "must be greater than {}"),
        ("less_than", column.less_than, pl.Expr.__lt__, "must be less than {}"),
    )
    for rule, bound, compare, template in bounds:
        if bound is not None:
            ok = compare(value, bound).fill_null(True)
            shown = int(bound) if float(bound).is_integer() else bound
            checks.append(Check(f"{name}|{rule}", name, ok, _quoted(header, template.format(shown), s)))
    return checks


def table_checks(
    spec: TableSpec, headers: dict[str, str], cell_errors: pl.DataFrame, dtypes: dict[str, pl.DataType] | None = None
) -> list[Check]:
    """Every check for the columns the file provides, then the spec's cross-column rules.

    ``dtypes``: spec column name -> type of its raw column (text when not given)."""
    checks: list[Check] = []
    for column in spec.columns:
        if column.name in headers:
            rows = cell_errors.filter(pl.col("column") == column.name)["__row"].to_list()
            dtype = (dtypes or {}).get(column.name, TEXT)
            checks.extend(column_checks(column, headers[column.name], error_rows=rows, dtype=dtype))
    for rule in spec.rules:
        # A rule over a column the file lacks cannot be judged: the column is null, so it passes.
        checks.append(Check(rule.name, None, rule.expr.fill_null(True), pl.lit(rule.message)))
    return checks
