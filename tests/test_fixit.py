from __future__ import annotations

import datetime as dt
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import toolkit
from tests.conftest import CUSTOMER_HEADERS, HOSTILE, LOAN_HEADERS, NOTES_SPEC, STOCK_SPEC, customer, loan, write_hostile
from toolkit.cli import main
from toolkit.errors import WarehouseError
from toolkit.fixit import EXCEL_CELL_CHARS, _Formats, _write_cell, fixit_sheets, write_fixit_workbook
from toolkit.load import Warehouse
from toolkit.read import open_sheet, read_grid, read_rows, text_frame
from toolkit.runs import connect_read_only
from toolkit.specs import load_specs

Workbook = Callable[..., Path]
FILL = "FFFFC7CE"


def sheet_rows(ws: openpyxl.worksheet.worksheet.Worksheet) -> list[list[object]]:
    return [[c.value for c in row] for row in ws.iter_rows()]


@pytest.fixture
def loans(workbook: Workbook, db: Path) -> toolkit.IngestSummary:
    """Customers 1 and 2 loaded; a loans file with four rejected rows, one holding formula-like text."""
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1), customer(2)]), db=db, run_id="customers-run")
    rows = [
        LOAN_HEADERS,
        loan(1, 10),
        loan(1, 11, Tenure="abc"),
        loan(2, 12, **{"Loan Amount": None, "Interest Rate": "@SUM(1)"}),
        loan(1, 13, **{"End Date": dt.date(2019, 1, 1)}),
        loan(9, 14, Tenure='=HYPERLINK("http://x")', **{"Monthly payment": "-5", "EMIs paid on Time": "+3"}),
    ]
    return toolkit.ingest(workbook(rows, name="loans.xlsx"), db=db, run_id="loans-run")


def test_rejected_rows_come_back_under_the_files_headers_with_errors_and_source_rows(
    loans: toolkit.IngestSummary, db: Path, tmp_path: Path
) -> None:
    out = write_fixit_workbook(db, tmp_path / "fix.xlsx", run_id="loans-run")
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["loans"]
    rows = sheet_rows(book["loans"])
    assert rows[0] == [*LOAN_HEADERS, "Errors", "Source row"]
    assert [r[-1] for r in rows[1:]] == [3, 4, 5, 6]
    assert rows[1][-2] == "Tenure: 'abc' is not a whole number"
    assert rows[2][-2].splitlines() == [e["message"] for e in loans.errors if e["row"] == 4]
    # Plain numbers and dates come back typed, the rest as the text that was read.
    assert rows[1][:5] == [1, 11, 100000, "abc", 10.5]
    assert rows[1][7] == dt.datetime(2020, 1, 15)


def test_failing_cells_are_filled_and_carry_their_reasons_as_comments(
    loans: toolkit.IngestSummary, db: Path, tmp_path: Path
) -> None:
    ws = openpyxl.load_workbook(write_fixit_workbook(db, tmp_path / "fix.xlsx", run_id="loans-run"))["loans"]
    marked = {
        (cell.row, ws.cell(1, cell.column).value): cell.comment.text if cell.comment else None
        for row in ws.iter_rows(min_row=2)
        for cell in row
        if cell.fill.fgColor.rgb == FILL
    }
    assert marked == {
        (2, "Tenure"): "Tenure: 'abc' is not a whole number",
        (3, "Loan Amount"): "Missing Loan Amount",
        (3, "Interest Rate"): "Interest Rate: '@SUM(1)' is not a number",
        # The cross-column rule marks every cell its check uses.
        (4, "Date of Approval"): "End Date is before Date of Approval",
        (4, "End Date"): "End Date is before Date of Approval",
        (5, "Tenure"): "Tenure: '=HYPERLINK(\"http://x\")' is not a whole number",
        (5, "Monthly payment"): "Monthly payment: '-5' must be greater than 0",
    }


def test_text_that_looks_like_a_formula_is_written_as_text(loans: toolkit.IngestSummary, db: Path, tmp_path: Path) -> None:
    out = write_fixit_workbook(db, tmp_path / "fix.xlsx", run_id="loans-run")
    with zipfile.ZipFile(out) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<f " not in sheet_xml
    ws = openpyxl.load_workbook(out)["loans"]
    texts = {c.value: c.data_type for row in ws.iter_rows(min_row=2) for c in row if isinstance(c.value, str)}
    for formula_like in ('=HYPERLINK("http://x")', "@SUM(1)", "-5", "+3"):
        assert texts[formula_like] == "s"


def test_hostile_text_comes_back_as_the_same_text_never_a_formula_and_a_cell_too_long_for_excel_says_so(
    tmp_path: Path, db: Path
) -> None:
    spec = tmp_path / "notes.toml"
    spec.write_text(NOTES_SPEC)
    toolkit.ingest(write_hostile(tmp_path / "hostile.xlsx", amount="lots"), db=db, specs=load_specs([spec]))  # all rejected

    out = write_fixit_workbook(db, tmp_path / "fix.xlsx")

    with zipfile.ZipFile(out) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<f " not in sheet_xml
    bodies = read_grid(out).cells["B"].to_list()[1:]
    expected = [text[:EXCEL_CELL_CHARS] for text in HOSTILE.values()]
    assert bodies == expected  # read back exactly, but for the one cell Excel cannot hold whole
    ws = openpyxl.load_workbook(out)["notes"]
    assert all(ws.cell(row, 2).data_type == "s" for row in range(2, len(HOSTILE) + 2))
    long_row = list(HOSTILE).index("a 1 MB cell") + 2
    note = f"Body: {len(HOSTILE['a 1 MB cell']):,} characters, more than an Excel cell holds: cut to 32,767 here"
    assert ws.cell(long_row, 2).fill.fgColor.rgb == FILL
    assert ws.cell(long_row, 2).comment.text == note
    assert ws.cell(long_row, 4).value.splitlines() == ["Amount: 'lots' is not a number", note]


def _correct(path: Path, fixes: dict[int, dict[str, object]]) -> None:
    """Edit the fix-it workbook as a user would in Excel: by source row and header."""
    book = openpyxl.load_workbook(path)
    ws = book.worksheets[0]
    headers = [c.value for c in ws[1]]
    for row in ws.iter_rows(min_row=2):
        for header, value in fixes.get(int(row[headers.index("Source row")].value), {}).items():
            row[headers.index(header)].value = value
    book.save(path)


def test_round_trip_corrected_rows_load_and_only_what_is_still_wrong_is_rejected_again(
    loans: toolkit.IngestSummary, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fix = tmp_path / "fix.xlsx"
    assert main(["rejects", "--db", str(db), "--table", "loans", "--out", str(fix)]) == 0
    assert "4 rejected rows" in capsys.readouterr().out
    _correct(fix, {3: {"Tenure": 12}, 4: {"Loan Amount": 250000, "Interest Rate": "9.5"}, 6: {"Customer ID": 2}})

    assert main(["ingest", str(fix), "--table", "loans", "--db", str(db), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["total"], result["inserted"], result["failed"]) == (4, 2, 2)
    assert result["unmapped_columns"] == ["Errors", "Source row"]
    assert {e["message"] for e in result["errors"]} == {
        "End Date is before Date of Approval",
        "Tenure: '=HYPERLINK(\"http://x\")' is not a whole number",
        "Monthly payment: '-5' must be greater than 0",
    }
    with connect_read_only(db) as con:
        stored = con.execute("SELECT loan_id, tenure, loan_amount FROM loans ORDER BY loan_id").fetchall()
    assert stored == [(10, 12, 100000.0), (11, 12, 100000.0), (12, 12, 250000.0)]

    # The loop closes: the next export holds exactly the rows still wrong.
    (sheet,) = fixit_sheets(db, table="loans")
    assert [r.cells["Loan ID"] for r in sheet.rows] == ["13", "14"]


def test_default_export_is_the_latest_run_of_each_table_that_left_rejects(
    workbook: Workbook, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1, Age="x")]), db=db, run_id="c1")
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(2, Age="y"), customer(3)]), db=db, run_id="c2")
    toolkit.ingest(workbook([LOAN_HEADERS, loan(3, 1, Tenure="z")]), db=db, run_id="l1")
    toolkit.ingest(workbook([LOAN_HEADERS, loan(3, 2)]), db=db, run_id="l2")  # clean: nothing left to fix
    assert [(s.name, s.run.run_id) for s in fixit_sheets(db)] == [("customers", "c2")]
    assert [(s.name, s.run.run_id) for s in fixit_sheets(db, run_id="l1")] == [("loans", "l1")]
    (clean,) = fixit_sheets(db, table="loans")
    assert (clean.run.run_id, clean.rows) == ("l2", ())
    out = tmp_path / "clean.xlsx"
    assert main(["rejects", "--db", str(db), "--table", "loans", "--out", str(out)]) == 0
    assert "nothing to fix" in capsys.readouterr().out
    assert sheet_rows(openpyxl.load_workbook(out)["loans"]) == [[*LOAN_HEADERS, "Errors", "Source row"]]


def test_several_tables_give_one_sheet_each_oldest_run_first(loans: toolkit.IngestSummary, db: Path, workbook: Workbook) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(5, Age="old")]), db=db, run_id="late-customers")
    assert [(s.name, s.run.run_id) for s in fixit_sheets(db)] == [("loans", "loans-run"), ("customers", "late-customers")]


def test_headers_keep_the_files_order_and_spelling(workbook: Workbook, db: Path, tmp_path: Path) -> None:
    headers = ["notes", "AGE", *[h for h in CUSTOMER_HEADERS if h != "Age"]]
    values = dict(zip(CUSTOMER_HEADERS, customer(1, Age="n/a"), strict=True))
    toolkit.ingest(workbook([headers, ["hello", *[values["Age" if h == "AGE" else h] for h in headers[1:]]]]), db=db)
    (first_row,) = openpyxl.load_workbook(write_fixit_workbook(db, tmp_path / "f.xlsx"))["customers"].iter_rows(max_row=1)
    assert [c.value for c in first_row] == [*headers[1:], "Errors", "Source row"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "{tmp}/none.duckdb"], "error: {tmp}/none.duckdb: no such warehouse\n"),
        (["--db", "{db}", "--run", "nope"], "error: {db}: no run 'nope' in _runs\n"),
        (["--db", "{db}", "--table", "nope"], "error: {db}: no run loaded table 'nope'\n"),
    ],
)
def test_rejects_command_refuses_with_one_line_and_exit_2(
    loans: toolkit.IngestSummary,
    db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "fix.xlsx"
    assert main(["rejects", *[a.format(tmp=tmp_path, db=db) for a in args], "--out", str(out)]) == 2
    assert capsys.readouterr().err == message.format(tmp=tmp_path, db=db)
    assert not out.exists()


def test_an_empty_warehouse_has_nothing_to_export(db: Path, tmp_path: Path) -> None:
    Warehouse(db).close()  # creates the audit tables, records no run
    with pytest.raises(WarehouseError, match="no runs recorded"):
        fixit_sheets(db)


# Texts as the reader produces them: numbers, date-times, and anything else a cell may hold.
cell_texts = st.one_of(
    st.integers(min_value=-(10**17), max_value=10**17).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%d %H:%M:%S")
    ),
    st.dates(min_value=dt.date(1899, 12, 1), max_value=dt.date(1900, 4, 1)).map(lambda d: f"{d:%Y-%m-%d} 00:00:00"),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(cell_texts, min_size=1, max_size=20))
def test_cells_read_back_as_the_text_they_were_read_from(tmp_path: Path, texts: list[str]) -> None:
    path = tmp_path / "cells.xlsx"
    book = xlsxwriter.Workbook(str(path))
    ws = book.add_worksheet()
    formats = _Formats(book)
    ws.write_string(0, 0, "header")
    for row, text in enumerate(texts, start=1):
        _write_cell(ws, row, 0, text, formats, failing=row % 2 == 0)
    book.close()
    # Through the text read and through the typed read ingestion uses, the same texts come back.
    assert read_grid(path).cells["A"].to_list()[1:] == texts
    assert text_frame(read_rows(open_sheet(path), header_row=1).cells)["A"].to_list() == texts


def test_the_issues_reimport_command_works_on_a_default_export_of_every_table(
    workbook: Workbook, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1), customer(2, Age="x")]), db=db)
    toolkit.ingest(workbook([LOAN_HEADERS, loan(1, 10), loan(1, 11, Tenure="abc"), loan(1, 12, Tenure="?")]), db=db)
    fix = tmp_path / "fix.xlsx"
    assert main(["rejects", "--db", str(db), "--out", str(fix)]) == 0  # default: every table, customers first
    assert openpyxl.load_workbook(fix).sheetnames == ["customers", "loans"]
    book = openpyxl.load_workbook(fix)
    book["loans"]["D2"] = 24  # Tenure of loan 11, corrected in Excel
    book["customers"]["D2"] = 41  # Age of customer 2
    book.save(fix)
    capsys.readouterr()

    # --table T without --sheet reads the sheet named T
    assert main(["ingest", str(fix), "--table", "loans", "--db", str(db), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["sheet"], result["table"], result["inserted"], result["failed"]) == ("loans", "loans", 1, 1)
    assert main(["ingest", str(fix), "--table", "customers", "--db", str(db), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["sheet"] == "customers"
    with connect_read_only(db) as con:
        assert con.execute("SELECT loan_id, tenure FROM loans ORDER BY 1").fetchall() == [(10, 12), (11, 24)]
        assert con.execute("SELECT customer_id, age FROM customers ORDER BY 1").fetchall() == [(1, 34), (2, 41)]
    # --sheet still wins, and a workbook without a sheet named after the table reads its first sheet
    assert main(["ingest", str(fix), "--table", "loans", "--sheet", "customers", "--db", str(db), "--quiet"]) == 2
    plain = workbook([LOAN_HEADERS, loan(2, 13)], sheet="Sheet1", extra_sheets={"other": [["x"], [1]]})
    assert read_grid(plain, prefer_sheet="loans").sheet == "Sheet1"
    assert read_grid(plain, prefer_sheet="other").sheet == "other"


def _marked(ws: openpyxl.worksheet.worksheet.Worksheet) -> dict[tuple[int, str], str | None]:
    return {
        (cell.row, ws.cell(1, cell.column).value): cell.comment.text if cell.comment else None
        for row in ws.iter_rows(min_row=2)
        for cell in row
        if cell.fill.fgColor.rgb == FILL
    }


def test_a_composite_key_clash_marks_the_key_cells_with_the_reason(workbook: Workbook, db: Path, tmp_path: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    toolkit.ingest(workbook([LOAN_HEADERS, loan(1, 11, Tenure=12), loan(1, 11, Tenure=24)]), db=db, run_id="clash")
    ws = openpyxl.load_workbook(write_fixit_workbook(db, tmp_path / "fix.xlsx", run_id="clash"))["loans"]
    clash = "Customer ID 1, Loan ID 11 is used by rows 2 and 3 with different values"
    assert _marked(ws) == {(r, h): clash for r in (2, 3) for h in ("Customer ID", "Loan ID")}


def test_a_rule_of_your_own_spec_marks_the_cells_it_uses(workbook: Workbook, db: Path, tmp_path: Path) -> None:
    spec_file = tmp_path / "stock.toml"
    spec_file.write_text(STOCK_SPEC, encoding="utf-8")
    specs = toolkit.load_specs([spec_file])
    toolkit.ingest(workbook([["Price", "SKU", "Qty"], [50, "A", 100], [1, "B", 5]]), db=db, specs=specs)
    fix = tmp_path / "fix.xlsx"
    assert main(["rejects", "--db", str(db), "--spec", str(spec_file), "--out", str(fix)]) == 0
    assert _marked(openpyxl.load_workbook(fix)["stock"]) == {
        (2, "Qty"): "Stock value above 1,000",
        (2, "Price"): "Stock value above 1,000",
    }
    # without the spec the rule's columns are unknown: the reason stays in the Errors column
    assert _marked(openpyxl.load_workbook(write_fixit_workbook(db, tmp_path / "plain.xlsx"))["stock"]) == {}
