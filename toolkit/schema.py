"""Bring a warehouse table in line with its spec, or refuse with what to do.

Accepted: a new table; a new optional column (added, NULL for existing rows); a new required column
while the table is empty; widening a column's type (INTEGER -> BIGINT -> DOUBLE, DATE -> TIMESTAMP,
anything -> VARCHAR); a column the spec no longer lists (kept, made nullable); a 32-bit column
stored as BIGINT (kept as it is: every 32-bit value fits). Refused: narrowing a type, changing
the type of a key or unique column (DuckDB cannot alter a constrained column), a new required
column on a table with rows, a change of key, and a foreign key to a stored table that lacks the
columns it names.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from toolkit import sql
from toolkit.errors import SchemaChangeError
from toolkit.specs import TableSpec

_WIDENING = {
    ("INTEGER", "BIGINT"),
    ("INTEGER", "DOUBLE"),
    ("BIGINT", "DOUBLE"),
    ("DATE", "TIMESTAMP"),
    ("FLOAT", "DOUBLE"),
}
#: (stored type, spec type) pairs where the stored column already holds every value the spec allows.
_WIDER_STORED = {("BIGINT", "INTEGER")}


@dataclass(frozen=True)
class ExistingColumn:
    name: str
    sql_type: str
    nullable: bool


def existing_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, ExistingColumn]:
    rows = con.execute(
        "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
        "WHERE table_name = ? AND schema_name = 'main' ORDER BY column_index",
        [table],
    ).fetchall()
    return {name: ExistingColumn(name, data_type, bool(nullable)) for name, data_type, nullable in rows}


def existing_key(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, ...]:
    rows = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE table_name = ? AND schema_name = 'main' AND constraint_type = 'PRIMARY KEY'",
        [table],
    ).fetchall()
    return tuple(rows[0][0]) if rows else ()


def plan(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> list[str]:
    """The statements that make the table fit ``spec``; raises SchemaChangeError if it cannot."""
    _check_foreign_keys(con, spec)
    columns = existing_columns(con, spec.table)
    if not columns:
        return [sql.create_table(spec)]
    table = sql.quote(spec.table)
    where = f"warehouse table {spec.table!r}"
    constrained = {*spec.key, *spec.unique_columns}
    key = existing_key(con, spec.table)
    if key != spec.key:
        raise SchemaChangeError(
            f"{where} is keyed by ({', '.join(key)}) but spec {spec.source or spec.table} says ({', '.join(spec.key)}); "
            "a key cannot change in place: load into a new warehouse (or a new table name) and copy the rows over"
        )
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    statements = []
    for column in spec.columns:
        found = columns.get(column.name)
        if found is None:
            if column.required and rows:
                raise SchemaChangeError(
                    f"{where} has {rows:,} rows, so new required column {column.name!r} cannot be filled for them; "
                    "declare it required = false first, or load into a new warehouse"
                )
            statements.append(f"ALTER TABLE {table} ADD COLUMN {sql.quote(column.name)} {column.sql_type}")
        elif found.sql_type != column.sql_type and (found.sql_type, column.sql_type) not in _WIDER_STORED:
            if column.name in constrained:
                role = "a key column" if column.name in spec.key else "a unique column"
                raise SchemaChangeError(
                    f"{where}: column {column.name!r} is {found.sql_type} but the spec says {column.sql_type}, and the type "
                    f"of {role} cannot change in place; keep {found.sql_type} in the spec, or export the table "
                    f"(COPY {spec.table} TO '{spec.table}.parquet'), drop it and ingest again into the recreated table"
                )
            if (found.sql_type, column.sql_type) not in _WIDENING and column.sql_type != "VARCHAR":
                raise SchemaChangeError(
                    f"{where}: column {column.name!r} is {found.sql_type} but the spec says {column.sql_type}, "
                    "which could lose values; keep the wider type in the spec or load into a new warehouse"
                )
            statements.append(f"ALTER TABLE {table} ALTER COLUMN {sql.quote(column.name)} SET DATA TYPE {column.sql_type}")
    for name, found in columns.items():
        if name not in spec.names and name not in sql.RUN_COLUMNS and not found.nullable:
            statements.append(f"ALTER TABLE {table} ALTER COLUMN {sql.quote(name)} DROP NOT NULL")
    return statements


def _check_foreign_keys(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
    """A foreign key must name columns its stored parent table has, or every load would fail on it."""
    for fk in spec.foreign_keys:
        parent = existing_columns(con, fk.references)
        missing = [c for c in fk.ref_columns if c not in parent]
        if parent and missing:
            found = ", ".join(c for c in parent if c not in sql.RUN_COLUMNS)
            raise SchemaChangeError(
                f"spec {spec.source or spec.table}: foreign key to {fk.references!r} names column(s) "
                f"{', '.join(map(repr, missing))} that warehouse table {fk.references!r} does not have (it has: {found}); "
                "fix ref_columns in the spec, or use a warehouse whose parent table matches its spec"
            )


def apply(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> list[str]:
    """Run :func:`plan`'s statements in one transaction; returns them (empty when nothing changed)."""
    statements = plan(con, spec)
    if statements:
        con.begin()
        try:
            for statement in statements:
                con.execute(statement).fetchall()
        except BaseException:
            con.rollback()
            raise
        con.commit()
    return statements
