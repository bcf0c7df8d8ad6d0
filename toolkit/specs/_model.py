"""The shape of a table spec: columns, rules, foreign keys, and the types they map to."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import polars as pl

#: Spec type name -> (DuckDB column type, polars type). ``decimal(p,s)`` is parsed separately.
_TYPES: dict[str, tuple[str, pl.DataType]] = {
    "integer": ("BIGINT", pl.Int64()),
    "integer32": ("INTEGER", pl.Int32()),
    "number": ("DOUBLE", pl.Float64()),
    "text": ("VARCHAR", pl.String()),
    "date": ("DATE", pl.Date()),
    "datetime": ("TIMESTAMP", pl.Datetime("us")),
    "boolean": ("BOOLEAN", pl.Boolean()),
}
#: Spec type name -> DuckDB column type.
SQL_TYPES = {name: sql for name, (sql, _) in _TYPES.items()}
NORMALIZERS = ("phone_in",)
#: Types that take min, max, greater_than and less_than (besides decimal(p,s)).
NUMERIC_TYPES = ("integer", "integer32", "number")
#: DuckDB's limit on a DECIMAL's digits.
MAX_DECIMAL_PRECISION = 38
DECIMAL_TYPE = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Column:
    """One column of a table spec."""

    name: str
    header: str
    type: str = "text"
    required: bool = False
    unique: bool = False
    aliases: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    greater_than: float | None = None
    less_than: float | None = None
    normalize: str | None = None

    @property
    def sql_type(self) -> str:
        decimal = DECIMAL_TYPE.match(self.type)
        if decimal:
            return f"DECIMAL({decimal[1]},{decimal[2]})"
        return _TYPES[self.type][0]

    @property
    def polars_type(self) -> pl.DataType:
        decimal = DECIMAL_TYPE.match(self.type)
        if decimal:
            return pl.Decimal(int(decimal[1]), int(decimal[2]))
        return _TYPES[self.type][1]


@dataclass(frozen=True)
class Rule:
    """A cross-column rule: a SQL boolean expression over column names, True when valid."""

    name: str
    check: str
    message: str

    @property
    def expr(self) -> pl.Expr:
        return pl.sql_expr(self.check)

    @functools.cached_property
    def columns(self) -> tuple[str, ...]:
        """The columns the check names, in the order it names them (parsed once: asked per failed row)."""
        return tuple(dict.fromkeys(self.expr.meta.root_names()))


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    references: str
    ref_columns: tuple[str, ...]
    #: where the entry is in its spec file, for errors found once the parent spec is known
    line: int | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TableSpec:
    """A warehouse table and the rules its rows obey."""

    table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    rules: tuple[Rule, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    description: str = ""
    source: str = field(default="", compare=False)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def identity(self) -> tuple[str, ...]:
        """The columns that identify a row: the key, or every column when the spec has no key."""
        return self.key or tuple(self.names)

    @property
    def unique_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.unique and (c.name,) != self.key]

    def rule_columns(self, rule: str) -> tuple[str, ...]:
        """The columns a failed check is about, for highlighting cells.

        A cross-column rule names the columns its SQL expression uses; the toolkit's own checks
        are named ``columns|check`` with several columns joined by ``+`` (``customer_id+loan_id|key``).
        """
        for own in self.rules:
            if own.name == rule:
                return own.columns
        named, bar, _ = rule.rpartition("|")
        return tuple(c for c in named.split("+") if c in self.names) if bar else ()

    def __repr__(self) -> str:
        return f"<TableSpec {self.table} ({', '.join(self.names)}) key=({', '.join(self.key)})>"
