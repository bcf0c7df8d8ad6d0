"""Spec inference: a draft spec from a sample, which ingests its own sample without a rejection."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import duckdb
import polars as pl
import pytest

import toolkit
from tests.conftest import DATA, REFERENCE, ROOT, write_workbook
from toolkit.infer import column_name, find_header_row, infer_columns, infer_spec
from toolkit.read import read_grid
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


# --- the header row below a title, and dates as commented-out rules --------------------------------

TITLED = [
    ["Stock count, Northern warehouse"],
    [],
    ["SKU", "Count", "Counted", "Note"],
    ["A1", 3, dt.date(2026, 1, 2), None],
    ["A2", 4, dt.date(2026, 1, 5), "x"],
]


def test_a_title_and_a_blank_row_above_the_headers_are_skipped(tmp_path: Path, db: Path) -> None:
    book = write_workbook(tmp_path / "stock.xlsx", TITLED)
    assert [(c.header, c.type) for c in infer_columns(book)] == [
        ("SKU", "text"),
        ("Count", "integer"),
        ("Counted", "date"),
        ("Note", "text"),
    ]
    spec = parse_spec(tomllib.loads(infer_spec(book)), source="inferred")
    summary = toolkit.ingest(book, db=db, specs={"stock": spec}, table="stock")
    assert (summary.header_row, summary.inserted, summary.failed) == (3, 2, 0)


def test_header_row_still_names_the_row(tmp_path: Path) -> None:
    book = write_workbook(tmp_path / "stock.xlsx", TITLED)
    assert [c.header for c in infer_columns(book, header_row=1)] == ["Stock count, Northern warehouse"]
    with pytest.raises(toolkit.SheetError, match="header row 99 is beyond the last row"):
        infer_columns(book, header_row=99)


@pytest.mark.parametrize("rows", [[], [["   ", None]]], ids=["no cells", "blank cells"])
def test_an_empty_sheet_is_a_sheet_error_as_when_ingesting(tmp_path: Path, rows: list[list[object]]) -> None:
    book = write_workbook(tmp_path / "empty.xlsx", rows)
    with pytest.raises(toolkit.SheetError, match=r"^empty\.xlsx, sheet 'Sheet1': the sheet is empty \(no header row, no data\)$"):
        infer_columns(book)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([["a", "b"], [1, 2]], 1),
        ([["Title"], [], ["a", "b", "c"], [1, 2, 3]], 3),
        ([["Title"], ["a", "b"], ["x", "y"], ["z", None]], 2),  # all text: the first full row
        ([["Report 2026", "by", "me"], ["a", "b", "c"], [1, 2, 3]], 1),  # a title as wide as the table is a header
        ([["Title"], ["a", "b"], [1, 2, "unheaded note"]], 2),  # no all-text row is as wide as the data
        ([["Title"], [1, 2], [3, 4]], 1),  # no all-text row wider than the title: the widest all-text one
        ([[1, 2], [3, 4]], 1),  # numbers only: the first row
        ([["Sheet of"], ["Name", "Born"], ["Ann", dt.date(1990, 1, 1)]], 2),
    ],
)
def test_the_header_row_is_the_first_full_row_of_text(tmp_path: Path, rows: list[list[object]], expected: int) -> None:
    grid = read_grid(write_workbook(tmp_path / "h.xlsx", rows))
    blank = pl.all_horizontal(pl.col(c).is_null() for c in grid.letters)
    assert find_header_row(grid.cells.filter(~blank)) == expected


def _uncommented_rules(text: str) -> str:
    return re.sub(r"^# (\[\[rules\]\]|name = |check = |message = )", r"\1", text, flags=re.MULTILINE)


def test_sample_dates_become_commented_out_rules_that_compile_when_uncommented(tmp_path: Path, db: Path) -> None:
    rows = [
        ["SKU", "Counted", "Seen At", "End"],
        ["A1", dt.date(2026, 1, 2), dt.datetime(2026, 1, 2, 9, 30), dt.date(2026, 2, 1)],
        ["A2", dt.date(2026, 1, 5), dt.datetime(2026, 1, 3, 17, 0), dt.date(2026, 3, 1)],
    ]
    book = write_workbook(tmp_path / "stock.xlsx", rows)
    draft = infer_spec(book)
    assert "[[rules]]\n" not in draft.replace("# [[rules]]\n", "")  # all commented out
    assert tomllib.loads(draft).get("rules") is None
    path = tmp_path / "stock.toml"
    path.write_text(_uncommented_rules(draft), encoding="utf-8")
    spec = toolkit.load_spec(path)  # compiles, and evaluates to true/false on the column types
    assert {r.name: r.check for r in spec.rules} == {
        "counted_from": "counted >= DATE '2026-01-02'",
        "counted_until": "counted <= DATE '2026-01-05'",
        "seen_at_from": "seen_at >= TIMESTAMP '2026-01-02 09:30:00'",
        "seen_at_until": "seen_at <= TIMESTAMP '2026-01-03 17:00:00'",
        "end_from": "\"end\" >= DATE '2026-02-01'",  # a SQL keyword, quoted
        "end_until": "\"end\" <= DATE '2026-03-01'",
    }
    assert toolkit.ingest(book, db=db, specs={"stock": spec}, table="stock").failed == 0
    late = write_workbook(tmp_path / "late.xlsx", [*rows[:2], ["A3", dt.date(2026, 1, 9), *rows[1][2:]]])
    summary = toolkit.ingest(late, db=db, specs={"stock": spec}, table="stock")
    assert [e["message"] for e in summary.errors] == ["Counted is after 2026-01-05, the latest in the sample"]


def test_a_note_below_a_table_of_numbers_is_not_taken_for_its_header(tmp_path: Path) -> None:
    book = write_workbook(tmp_path / "n.xlsx", [[1, 2], [3, 4], [], ["These numbers are made up"]])
    assert [c.header for c in infer_columns(book)] == ["1", "2"]


def test_times_of_day_and_durations_are_text_not_date_times(tmp_path: Path, db: Path) -> None:
    import xlsxwriter

    path = tmp_path / "times.xlsx"
    book = xlsxwriter.Workbook(str(path))
    ws = book.add_worksheet()
    time_format = book.add_format({"num_format": "[h]:mm:ss"})
    ws.write_row(0, 0, ["Task", "Time spent"])
    for row, (task, spent) in enumerate([("a", dt.time(1, 18, 43)), ("b", dt.time(7, 16, 51))], start=1):
        ws.write_string(row, 0, task)
        ws.write_datetime(row, 1, spent, time_format)
    book.close()
    assert {c.name: c.type for c in infer_columns(path)} == {"task": "text", "time_spent": "text"}
    spec = parse_spec(tomllib.loads(infer_spec(path)), source="inferred")
    summary = toolkit.ingest(path, db=db, specs={"times": spec}, table="times")
    assert (summary.inserted, summary.failed) == (2, 0)
