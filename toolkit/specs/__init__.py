"""Table specs: what a sheet must hold, as data read from TOML files.

A spec names the warehouse table, its columns (header, aliases, type, required, unique, bounds),
its key, its foreign keys and cross-column rules written as SQL expressions. The built-in specs
(``customers``, ``loans``) are TOML files in this folder: the one source of truth.

Everything an ingest would trip on is checked when a spec is read, and reported as a
:class:`SpecError` naming the file, the line where practical (``path:line: ...``) and the problem:
wrong setting types, bad decimals, rules that do not compile or do not give true/false on the
column types, keys and foreign keys naming columns that do not exist.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

from toolkit.errors import SpecError
from toolkit.specs._model import NORMALIZERS, NUMERIC_TYPES, SQL_TYPES, Column, ForeignKey, Rule, TableSpec
from toolkit.specs._parse import parse_spec

__all__ = [
    "NORMALIZERS",
    "NUMERIC_TYPES",
    "SQL_TYPES",
    "Column",
    "ForeignKey",
    "Rule",
    "TableSpec",
    "builtin_specs",
    "load_order",
    "load_queue",
    "load_spec",
    "load_specs",
    "parse_spec",
]


def load_spec(path: str | Path) -> TableSpec:
    """Read one TOML spec file; a malformed spec raises :class:`SpecError` naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not a text file (not UTF-8); save the spec as UTF-8 text") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = _TOML_POSITION.search(str(exc))
        where = f"{path}:{at[1]}" if at else str(path)
        raise SpecError(f"{where}: not valid TOML: {_TOML_POSITION.sub('', str(exc)).strip()}") from exc
    return parse_spec(data, source=str(path), text=text)


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)")


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
            where = f"{spec.source}:{fk.line}" if fk.line else spec.source
            parent = specs.get(fk.references)
            if parent is None:
                raise SpecError(f"{where}: foreign key references unknown table {fk.references!r}")
            missing = [c for c in fk.ref_columns if c not in parent.names]
            if missing:
                raise SpecError(
                    f"{where}: foreign key to {fk.references!r} names ref_columns {', '.join(map(repr, missing))} "
                    f"that spec {parent.source or parent.table} does not declare (it has: {', '.join(parent.names)})"
                )
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


def load_queue(tables: Mapping[int, str], specs: Mapping[str, TableSpec]) -> list[int]:
    """The positions of ``tables`` (position -> table name) in the order to load them: by the
    table's place in :func:`load_order` over ``specs`` (parents first), then by position."""
    rank = {name: i for i, name in enumerate(load_order(list(specs), specs))}
    return sorted(tables, key=lambda i: (rank[tables[i]], i))
