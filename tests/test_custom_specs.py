"""Issue 7 end to end: an unrelated dataset ingested purely from a TOML spec file."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import toolkit
from tests.conftest import ROOT, write_workbook
from toolkit.cli import main

INVENTORY_SPEC = """
table = "inventory"
key = ["sku"]

[[columns]]
name = "sku"
header = "SKU"
type = "text"
required = true

[[columns]]
name = "description"
header = "Description"
aliases = ["Item"]
type = "text"
required = true

[[columns]]
name = "quantity"
header = "Quantity"
type = "integer"
required = true
min = 0

[[columns]]
name = "unit_price"
header = "Unit Price"
type = "decimal(10,2)"
required = true
greater_than = 0

[[columns]]
name = "last_counted"
header = "Last Counted Date"
type = "date"

[[columns]]
name = "active"
header = "Active"
type = "boolean"

[[rules]]
name = "stock_value_cap"
check = "quantity * unit_price <= 1000000"
message = "Stock value above 1,000,000: split the SKU"
"""

HEADERS = ["SKU", "Description", "Quantity", "Unit Price", "Last Counted Date", "Active"]
ROWS = [
    HEADERS,
    ["A-001", "Bolt M4", 120, 0.15, dt.date(2026, 11, 2), True],
    ["A-002", "Nut M4", "300", "0.10", "2026-11-02", "yes"],
    ["A-003", "Washer", -5, 0.05, dt.date(2026, 11, 2), False],  # quantity below 0
    ["A-004", "Gear", 10, 0.125, dt.date(2026, 11, 2), True],  # three decimal places
    ["A-005", "Pump", 20, 60000, dt.date(2026, 11, 2), "maybe"],  # over the cap, not a boolean
    ["007", "Seal", 1, 2.5, None, None],  # text key keeps its leading zeros
]


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(INVENTORY_SPEC, encoding="utf-8")
    return path


def test_inventory_workbook_loads_from_its_spec_file_with_every_rule_applied(tmp_path: Path, spec_file: Path, db: Path) -> None:
    book = write_workbook(tmp_path / "stock.xlsx", ROWS)
    specs = toolkit.load_specs([spec_file])

    summary = toolkit.ingest(book, db=db, specs=specs)

    assert summary.table == "inventory"  # chosen from the headers among all known specs
    assert (summary.total, summary.inserted, summary.failed) == (6, 3, 3)
    rules = {(e["row"], e["rule"]) for e in summary.errors}
    assert rules == {
        (4, "quantity|min"),
        (5, "unit_price|decimal"),
        (6, "stock_value_cap"),
        (6, "active|boolean"),
    }
    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute("SELECT sku, quantity, unit_price::VARCHAR, active FROM inventory ORDER BY sku").fetchall()
    assert stored == [("007", 1, "2.50", None), ("A-001", 120, "0.15", True), ("A-002", 300, "0.10", True)]


def test_cli_takes_a_folder_of_specs(tmp_path: Path, spec_file: Path, db: Path) -> None:
    book = write_workbook(tmp_path / "stock.xlsx", ROWS[:3])
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", "ingest", str(book), "--db", str(db), "--spec", str(spec_file.parent), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["inserted"] == 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ('type = "integer"\nrequired = true\nmin = 0', 'type = "integr"\nrequired = true\nmin = 0'),
            r"inventory\.toml:\d+: column 'quantity': unknown type 'integr'",
        ),
        (
            ("quantity * unit_price <= 1000000", "quantity * <= 1"),
            r"inventory\.toml:\d+: rule 'stock_value_cap': check .* does not compile",
        ),
        (
            ("quantity * unit_price <= 1000000", "qty <= 1"),
            r"inventory\.toml:\d+: rule 'stock_value_cap': check .* names unknown column\(s\) qty",
        ),
        (('key = ["sku"]', 'key = ["code"]'), r"inventory\.toml:\d+: key column 'code' is not declared"),
    ],
)
def test_a_bad_spec_names_the_file_and_the_problem(spec_file: Path, edit: tuple[str, str], message: str) -> None:
    spec_file.write_text(INVENTORY_SPEC.replace(*edit), encoding="utf-8")
    with pytest.raises(toolkit.SpecError, match=message):
        toolkit.load_specs([spec_file])


def _bad_spec_ingest(spec_file: Path, tmp_path: Path, edit: tuple[str, str]) -> list[str]:
    assert edit[0] in INVENTORY_SPEC
    spec_file.write_text(INVENTORY_SPEC.replace(*edit), encoding="utf-8")
    book = write_workbook(tmp_path / "stock.xlsx", ROWS)
    return ["ingest", str(book), "--db", str(tmp_path / "w.duckdb"), "--spec", str(spec_file)]


def _assert_one_line(stderr: str, spec_file: Path, problem: str) -> None:
    assert stderr.count("\n") == 1 and problem in stderr
    assert re.match(rf"error: {re.escape(str(spec_file))}:\d+: ", stderr)


def test_cli_reports_a_bad_spec_in_one_line(spec_file: Path, tmp_path: Path) -> None:
    # The whole contract once, as a user's shell sees it: exit 2 and one line on stderr.
    args = _bad_spec_ingest(spec_file, tmp_path, ('type = "date"', 'type = "when"'))
    done = subprocess.run([sys.executable, "-m", "toolkit", *args], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 2, done.stderr
    _assert_one_line(done.stderr, spec_file, "unknown type 'when'")


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        # these loaded once and then crashed the ingest (exit 1): now refused when the spec is read
        (("quantity * unit_price <= 1000000", "quantity > 'abc'"), "does not fit the column types"),
        (("quantity * unit_price <= 1000000", "sku + 1 > 0"), "does not fit the column types"),
        (("quantity * unit_price <= 1000000", "quantity"), "gives Int64, not true/false"),
        (('type = "decimal(10,2)"', 'type = "decimal(50,2)"'), "decimal(50,2) is not a valid decimal"),
    ],
)
def test_cli_reports_each_bad_spec_in_one_line(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str], problem: str
) -> None:
    assert main(_bad_spec_ingest(spec_file, tmp_path, edit)) == 2
    _assert_one_line(capsys.readouterr().err, spec_file, problem)


KEYLESS_SPEC = """
table = "readings"

[[columns]]
name = "sensor"
header = "Sensor"
type = "text"
required = true

[[columns]]
name = "value"
header = "Value"
type = "number"

[[columns]]
name = "tag"
header = "Tag"
type = "text"
unique = true
"""


def test_a_spec_without_a_key_identifies_rows_by_all_their_values(tmp_path: Path, db: Path) -> None:
    spec_file = tmp_path / "readings.toml"
    spec_file.write_text(KEYLESS_SPEC, encoding="utf-8")
    specs = toolkit.load_specs([spec_file])
    rows = [["Sensor", "Value", "Tag"], ["s1", 1.5, None], ["s1", 1.5, None], ["s1", None, None], ["s2", 2, "t"], ["s3", 3, "t"]]
    book = write_workbook(tmp_path / "readings.xlsx", rows)

    first = toolkit.ingest(book, db=db, specs=specs)
    # identical rows are duplicates; empty optional unique cells clash with nothing; a shared tag does
    assert (first.inserted, first.duplicates, first.failed) == (2, 1, 2)
    assert {e["rule"] for e in first.errors} == {"tag|unique"}
    second = toolkit.ingest(book, db=db, specs=specs)
    assert (second.inserted, second.skipped, second.duplicates, second.failed) == (0, 2, 1, 2)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM readings").fetchall()[0][0] == 2


def test_a_keyless_row_equal_to_several_stored_rows_on_its_columns_is_skipped_once(tmp_path: Path, db: Path) -> None:
    # Stored rows differing only in a column the later file lacks all match its one row.
    spec_file = tmp_path / "readings.toml"
    spec_file.write_text(KEYLESS_SPEC, encoding="utf-8")
    specs = toolkit.load_specs([spec_file])
    tagged = write_workbook(tmp_path / "tagged.xlsx", [["Sensor", "Value", "Tag"], ["s1", 1.5, "a"], ["s1", 1.5, "b"]])
    untagged = write_workbook(tmp_path / "untagged.xlsx", [["Sensor", "Value"], ["s1", 1.5], ["s2", 2]])

    assert toolkit.ingest(tagged, db=db, specs=specs).inserted == 2
    later = toolkit.ingest(untagged, db=db, specs=specs)
    assert (later.total, later.inserted, later.skipped, later.failed) == (2, 1, 1, 0)
