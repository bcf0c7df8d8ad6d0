"""Table specs: what a sheet must hold, as data read from TOML files.

A spec names the warehouse table, its columns (header, aliases, type, required, unique, bounds),
its key, its foreign keys and cross-column rules written as SQL expressions. The built-in specs
(``customers``, ``loans``) are TOML files in this folder: the one source of truth.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from toolkit.errors import SpecError

#: Spec type name -> DuckDB column type. ``decimal(p,s)`` is parsed separately.
SQL_TYPES = {
    "integer": "BIGINT",
    "number": "DOUBLE",
    "text": "VARCHAR",
    "date": "DATE",
    "datetime": "TIMESTAMP",
    "boolean": "BOOLEAN",
}
NORMALIZERS = ("phone_in",)
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
        decimal = _DECIMAL.match(self.type)
        if decimal:
            return f"DECIMAL({decimal[1]},{decimal[2]})"
        return SQL_TYPES[self.type]

    @property
    def polars_type(self) -> pl.DataType:
        decimal = _DECIMAL.match(self.type)
        if decimal:
            return pl.Decimal(int(decimal[1]), int(decimal[2]))
        return {
            "integer": pl.Int64(),
            "number": pl.Float64(),
            "text": pl.String(),
            "date": pl.Date(),
            "datetime": pl.Datetime("us"),
            "boolean": pl.Boolean(),
        }[self.type]


@dataclass(frozen=True)
class Rule:
    """A cross-column rule: a SQL boolean expression over column names, True when valid."""

    name: str
    check: str
    message: str

    @property
    def expr(self) -> pl.Expr:
        return pl.sql_expr(self.check)


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    references: str
    ref_columns: tuple[str, ...]


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

    def __repr__(self) -> str:
        return f"<TableSpec {self.table} ({', '.join(self.names)}) key=({', '.join(self.key)})>"


def load_spec(path: str | Path) -> TableSpec:
    """Read one TOML spec file; a malformed spec raises :class:`SpecError` naming the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from exc
    return parse_spec(data, source=str(path))


def parse_spec(data: Mapping[str, Any], *, source: str = "<spec>") -> TableSpec:
    """Build a :class:`TableSpec` from parsed TOML, checking everything a load would trip on."""

    def fail(problem: str) -> SpecError:
        return SpecError(f"{source}: {problem}")

    table = data.get("table")
    if not isinstance(table, str) or not _NAME.match(table) or table.startswith("_"):
        raise fail(f"'table' must be a name of letters, digits and _, got {table!r}")
    raw_columns = data.get("columns")
    if not isinstance(raw_columns, list) or not raw_columns:
        raise fail("needs at least one [[columns]] entry")
    columns = tuple(_parse_column(raw, fail) for raw in raw_columns)
    names = [c.name for c in columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise fail(f"column names declared twice: {', '.join(duplicates)}")
    # No key: a row is identified by all its values (re-runs skip identical rows; no conflicts).
    key = tuple(data.get("key", ()))
    unknown = [k for k in key if k not in names]
    if unknown:
        raise fail(f"key column {', '.join(map(repr, unknown))} is not declared in [[columns]]")
    # A key column is required whether or not the spec says so: a row without its key has no identity.
    columns = tuple(dataclasses.replace(c, required=True) if c.name in key else c for c in columns)
    rules = tuple(_parse_rule(raw, names, fail) for raw in data.get("rules", ()))
    foreign_keys = tuple(_parse_foreign_key(raw, names, fail) for raw in data.get("foreign_keys", ()))
    return TableSpec(
        table=table,
        columns=columns,
        key=key,
        rules=rules,
        foreign_keys=foreign_keys,
        description=str(data.get("description", "")),
        source=source,
    )


def _parse_column(raw: Any, fail: Any) -> Column:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise fail(f"each [[columns]] entry needs a 'name', got {raw!r}")
    name = raw["name"]
    if not _NAME.match(name) or name.startswith("_"):
        raise fail(f"column name {name!r} must be letters, digits and _ and not start with _")
    known = set(Column.__dataclass_fields__)
    extra = sorted(set(raw) - known)
    if extra:
        raise fail(f"column {name!r}: unknown setting(s) {', '.join(extra)}")
    type_name = str(raw.get("type", "text")).strip().lower()
    if type_name not in SQL_TYPES and not _DECIMAL.match(type_name):
        allowed = ", ".join([*SQL_TYPES, "decimal(p,s)"])
        raise fail(f"column {name!r}: unknown type {raw.get('type')!r} (use one of {allowed})")
    normalize = raw.get("normalize")
    if normalize is not None and normalize not in NORMALIZERS:
        raise fail(f"column {name!r}: unknown normalize {normalize!r} (use one of {', '.join(NORMALIZERS)})")
    bounds = {b: raw.get(b) for b in ("min", "max", "greater_than", "less_than")}
    for bound, value in bounds.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise fail(f"column {name!r}: {bound} must be a number, got {value!r}")
    return Column(
        name=name,
        header=str(raw.get("header", name)),
        type=type_name,
        required=bool(raw.get("required", False)),
        unique=bool(raw.get("unique", False)),
        aliases=tuple(str(a) for a in raw.get("aliases", ())),
        normalize=normalize,
        **bounds,
    )


def _parse_rule(raw: Any, names: list[str], fail: Any) -> Rule:
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("name", "check")):
        raise fail(f"each [[rules]] entry needs a 'name' and a 'check', got {raw!r}")
    rule = Rule(name=raw["name"], check=raw["check"], message=str(raw.get("message", raw["name"])))
    try:
        referenced = rule.expr.meta.root_names()
    except Exception as exc:  # polars raises several types for SQL it cannot parse
        raise fail(f"rule {rule.name!r}: check {rule.check!r} does not compile: {exc}") from exc
    unknown = sorted(set(referenced) - set(names))
    if unknown:
        raise fail(f"rule {rule.name!r}: check {rule.check!r} names unknown column(s) {', '.join(unknown)}")
    return rule


def _parse_foreign_key(raw: Any, names: list[str], fail: Any) -> ForeignKey:
    try:
        fk = ForeignKey(
            columns=tuple(raw["columns"]),
            references=str(raw["references"]),
            ref_columns=tuple(raw.get("ref_columns", raw["columns"])),
        )
    except (KeyError, TypeError) as exc:
        raise fail(f"each [[foreign_keys]] entry needs 'columns' and 'references', got {raw!r}") from exc
    unknown = [c for c in fk.columns if c not in names]
    if unknown or len(fk.columns) != len(fk.ref_columns):
        raise fail(f"foreign key to {fk.references!r}: columns {list(fk.columns)} do not fit this table")
    return fk


def builtin_specs() -> dict[str, TableSpec]:
    """The specs shipped with the toolkit, by table name."""
    folder = resources.files("toolkit.specs")
    specs = [load_spec(Path(str(entry))) for entry in folder.iterdir() if entry.name.endswith(".toml")]
    return {spec.table: spec for spec in sorted(specs, key=lambda s: s.table)}


def load_specs(paths: Iterable[str | Path] = (), *, include_builtin: bool = True) -> dict[str, TableSpec]:
    """Built-in specs plus those in ``paths`` (files or folders of ``*.toml``); later ones win."""
    specs = builtin_specs() if include_builtin else {}
    for path in map(Path, paths):
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            raise SpecError(f"{path}: folder holds no *.toml spec files")
        for file in files:
            spec = load_spec(file)
            specs[spec.table] = spec
    for spec in specs.values():
        for fk in spec.foreign_keys:
            if fk.references not in specs:
                raise SpecError(f"{spec.source}: foreign key references unknown table {fk.references!r}")
    return specs


def load_order(tables: Iterable[str], specs: Mapping[str, TableSpec]) -> list[str]:
    """Tables sorted so that a table comes after those its foreign keys reference."""
    pending = list(dict.fromkeys(tables))
    ordered: list[str] = []
    while pending:
        for table in pending:
            parents = {fk.references for fk in specs[table].foreign_keys} - {table}
            if not parents & set(pending):
                ordered.append(table)
                pending.remove(table)
                break
        else:  # a cycle: keep the given order for the rest
            ordered.extend(pending)
            break
    return ordered
