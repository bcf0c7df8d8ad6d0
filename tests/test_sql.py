"""toolkit.sql: pure SQL builders, checked as text and by running them against DuckDB."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from toolkit import sql
from toolkit.specs import Column, ForeignKey, TableSpec, load_specs

# Hostile identifiers: a quote, a space, a keyword. Built directly (spec files refuse such names)
# to prove every identifier is quoted rather than interpolated raw.
ODD = TableSpec(
    table='od"d table',
    columns=(
        Column("select", "Select", type="integer", required=True),
        Column('we"ird', "Weird", type="text", unique=True),
        Column("plain", "Plain", type="number"),
    ),
    key=("select",),
)
PARENT = TableSpec(table="parent", columns=(Column("id", "ID", type="integer", required=True),), key=("id",))
CHILD = TableSpec(
    table="child",
    columns=(Column("id", "ID", type="integer", required=True), Column("parent_id", "Parent", type="integer")),
    key=("id",),
    foreign_keys=(ForeignKey(("parent_id",), "parent", ("id",)),),
)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as connection:
        yield connection


def run(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple[object, ...]]:
    return con.execute(query).fetchall()


@pytest.mark.parametrize(
    ("identifier", "quoted"),
    [("plain", '"plain"'), ("select", '"select"'), ("with space", '"with space"'), ('a"b', '"a""b"'), ("", '""')],
)
def test_quote_wraps_in_double_quotes_and_doubles_embedded_quotes(identifier: str, quoted: str) -> None:
    assert sql.quote(identifier) == quoted


def test_column_list_quotes_each_name_and_applies_the_prefix() -> None:
    assert sql.column_list(["a", 'b"c']) == '"a", "b""c"'
    assert sql.column_list(["a", "b"], "t.") == 't."a", t."b"'
    assert sql.column_list([]) == ""


def test_key_match_pairs_columns_and_refuses_lists_of_different_length() -> None:
    assert sql.key_match("b", "t", ["x", "y"]) == 'b."x" = t."x" AND b."y" = t."y"'
    assert sql.key_match("b", "p", ["parent_id"], ["id"]) == 'b."parent_id" = p."id"'
    with pytest.raises(ValueError, match="shorter|longer"):
        sql.key_match("b", "t", ["x", "y"], ["x"])


def test_create_table_of_builtin_customers_has_types_not_null_key_unique_and_lineage() -> None:
    text = sql.create_table(load_specs()["customers"])
    assert text.startswith('CREATE TABLE IF NOT EXISTS "customers" (')
    for fragment in (
        '"customer_id" BIGINT NOT NULL',
        '"age" INTEGER,',  # 32-bit, as the column table says
        '"current_debt" DOUBLE,',
        '"_run_id" VARCHAR NOT NULL',
        '"_source_row" BIGINT NOT NULL',
        'PRIMARY KEY ("customer_id")',
        'UNIQUE ("phone_number")',
    ):
        assert fragment in text


def test_create_table_of_loans_has_the_two_column_key() -> None:
    assert 'PRIMARY KEY ("customer_id", "loan_id")' in sql.create_table(load_specs()["loans"])


def test_create_table_is_idempotent_and_enforces_key_and_unique(con: duckdb.DuckDBPyConnection) -> None:
    run(con, sql.create_table(ODD))
    run(con, sql.create_table(ODD))  # IF NOT EXISTS: a second run is harmless
    table = sql.quote(ODD.table)
    run(con, f"INSERT INTO {table} VALUES (1, 'x', 1.5, 'run', 2)")
    with pytest.raises(duckdb.ConstraintException, match="PRIMARY KEY|primary key"):
        run(con, f"INSERT INTO {table} VALUES (1, 'y', 1.5, 'run', 3)")
    with pytest.raises(duckdb.ConstraintException, match="unique|UNIQUE"):
        run(con, f"INSERT INTO {table} VALUES (2, 'x', 1.5, 'run', 3)")
    with pytest.raises(duckdb.ConstraintException, match="NOT NULL"):
        run(con, f"INSERT INTO {table} VALUES (NULL, 'z', 1.5, 'run', 3)")


def _with_batch(con: duckdb.DuckDBPyConnection, rows: str) -> None:
    run(con, sql.create_table(ODD))
    table = sql.quote(ODD.table)
    run(con, f"INSERT INTO {table} VALUES (1, 'one', 1.0, 'old', 2), (2, 'two', 2.0, 'old', 3)")
    run(con, f'CREATE TABLE batch AS SELECT * FROM (VALUES {rows}) v(__row, "select", "we""ird", plain, _run_id, _source_row)')


def test_differing_rows_returns_the_table_values_for_batch_keys(con: duckdb.DuckDBPyConnection) -> None:
    _with_batch(con, "(10, 1, 'changed', 1.0, 'new', 10), (11, 3, 'three', 3.0, 'new', 11)")
    found = run(con, sql.differing_rows(ODD, "batch", ["select", 'we"ird']) + " ORDER BY 1")
    assert found == [(10, 1, "one")]


def test_stored_matches_flags_batch_rows_whose_stored_row_differs_outside_the_key(con: duckdb.DuckDBPyConnection) -> None:
    # row 10: key 1 stored with the same values; row 11: key 2 stored with another "select";
    # row 12: key 3 not stored.
    _with_batch(con, "(10, 1, 'one', 1.0, 'new', 10), (11, 2, 'changed', 2.0, 'new', 11), (12, 3, 'three', 3.0, 'new', 12)")
    columns = ["select", 'we"ird']
    assert run(con, sql.stored_matches(ODD, "batch", columns) + " ORDER BY 1") == [(10, False), (11, True)]
    assert run(con, sql.differing_rows(ODD, "batch", columns)) == [(11, 2, "two")]


def test_stored_matches_compares_empty_cells_as_equal_to_empty_cells(con: duckdb.DuckDBPyConnection) -> None:
    run(con, sql.create_table(ODD))
    run(con, f"INSERT INTO {sql.quote(ODD.table)} VALUES (1, NULL, 1.0, 'old', 2), (2, NULL, 2.0, 'old', 3)")
    run(con, 'CREATE TABLE batch AS SELECT * FROM (VALUES (10, 1, NULL), (11, 2, \'x\')) v(__row, "select", "we""ird")')
    assert run(con, sql.stored_matches(ODD, "batch", ["select", 'we"ird']) + " ORDER BY 1") == [(10, False), (11, True)]


def test_unique_clashes_finds_values_owned_by_another_key_only(con: duckdb.DuckDBPyConnection) -> None:
    # row 10: same key, same value (no clash); row 11: value of key 2 under key 5 (clash);
    # row 12: fresh value (no clash).
    _with_batch(con, "(10, 1, 'one', 1.0, 'new', 10), (11, 5, 'two', 1.0, 'new', 11), (12, 6, 'six', 1.0, 'new', 12)")
    assert run(con, sql.unique_clashes(ODD, "batch", 'we"ird')) == [(11, 2)]


def test_missing_parents_is_an_anti_join_that_ignores_null_foreign_keys(con: duckdb.DuckDBPyConnection) -> None:
    run(con, sql.create_table(PARENT))
    run(con, "INSERT INTO parent VALUES (1, 'r', 1)")
    run(con, "CREATE TABLE batch AS SELECT * FROM (VALUES (10, 1, 1), (11, 2, 2), (12, 3, NULL)) v(__row, id, parent_id)")
    fk = CHILD.foreign_keys[0]
    assert run(con, sql.missing_parents("batch", fk.columns, fk.references, fk.ref_columns)) == [(11,)]


def test_audit_tables_ddl_is_idempotent_and_has_the_documented_columns_in_order(con: duckdb.DuckDBPyConnection) -> None:
    # The README's columns must stay (scripts query them); new ones may be added.
    for ddl in (sql.RUNS_DDL, sql.REJECTS_DDL, sql.RUNS_DDL, sql.REJECTS_DDL):
        run(con, ddl)
    runs = [r[0] for r in run(con, "SELECT column_name FROM information_schema.columns WHERE table_name = '_runs'")]
    rejects = [r[0] for r in run(con, "SELECT column_name FROM information_schema.columns WHERE table_name = '_rejects'")]
    assert [c for c in runs if c in RUNS_DOCUMENTED] == RUNS_DOCUMENTED
    assert [c for c in rejects if c in REJECTS_DOCUMENTED] == REJECTS_DOCUMENTED


RUNS_DOCUMENTED = [
    "run_id",
    "file",
    "file_sha256",
    "sheet",
    "table_name",
    "header_row",
    "started_at",
    "finished_at",
    "status",
    "total",
    "success",
    "failed",
    "inserted",
    "skipped",
    "duplicates",
    "batch_size",
    "toolkit_version",
    "unmapped_columns",
    "warnings",
]
REJECTS_DOCUMENTED = ["run_id", "table_name", "source_row", "stage", "reasons", "errors", "raw"]
