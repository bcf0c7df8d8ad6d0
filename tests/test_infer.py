"""Spec inference: a draft spec from a sample, which ingests its own sample without a rejection."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tomllib
from pathlib import Path

import duckdb
import pytest

import toolkit
from tests.conftest import DATA, REFERENCE, ROOT, write_workbook
from toolkit.infer import column_name, infer_columns, infer_spec
from toolkit.specs import parse_spec

SAMPLES = [DATA / "customer_data.xlsx", DATA / "loan_data.xlsx"]
REFERENCES = [REFERENCE / "customer_data.xlsx", REFERENCE / "loan_data.xlsx"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Loan Amount", "loan_amount"),
        ("EMIs paid on Time", "emis_paid_on_time"),
        ("2024 Sales (₹)", "c_2024_sales"),
        ("  ", "column"),
    ],
)
def test_column_names_are_snake_case_identifiers(header: str, expected: str) -> None:
    assert column_name(header, set()) == expected


def test_repeated_headers_get_distinct_names() -> None:
    taken: set[str] = set()
    assert [column_name("Qty", taken), column_name("qty", taken)] == ["qty", "qty_2"]


def test_types_required_flags_and_key_come_from_the_values(tmp_path: Path) -> None:
    book = write_workbook(
        tmp_path / "stock.xlsx",
        [
            ["SKU", "Count", "Price", "Counted", "Active", "Note", "Zip"],
            ["A1", 3, 1.5, dt.date(2026, 1, 2), "TRUE", "x", "007"],
            ["A2", "4", 2, "2026-01-03", "false", None, "012"],
        ],
    )
    columns = {c.name: c for c in infer_columns(book)}
    assert {n: c.type for n, c in columns.items()} == {
        "sku": "text",
        "count": "integer",
        "price": "number",
        "counted": "date",
        "active": "boolean",
        "note": "text",
        "zip": "text",  # leading zeros: an identifier, not a number
    }
    assert [n for n, c in columns.items() if not c.required] == ["note"]
    spec = tomllib.loads(infer_spec(book))
    assert spec["table"] == "stock" and spec["key"] == ["sku"]
    assert "# min = 3  # smallest in the sample" in infer_spec(book)


def test_a_pair_of_columns_becomes_the_key_when_no_single_column_is_unique(tmp_path: Path) -> None:
    book = write_workbook(tmp_path / "pairs.xlsx", [["Store", "Day", "Sales"], ["N", 1, 10], ["N", 2, 10], ["S", 1, 10]])
    assert tomllib.loads(infer_spec(book))["key"] == ["store", "day"]


@pytest.mark.parametrize("sample", SAMPLES + REFERENCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_sample_ingested_with_its_own_inferred_spec_rejects_nothing(sample: Path, db: Path) -> None:
    if not sample.exists():
        pytest.skip(f"{sample} is not here (no ../shared beside this clone)")
    spec = parse_spec(tomllib.loads(infer_spec(sample, table="draft")), source="inferred")

    summary = toolkit.ingest(sample, db=db, specs={"draft": spec}, table="draft")

    # Excel error cells (#N/A, #DIV/0!...) are never data: no spec accepts them.
    assert {e["rule"].split("|")[1] for e in summary.errors} <= {"excel_error"}, summary.errors[:3]
    assert summary.total == summary.inserted + summary.duplicates + summary.failed
    again = toolkit.ingest(sample, db=db, specs={"draft": spec}, table="draft")
    assert (again.inserted, again.skipped, again.failed) == (0, summary.inserted, summary.failed)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM draft").fetchall()[0][0] == summary.inserted


def test_cli_infer_prints_a_loadable_spec(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", "infer", str(DATA / "loan_data.xlsx"), "--table", "loans_draft"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(done.stdout, encoding="utf-8")
    assert toolkit.load_spec(spec_file).table == "loans_draft"


def test_cli_infer_on_a_bad_file_prints_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "empty.xlsx"
    bad.write_bytes(b"")
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", "infer", str(bad)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "empty" in done.stderr
