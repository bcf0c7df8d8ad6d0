"""Spec changes against an existing warehouse table: accepted when safe, refused otherwise."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import pytest

import toolkit
from toolkit import schema
from toolkit.errors import SchemaChangeError
from toolkit.specs import Column, TableSpec

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
