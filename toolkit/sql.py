"""SQL text built by pure functions; every identifier is quoted, never interpolated raw."""

from __future__ import annotations

from collections.abc import Sequence

from toolkit.specs import TableSpec

RUN_COLUMNS = ("_run_id", "_source_row")


def quote(identifier: str) -> str:
    """A DuckDB identifier in double quotes, embedded quotes doubled."""
    return '"' + identifier.replace('"', '""') + '"'


def column_list(names: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{quote(n)}" for n in names)


def create_table(spec: TableSpec) -> str:
    columns = [f"{quote(c.name)} {c.sql_type}" + (" NOT NULL" if c.required else "") for c in spec.columns]
    columns += ['"_run_id" VARCHAR NOT NULL', '"_source_row" BIGINT NOT NULL']
    constraints = [f"PRIMARY KEY ({column_list(spec.key)})"] if spec.key else []
    constraints += [f"UNIQUE ({quote(name)})" for name in spec.unique_columns]
    body = ",\n  ".join(columns + constraints)
    return f"CREATE TABLE IF NOT EXISTS {quote(spec.table)} (\n  {body}\n)"


def key_match(
    left: str, right: str, left_columns: Sequence[str], right_columns: Sequence[str] | None = None, *, nulls_equal: bool = False
) -> str:
    right_columns = right_columns or left_columns
    op = "IS NOT DISTINCT FROM" if nulls_equal else "="
    return " AND ".join(f"{left}.{quote(a)} {op} {right}.{quote(b)}" for a, b in zip(left_columns, right_columns, strict=True))


def identity_match(spec: TableSpec, left: str, right: str, present: Sequence[str]) -> str:
    """Rows are the same record: equal keys, or for a keyless spec equal in every provided column."""
    if spec.key:
        return key_match(left, right, spec.key)
    return key_match(left, right, [c for c in spec.names if c in present], nulls_equal=True)


def differing_rows(spec: TableSpec, batch: str, columns: Sequence[str]) -> str:
    """Stored rows whose key appears in ``batch`` with other values in ``columns`` (see
    :func:`stored_matches`), with the batch's ``__row``."""
    return (
        f"SELECT b.__row, {column_list(columns, 't.')} FROM {quote(batch)} b "
        f"JOIN {quote(spec.table)} t ON {identity_match(spec, 'b', 't', columns)} WHERE {_differs(spec, columns)}"
    )


def stored_matches(spec: TableSpec, batch: str, columns: Sequence[str]) -> str:
    """``__row`` of each batch row stored already, and ``__differs``: whether the stored row has
    another value in one of ``columns`` other than the key (nulls compare equal to nulls)."""
    return (
        f"SELECT b.__row, {_differs(spec, columns)} AS __differs FROM {quote(batch)} b "
        f"JOIN {quote(spec.table)} t ON {identity_match(spec, 'b', 't', columns)}"
    )


def _differs(spec: TableSpec, columns: Sequence[str]) -> str:
    compared = [c for c in columns if c not in spec.key]
    return " OR ".join(f"b.{quote(c)} IS DISTINCT FROM t.{quote(c)}" for c in compared) if compared else "false"


def unique_clashes(spec: TableSpec, batch: str, column: str) -> str:
    """Batch rows whose unique ``column`` value belongs to another key in the table."""
    other_key = " OR ".join(f"b.{quote(k)} IS DISTINCT FROM t.{quote(k)}" for k in spec.identity)
    return (
        f"SELECT b.__row, {column_list(spec.identity, 't.')} FROM {quote(batch)} b "
        f"JOIN {quote(spec.table)} t ON b.{quote(column)} = t.{quote(column)} WHERE {other_key}"
    )


def missing_parents(batch: str, columns: Sequence[str], parent: str, parent_columns: Sequence[str]) -> str:
    """Batch rows whose foreign key has no row in the parent table (the anti-join)."""
    not_null = " AND ".join(f"b.{quote(c)} IS NOT NULL" for c in columns)
    return (
        f"SELECT b.__row FROM {quote(batch)} b ANTI JOIN {quote(parent)} p "
        f"ON {key_match('b', 'p', columns, parent_columns)} WHERE {not_null}"
    )


def update_rows(spec: TableSpec, batch: str, present: Sequence[str]) -> str:
    """Replace the provided columns (and lineage) of stored rows with the batch's values."""
    columns = [c for c in spec.names if c in present and c not in spec.key] + list(RUN_COLUMNS)
    assignments = ", ".join(f"{quote(c)} = b.{quote(c)}" for c in columns)
    return f"UPDATE {quote(spec.table)} AS t SET {assignments} FROM {quote(batch)} b WHERE {key_match('b', 't', spec.key)}"


#: Columns added to ``_runs`` after its first release: added to older warehouses on open.
RUNS_ADDED_COLUMNS = (("updated", "BIGINT"), ("on_conflict", "VARCHAR"))

CHANGES_DDL = """
CREATE TABLE IF NOT EXISTS _changes (
  run_id VARCHAR NOT NULL,
  table_name VARCHAR NOT NULL,
  source_row BIGINT NOT NULL,
  "column" VARCHAR NOT NULL,
  old_value VARCHAR,
  new_value VARCHAR
)
"""

RUNS_DDL = """
CREATE TABLE IF NOT EXISTS _runs (
  run_id VARCHAR PRIMARY KEY,
  file VARCHAR NOT NULL,
  file_sha256 VARCHAR NOT NULL,
  sheet VARCHAR,
  table_name VARCHAR,
  header_row INTEGER,
  started_at TIMESTAMP NOT NULL,
  finished_at TIMESTAMP,
  status VARCHAR NOT NULL,
  total BIGINT,
  success BIGINT,
  failed BIGINT,
  inserted BIGINT,
  skipped BIGINT,
  duplicates BIGINT,
  batch_size INTEGER,
  toolkit_version VARCHAR,
  unmapped_columns VARCHAR[],
  warnings VARCHAR[],
  headers VARCHAR[]
);
-- headers (the mapped headers as found, in the file's column order) came later: add it to older warehouses.
ALTER TABLE _runs ADD COLUMN IF NOT EXISTS headers VARCHAR[]
"""

REJECTS_DDL = """
CREATE TABLE IF NOT EXISTS _rejects (
  run_id VARCHAR NOT NULL,
  table_name VARCHAR NOT NULL,
  source_row BIGINT NOT NULL,
  stage VARCHAR NOT NULL,
  reasons VARCHAR[] NOT NULL,
  errors STRUCT("column" VARCHAR, rule VARCHAR, message VARCHAR, "value" VARCHAR)[] NOT NULL,
  raw MAP(VARCHAR, VARCHAR)
)
"""
