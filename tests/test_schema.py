"""Spec changes against an existing warehouse table: accepted when safe, refused otherwise."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import pytest

import toolkit
from toolkit import schema, sql
from toolkit.errors import SchemaChangeError
from toolkit.specs import Column, ForeignKey, TableSpec

BASE = TableSpec(
    table="items",
    columns=(Column("sku", "SKU", "text", required=True), Column("qty", "Qty", "integer", required=True)),
    key=("sku",),
)


def _with_columns(*columns: Column, key: tuple[str, ...] = ("sku",)) -> TableSpec:
    return dataclasses.replace(BASE, columns=columns, key=key)


@pytest.fixture
def con(db: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(db))
    schema.apply(connection, BASE)
    return connection


def _fill(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("INSERT INTO items VALUES ('a', 1, 'run', 2)").fetchall()


def test_a_new_table_is_created_and_an_unchanged_spec_changes_nothing(con: duckdb.DuckDBPyConnection) -> None:
    assert list(schema.existing_columns(con, "items")) == ["sku", "qty", "_run_id", "_source_row"]
    assert schema.existing_key(con, "items") == ("sku",)
    assert schema.apply(con, BASE) == []


def test_a_new_optional_column_is_added_and_existing_rows_get_null(con: duckdb.DuckDBPyConnection) -> None:
    _fill(con)
    spec = _with_columns(*BASE.columns, Column("note", "Note", "text"))
    assert schema.apply(con, spec) == ['ALTER TABLE "items" ADD COLUMN "note" VARCHAR']
    assert con.execute("SELECT note FROM items").fetchall() == [(None,)]


def test_a_new_required_column_is_accepted_only_while_the_table_is_empty(con: duckdb.DuckDBPyConnection) -> None:
    spec = _with_columns(*BASE.columns, Column("bin", "Bin", "text", required=True))
    assert schema.plan(con, spec)  # empty table: fine
    _fill(con)
    with pytest.raises(
        SchemaChangeError, match=r"'items' has 1 rows, so new required column 'bin' cannot be filled.*required = false"
    ):
        schema.plan(con, spec)


def test_widening_a_type_is_accepted(con: duckdb.DuckDBPyConnection) -> None:
    _fill(con)
    spec = _with_columns(BASE.columns[0], Column("qty", "Qty", "number", required=True))
    schema.apply(con, spec)
    assert schema.existing_columns(con, "items")["qty"].sql_type == "DOUBLE"
    assert con.execute("SELECT qty FROM items").fetchall() == [(1.0,)]


def test_narrowing_a_type_is_refused(con: duckdb.DuckDBPyConnection) -> None:
    schema.apply(con, _with_columns(BASE.columns[0], Column("qty", "Qty", "number", required=True)))
    with pytest.raises(SchemaChangeError, match=r"'qty' is DOUBLE but the spec says BIGINT, which could lose values"):
        schema.plan(con, BASE)


def test_a_key_change_is_refused(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(SchemaChangeError, match=r"keyed by \(sku\) but spec .* says \(sku, qty\).*new warehouse"):
        schema.plan(con, _with_columns(*BASE.columns, key=("sku", "qty")))


def test_a_column_dropped_from_the_spec_is_kept_and_made_nullable(con: duckdb.DuckDBPyConnection) -> None:
    spec = _with_columns(BASE.columns[0])
    schema.apply(con, spec)
    con.execute("INSERT INTO items (sku, _run_id, _source_row) VALUES ('b', 'run', 3)").fetchall()
    assert schema.existing_columns(con, "items")["qty"].nullable


def test_ingest_refuses_a_new_required_column_on_a_filled_table(tmp_path: Path, db: Path) -> None:
    from tests.conftest import CUSTOMER_HEADERS, customer, write_workbook

    toolkit.ingest(write_workbook(tmp_path / "c.xlsx", [CUSTOMER_HEADERS, customer(1)]), db=db)
    book = write_workbook(tmp_path / "c2.xlsx", [[*CUSTOMER_HEADERS, "Segment"], [*customer(2), "retail"]])
    specs = toolkit.load_specs()
    changed = dataclasses.replace(
        specs["customers"], columns=(*specs["customers"].columns, Column("segment", "Segment", "text", required=True))
    )
    with pytest.raises(SchemaChangeError, match="new required column 'segment'"):
        toolkit.ingest(book, db=db, specs={**specs, "customers": changed})


# --- 32-bit columns, constrained columns and foreign keys -------------------------------------


def test_a_32_bit_column_widens_to_bigint_when_the_spec_says_64_bit(con: duckdb.DuckDBPyConnection) -> None:
    spec32 = _with_columns(BASE.columns[0], Column("qty", "Qty", "integer32", required=True))
    schema.apply(con, _with_columns(BASE.columns[0]))  # qty kept, nullable
    con.execute("ALTER TABLE items ALTER COLUMN qty SET DATA TYPE INTEGER").fetchall()
    _fill(con)
    assert schema.plan(con, spec32) == []
    assert schema.apply(con, BASE) == ['ALTER TABLE "items" ALTER COLUMN "qty" SET DATA TYPE BIGINT']
    assert con.execute("SELECT qty FROM items").fetchall() == [(1,)]


def test_a_bigint_column_is_kept_when_the_spec_now_says_32_bit(con: duckdb.DuckDBPyConnection) -> None:
    _fill(con)
    spec32 = _with_columns(BASE.columns[0], Column("qty", "Qty", "integer32", required=True))
    assert schema.plan(con, spec32) == []  # every 32-bit value fits: no narrowing, no error
    assert schema.existing_columns(con, "items")["qty"].sql_type == "BIGINT"


def test_a_warehouse_made_with_64_bit_ages_takes_the_32_bit_spec(tmp_path: Path, db: Path) -> None:
    from tests.conftest import CUSTOMER_HEADERS, customer, write_workbook

    specs = toolkit.load_specs()
    wide = dataclasses.replace(
        specs["customers"],
        columns=tuple(dataclasses.replace(c, type="integer") if c.name == "age" else c for c in specs["customers"].columns),
    )
    toolkit.ingest(
        write_workbook(tmp_path / "a.xlsx", [CUSTOMER_HEADERS, customer(1)]), db=db, specs={**specs, "customers": wide}
    )
    again = toolkit.ingest(write_workbook(tmp_path / "b.xlsx", [CUSTOMER_HEADERS, customer(1), customer(2, Age=40)]), db=db)
    assert (again.skipped, again.inserted, again.failed) == (1, 1, 0)
    with duckdb.connect(str(db), read_only=True) as check:
        assert schema.existing_columns(check, "customers")["age"].sql_type == "BIGINT"
        assert check.execute("SELECT customer_id, age FROM customers ORDER BY 1").fetchall() == [(1, 34), (2, 40)]


@pytest.mark.parametrize(
    ("before", "after", "role"),
    [
        (Column("sku", "SKU", "integer32", required=True), Column("sku", "SKU", "integer", required=True), "a key column"),
        (Column("sku", "SKU", "integer32", required=True), Column("sku", "SKU", "text", required=True), "a key column"),
        (Column("qty", "Qty", "integer32", unique=True), Column("qty", "Qty", "number", unique=True), "a unique column"),
    ],
)
def test_changing_the_type_of_a_key_or_unique_column_is_refused_with_what_to_do(
    db: Path, before: Column, after: Column, role: str
) -> None:
    def spec(column: Column) -> TableSpec:
        return _with_columns(*(column if c.name == column.name else c for c in BASE.columns))

    connection = duckdb.connect(str(db))
    schema.apply(connection, spec(before))
    with pytest.raises(SchemaChangeError, match=rf"is INTEGER but the spec says {after.sql_type}, and the type of {role} cannot"):
        schema.plan(connection, spec(after))
    with pytest.raises(SchemaChangeError, match=r"export the table .*, drop it and ingest again into the recreated table"):
        schema.apply(connection, spec(after))


def test_a_foreign_key_to_a_stored_table_without_its_columns_is_refused(con: duckdb.DuckDBPyConnection) -> None:
    child = TableSpec(
        table="moves",
        columns=(Column("move_id", "Move", "integer", required=True), Column("item", "Item", "text")),
        key=("move_id",),
        foreign_keys=(ForeignKey(("item",), "items", ("item_code",)),),
        source="moves.toml",
    )
    with pytest.raises(
        SchemaChangeError,
        match=r"^spec moves\.toml: foreign key to 'items' names column\(s\) 'item_code' that warehouse table 'items' "
        r"does not have \(it has: sku, qty\); fix ref_columns",
    ):
        schema.plan(con, child)
    fitting = dataclasses.replace(child, foreign_keys=(ForeignKey(("item",), "items", ("sku",)),))
    assert schema.plan(con, fitting) == [sql.create_table(fitting)]


def test_ingest_with_a_foreign_key_the_warehouse_cannot_take_exits_2_with_one_line(
    tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import LOAN_HEADERS, loan, write_workbook
    from toolkit.cli import main

    with duckdb.connect(str(db)) as other:  # a customers table made by some other spec
        other.execute("CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR)").fetchall()
    book = write_workbook(tmp_path / "loans.xlsx", [LOAN_HEADERS, loan(1, 10)])
    assert main(["ingest", str(book), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "foreign key to 'customers' names column(s) 'customer_id'" in err
