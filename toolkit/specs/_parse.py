"""Parsed TOML -> :class:`TableSpec`, checking everything an ingest would trip on.

Each problem is a :class:`SpecError` naming the spec, the line when the file's text is known
(``path:line: ...``, see ``_lines``) and what is wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import polars as pl

from toolkit.errors import SpecError
from toolkit.specs._lines import Lines
from toolkit.specs._model import (
    DECIMAL_TYPE,
    MAX_DECIMAL_PRECISION,
    NAME_PATTERN,
    NORMALIZERS,
    NUMERIC_TYPES,
    SQL_TYPES,
    Column,
    ForeignKey,
    Rule,
    TableSpec,
)

_TOP_LEVEL = ("table", "description", "key", "columns", "rules", "foreign_keys")


class _Problems:
    """Builds SpecErrors that name the spec and, when the text is known, the line."""

    def __init__(self, source: str, text: str | None) -> None:
        self.source = source
        self.lines = Lines.scan(text) if text is not None else Lines()

    def __call__(self, problem: str, section: str | None = None, index: int = 0, setting: str | None = None) -> SpecError:
        line = self.lines.line(section, index, setting)
        return SpecError(f"{self.source}{f':{line}' if line else ''}: {problem}")


def parse_spec(data: Mapping[str, Any], *, source: str = "<spec>", text: str | None = None) -> TableSpec:
    """Build a :class:`TableSpec` from parsed TOML, checking everything a load would trip on.

    ``text`` is the file's TOML text, used only to put line numbers in error messages.
    """
    fail = _Problems(source, text)
    extra = sorted(set(data) - set(_TOP_LEVEL))
    if extra:
        raise fail(f"unknown setting(s) {', '.join(extra)} (a spec has {', '.join(_TOP_LEVEL)})", None, 0, extra[0])
    table = data.get("table")
    if not isinstance(table, str) or not NAME_PATTERN.match(table) or table.startswith("_"):
        raise fail(f"'table' must be a name of letters, digits and _, got {table!r}", None, 0, "table")
    raw_columns = data.get("columns")
    if not isinstance(raw_columns, list) or not raw_columns:
        raise fail("needs at least one [[columns]] entry", None, 0, "columns")
    columns = tuple(_parse_column(raw, i, fail) for i, raw in enumerate(raw_columns))
    names = [c.name for c in columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        second = [i for i, n in enumerate(names) if n == duplicates[0]][1]
        raise fail(f"column names declared twice: {', '.join(duplicates)}", "columns", second, "name")
    # No key: a row is identified by all its values (re-runs skip identical rows; no conflicts).
    key = data.get("key", [])
    if not isinstance(key, list) or not all(isinstance(k, str) for k in key):
        raise fail(f"'key' must be a list of column names such as [\"id\"], got {key!r}", None, 0, "key")
    unknown = [k for k in key if k not in names]
    if unknown:
        raise fail(f"key column {', '.join(map(repr, unknown))} is not declared in [[columns]]", None, 0, "key")
    # A key column is required whether or not the spec says so: a row without its key has no identity.
    columns = tuple(dataclasses.replace(c, required=True) if c.name in key else c for c in columns)
    rules = tuple(_parse_rule(raw, i, columns, fail) for i, raw in enumerate(_entries(data, "rules", fail)))
    rule_names = [r.name for r in rules]
    twice = sorted({n for n in rule_names if rule_names.count(n) > 1})
    if twice:
        raise fail(f"rule names declared twice: {', '.join(twice)}", "rules", rule_names.index(twice[0], 1), "name")
    foreign_keys = tuple(_parse_foreign_key(raw, i, names, fail) for i, raw in enumerate(_entries(data, "foreign_keys", fail)))
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail(f"'description' must be text, got {description!r}", None, 0, "description")
    return TableSpec(
        table=table,
        columns=columns,
        key=tuple(key),
        rules=rules,
        foreign_keys=foreign_keys,
        description=description,
        source=source,
    )


def _entries(data: Mapping[str, Any], section: str, fail: _Problems) -> list[Any]:
    entries = data.get(section, [])
    if not isinstance(entries, list):
        raise fail(f"'{section}' must be a list of [[{section}]] entries, got {entries!r}", None, 0, section)
    return entries


def _parse_column(raw: Any, index: int, fail: _Problems) -> Column:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise fail(f"each [[columns]] entry needs a 'name', got {raw!r}", "columns", index)
    name = raw["name"]

    def bad(problem: str, setting: str | None = None) -> SpecError:
        return fail(f"column {name!r}: {problem}", "columns", index, setting)

    if not NAME_PATTERN.match(name) or name.startswith("_"):
        raise fail(f"column name {name!r} must be letters, digits and _ and not start with _", "columns", index, "name")
    extra = sorted(set(raw) - set(Column.__dataclass_fields__))
    if extra:
        raise bad(f"unknown setting(s) {', '.join(extra)}", extra[0])
    for setting in ("header", "type", "normalize"):
        if setting in raw and not isinstance(raw[setting], str):
            raise bad(f"{setting} must be text in quotes, got {raw[setting]!r}", setting)
    for setting in ("required", "unique"):
        # bool("false") is True: only TOML's own true and false are accepted.
        if setting in raw and not isinstance(raw[setting], bool):
            raise bad(f"{setting} must be true or false (without quotes), got {raw[setting]!r}", setting)
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise bad(f"aliases must be a list of headers in quotes, got {aliases!r}", "aliases")
    type_name = raw.get("type", "text").strip().lower()
    decimal = DECIMAL_TYPE.match(type_name)
    if type_name not in SQL_TYPES and not decimal:
        allowed = ", ".join([*SQL_TYPES, "decimal(p,s)"])
        raise bad(f"unknown type {raw.get('type')!r} (use one of {allowed})", "type")
    if decimal and not (1 <= int(decimal[1]) <= MAX_DECIMAL_PRECISION and int(decimal[2]) <= int(decimal[1])):
        raise bad(
            f"{type_name} is not a valid decimal: the precision (digits in all) must be 1 to {MAX_DECIMAL_PRECISION} "
            "and the scale (digits after the point) at most the precision, e.g. decimal(12,2)",
            "type",
        )
    type_name = f"decimal({int(decimal[1])},{int(decimal[2])})" if decimal else type_name
    normalize = raw.get("normalize")
    if normalize is not None and normalize not in NORMALIZERS:
        raise bad(f"unknown normalize {normalize!r} (use one of {', '.join(NORMALIZERS)})", "normalize")
    if normalize is not None and type_name != "text":
        raise bad(f"normalize = {normalize!r} applies to text columns, not {type_name}", "normalize")
    bounds = {b: raw.get(b) for b in ("min", "max", "greater_than", "less_than")}
    for bound, value in bounds.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad(f"{bound} must be a number, got {value!r}", bound)
        if type_name not in NUMERIC_TYPES and not decimal:
            raise bad(
                f"{bound} applies to number columns, not {type_name}; for dates write a rule such as "
                f"check = \"{name} >= DATE '2024-01-01'\"",
                bound,
            )
    return Column(
        name=name,
        header=str(raw.get("header", name)),
        type=type_name,
        required=raw.get("required", False),
        unique=raw.get("unique", False),
        aliases=tuple(aliases),
        normalize=normalize,
        **bounds,
    )


def _parse_rule(raw: Any, index: int, columns: tuple[Column, ...], fail: _Problems) -> Rule:
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("name", "check")):
        raise fail(f"each [[rules]] entry needs a 'name' and a 'check', got {raw!r}", "rules", index)
    extra = sorted(set(raw) - {"name", "check", "message"})
    if extra:
        raise fail(f"rule {raw['name']!r}: unknown setting(s) {', '.join(extra)}", "rules", index, extra[0])
    if not isinstance(raw.get("message", ""), str):
        raise fail(f"rule {raw['name']!r}: message must be text, got {raw['message']!r}", "rules", index, "message")
    rule = Rule(name=raw["name"], check=raw["check"], message=str(raw.get("message", raw["name"])))
    where = f"rule {rule.name!r}: check {rule.check!r}"
    try:
        referenced = rule.columns
    except Exception as exc:  # polars raises several types for SQL it cannot parse
        raise fail(f"{where} does not compile: {_first_line(exc)}", "rules", index, "check") from exc
    names = [c.name for c in columns]
    unknown = sorted(set(referenced) - set(names))
    if unknown:
        raise fail(f"{where} names unknown column(s) {', '.join(unknown)}", "rules", index, "check")
    # Evaluated once on no rows with the columns' types: a type error shows here, not mid-ingest.
    empty = pl.DataFrame(schema={c.name: c.polars_type for c in columns})
    try:
        result = empty.select(rule.expr.alias("__rule")).schema["__rule"]
    except Exception as exc:  # polars raises several types for mistyped expressions
        raise fail(f"{where} does not fit the column types: {_first_line(exc)}", "rules", index, "check") from exc
    if result != pl.Boolean:
        raise fail(
            f"{where} gives {result}, not true/false; write a comparison such as '{rule.check} > 0'", "rules", index, "check"
        )
    return rule


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _parse_foreign_key(raw: Any, index: int, names: list[str], fail: _Problems) -> ForeignKey:
    def listed(value: Any) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)

    if not isinstance(raw, dict) or not listed(raw.get("columns")) or not isinstance(raw.get("references"), str):
        raise fail(f"each [[foreign_keys]] entry needs 'columns' and 'references', got {raw!r}", "foreign_keys", index)
    about = f"foreign key to {raw['references']!r}"
    extra = sorted(set(raw) - {"columns", "references", "ref_columns"})
    if extra:
        raise fail(f"{about}: unknown setting(s) {', '.join(extra)}", "foreign_keys", index, extra[0])
    ref_columns = raw["ref_columns"] if "ref_columns" in raw else raw["columns"]
    if not listed(ref_columns):
        raise fail(f"{about}: ref_columns must be a list of column names", "foreign_keys", index, "ref_columns")
    fk = ForeignKey(
        columns=tuple(raw["columns"]),
        references=raw["references"],
        ref_columns=tuple(ref_columns),
        line=fail.lines.line("foreign_keys", index),
    )
    unknown = [c for c in fk.columns if c not in names]
    if unknown or len(fk.columns) != len(fk.ref_columns):
        raise fail(f"foreign key to {fk.references!r}: columns {list(fk.columns)} do not fit this table", "foreign_keys", index)
    return fk
