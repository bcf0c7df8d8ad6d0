"""Finding the header row and matching its headers to a table spec."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

import toolkit
from tests.conftest import CUSTOMER_HEADERS, LOAN_HEADERS, ExcelError, corpus, customer, loan
from toolkit.errors import HeaderError, SheetError
from toolkit.match import HEADER_SEARCH_ROWS, MappedSheet, map_sheet, normalize_header
from toolkit.read import ROW, read_grid
from toolkit.specs import builtin_specs

SPECS = builtin_specs()
Workbook = Callable[..., Path]


def mapped(path: Path, **options: Any) -> MappedSheet:
    return map_sheet(read_grid(path), SPECS, **options)


def with_header(headers: list[str], old: str, new: str) -> list[str]:
    return [new if h == old else h for h in headers]


# --- header text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["Customer ID", "customer_id", "CUSTOMER-ID", "customer id", " Customer  ID ", "Customer\nID", "Customer ID:", "CustomerID"],
)
def test_headers_match_ignoring_case_spaces_underscores_punctuation_and_line_breaks(workbook: Workbook, header: str) -> None:
    sheet = mapped(workbook([with_header(CUSTOMER_HEADERS, "Customer ID", header), customer(7)]))

    assert sheet.spec.table == "customers"
    assert sheet.headers["customer_id"] == header.strip()
    assert sheet.raw["customer_id"].to_list() == ["7"]
    assert sheet.unmapped_columns == []


@pytest.mark.parametrize(
    "header",
    [
        "Customer\x00ID",
        "\x00Customer ID\x00",
        "C\x00u\x00s\x00t\x00o\x00m\x00e\x00r\x00 \x00I\x00D\x00",  # UTF-16 read as bytes, as in the corpus's xls
        "Customer\r\nID",
        "Customer\u2028ID",
    ],
)
def test_nul_bytes_and_line_breaks_in_a_header_are_ignored_and_the_header_is_kept_as_found(
    workbook: Workbook, header: str, db: Path
) -> None:
    path = workbook([[*with_header(CUSTOMER_HEADERS, "Customer ID", header), "No\x00tes", "\x00"], [*customer(7), "a", "b"]])

    sheet = mapped(path)
    assert sheet.headers["customer_id"] == header
    assert sheet.unmapped_columns == ["No\x00tes", "\x00"]
    summary = toolkit.ingest(path, db=db)
    assert summary.inserted == 1
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT headers[1], unmapped_columns FROM _runs").fetchall() == [(header, ["No\x00tes", "\x00"])]


def test_a_header_that_is_only_a_line_break_is_no_header(workbook: Workbook) -> None:
    sheet = mapped(workbook([[*CUSTOMER_HEADERS, "\r\n"], [*customer(7), "x"]]))
    assert sheet.unmapped_columns == ["(no header, column H)"]


@given(st.text(alphabet=" _-.:/()\n\t#", max_size=3), st.text(alphabet=" _-.:/()\n\t#", max_size=3), st.booleans())
def test_normalized_headers_ignore_case_and_every_separator(before: str, between: str, upper: bool) -> None:
    header = f"{before}Monthly{between}Salary{before}"
    assert normalize_header(header.upper() if upper else header) == "monthlysalary"


@pytest.mark.parametrize(
    ("old", "alias", "column"),
    [("Date of Approval", "Start Date", "start_date"), ("Monthly payment", "Monthly Repayment", "monthly_repayment")],
)
def test_a_spec_alias_matches_its_column(workbook: Workbook, old: str, alias: str, column: str) -> None:
    sheet = mapped(workbook([with_header(LOAN_HEADERS, old, alias), loan()]))

    assert sheet.spec.table == "loans"
    assert sheet.headers[column] == alias
    assert sheet.raw[column].null_count() == 0


def test_the_spec_is_chosen_from_the_headers(workbook: Workbook) -> None:
    assert mapped(workbook([CUSTOMER_HEADERS, customer()])).spec.table == "customers"
    assert mapped(workbook([LOAN_HEADERS, loan()])).spec.table == "loans"


def test_extra_columns_are_listed_as_unmapped_including_a_header_less_column_with_data(workbook: Workbook) -> None:
    rows = [
        [*CUSTOMER_HEADERS, "Notes", None, None, "Branch"],
        [*customer(1), "vip", "x", None, None],
        [*customer(2), None, None, None, None],
    ]
    sheet = mapped(workbook(rows))

    # column I has data but no header; column J has neither, so it is not worth mentioning
    assert sheet.unmapped_columns == ["Notes", "(no header, column I)", "Branch"]
    assert sheet.raw.columns == [ROW, *[c.name for c in SPECS["customers"].columns if c.name != "current_debt"]]
    assert sheet.present == ["customer_id", "first_name", "last_name", "age", "phone_number", "monthly_salary", "approved_limit"]


# --- structural errors ------------------------------------------------------------------------


def test_a_missing_required_column_names_the_missing_and_the_found_headers(workbook: Workbook) -> None:
    headers = [h for h in LOAN_HEADERS if h not in ("Tenure", "Loan ID")]
    path = workbook([headers, loan()[: len(headers)]], name="loan_data.xlsx")

    with pytest.raises(
        HeaderError, match=r"^loan_data\.xlsx, sheet 'Sheet1': 2 required columns missing for table 'loans'"
    ) as info:
        mapped(path, table="loans")
    message = str(info.value)
    assert "'Loan ID', 'Tenure' (found: 'Customer ID', 'Loan Amount', 'Interest Rate'" in message
    assert "\n" not in message


def test_without_a_table_a_missing_column_names_the_closest_spec_and_what_it_misses(workbook: Workbook) -> None:
    headers = [h for h in LOAN_HEADERS if h != "End Date"]
    with pytest.raises(HeaderError, match=r"no table spec matches the headers \(found: 'Customer ID', .*'Date of Approval'\); "):
        mapped(workbook([headers, loan()[:-1]]))
    with pytest.raises(HeaderError, match=r"closest is 'loans', missing 'End Date'; pass --table or --spec"):
        mapped(workbook([headers, loan()[:-1]]))


def test_headers_that_match_no_spec_are_a_header_error(workbook: Workbook) -> None:
    with pytest.raises(HeaderError, match=r"no table spec matches the headers \(found: 'Name', 'Colour'\)"):
        mapped(workbook([["Name", "Colour"], ["apple", "red"]]))


def test_an_unknown_table_name_lists_the_known_ones(workbook: Workbook) -> None:
    with pytest.raises(HeaderError, match=r"no table spec named 'payments' \(known: customers, loans\)"):
        mapped(workbook([CUSTOMER_HEADERS, customer()]), table="payments")


@pytest.mark.parametrize(
    ("extra", "column", "clashing"),
    [
        ("customer_id", "Customer ID", "'Customer ID' (column A) and 'customer_id' (column H)"),
        ("Start Date", "Date of Approval", "'Date of Approval' (column H) and 'Start Date' (column J)"),
    ],
)
def test_two_headers_mapping_to_one_column_are_a_header_error_naming_both(
    workbook: Workbook, extra: str, column: str, clashing: str
) -> None:
    headers = CUSTOMER_HEADERS if column == "Customer ID" else LOAN_HEADERS
    row = customer() if column == "Customer ID" else loan()

    expected = f"headers {clashing} both map to column '{column}'; rename or remove one"
    with pytest.raises(HeaderError, match=re.escape(expected)):
        mapped(workbook([[*headers, extra], [*row, row[0]]]))


@pytest.mark.parametrize("rows", [[], [[None, None]], [["   "]]], ids=["no cells", "empty cells", "whitespace"])
def test_an_empty_sheet_is_a_sheet_error(workbook: Workbook, rows: list[list[Any]]) -> None:
    with pytest.raises(SheetError, match=r"^book0\.xlsx, sheet 'Sheet1': the sheet is empty \(no header row, no data\)$"):
        mapped(workbook(rows))


@pytest.mark.parametrize("name", ["fastexcel__empty.xlsx", "fastexcel__empty.ods"])
def test_an_empty_sheet_from_the_corpus_is_a_sheet_error(name: str) -> None:
    with pytest.raises(SheetError, match="the sheet is empty"):
        mapped(corpus(name))


def test_a_header_with_no_data_rows_gives_empty_frames(workbook: Workbook) -> None:
    sheet = mapped(workbook([CUSTOMER_HEADERS]))

    assert sheet.header_row == 1
    assert sheet.raw.is_empty()
    assert sheet.raw.columns[0] == ROW
    assert sheet.cell_errors.is_empty()
    assert sheet.blank_rows == 0


# --- where the header and the rows are --------------------------------------------------------


def test_a_header_below_title_rows_is_found_and_rows_keep_their_excel_numbers(workbook: Workbook) -> None:
    rows = [["Customer export"], ["Generated 2024-01-01", None, "by ops"], [], CUSTOMER_HEADERS, customer(1), customer(2)]
    sheet = mapped(workbook(rows))

    assert sheet.header_row == 4
    assert sheet.raw[ROW].to_list() == [5, 6]
    assert sheet.raw["customer_id"].to_list() == ["1", "2"]


def test_the_header_search_stops_after_the_first_rows(workbook: Workbook) -> None:
    rows: list[list[Any]] = [["Customer export"], *[[] for _ in range(HEADER_SEARCH_ROWS)], CUSTOMER_HEADERS, customer(1)]
    path = workbook(rows)

    with pytest.raises(HeaderError, match="no table spec matches the headers"):
        mapped(path)
    assert mapped(path, header_row=HEADER_SEARCH_ROWS + 2).raw[ROW].to_list() == [HEADER_SEARCH_ROWS + 3]


def test_a_table_that_starts_far_down_an_otherwise_empty_sheet_is_still_found(workbook: Workbook) -> None:
    sheet = mapped(workbook([CUSTOMER_HEADERS, customer(1)], first_cell=(29, 0)))

    assert (sheet.header_row, sheet.raw[ROW].to_list()) == (30, [31])


def test_an_explicit_header_row_is_used_even_when_an_earlier_row_would_match(workbook: Workbook) -> None:
    rows = [CUSTOMER_HEADERS, customer(1), ["Second table"], CUSTOMER_HEADERS, customer(2)]
    sheet = mapped(workbook(rows), header_row=4)

    assert sheet.header_row == 4
    assert sheet.raw[ROW].to_list() == [5]
    assert sheet.raw["customer_id"].to_list() == ["2"]


def test_an_explicit_header_row_without_the_headers_is_a_header_error(workbook: Workbook) -> None:
    with pytest.raises(HeaderError, match=r"missing for table 'customers'.*\(found: '1', 'Asha', 'Rao'"):
        mapped(workbook([CUSTOMER_HEADERS, customer(1)]), header_row=2, table="customers")


def test_an_explicit_header_row_past_the_end_is_a_sheet_error(workbook: Workbook) -> None:
    with pytest.raises(SheetError, match=r"header row 9 is beyond the sheet's last row \(2\)"):
        mapped(workbook([CUSTOMER_HEADERS, customer(1)]), header_row=9)


def test_a_table_offset_from_a1_keeps_exact_excel_row_numbers_for_rows_and_errors(workbook: Workbook) -> None:
    rows = [CUSTOMER_HEADERS, customer(1), customer(2, Age=ExcelError("#N/A")), [], customer(3)]
    sheet = mapped(workbook(rows, first_cell=(3, 2)))  # header at C4

    assert sheet.header_row == 4
    assert sheet.raw[ROW].to_list() == [5, 6, 8]
    assert sheet.cell_errors.rows() == [(6, "age", "#N/A")]
    assert sheet.raw.filter(sheet.raw[ROW] == 6)["age"].to_list() == ["#N/A"]


def test_blank_rows_are_skipped_not_counted_and_later_rows_keep_their_physical_number(workbook: Workbook) -> None:
    rows = [CUSTOMER_HEADERS, customer(1), [], [None, "   ", ""], customer(2), [], [], customer(3)]
    sheet = mapped(workbook(rows))

    assert sheet.raw[ROW].to_list() == [2, 5, 8]
    assert sheet.raw["customer_id"].to_list() == ["1", "2", "3"]
    assert sheet.blank_rows == 4


def test_error_cells_in_unmapped_columns_are_ignored_and_a_row_holding_only_one_is_blank(workbook: Workbook) -> None:
    rows = [
        [*CUSTOMER_HEADERS, "Ratio"],
        [*customer(1), ExcelError("#DIV/0!")],
        [*[None] * len(CUSTOMER_HEADERS), ExcelError("#REF!")],
        [*customer(2), 0.5],
    ]
    sheet = mapped(workbook(rows))

    assert sheet.raw[ROW].to_list() == [2, 4]
    assert sheet.cell_errors.is_empty()
    assert sheet.blank_rows == 1
    assert sheet.unmapped_columns == ["Ratio"]


def test_error_cells_in_mapped_columns_are_reported_by_spec_column(workbook: Workbook) -> None:
    rows = [CUSTOMER_HEADERS, customer(1, Age=ExcelError("#VALUE!"), Monthly_Salary=ExcelError("#DIV/0!"))]
    sheet = mapped(workbook(rows))

    assert sorted(sheet.cell_errors.rows()) == [(2, "age", "#VALUE!"), (2, "monthly_salary", "#DIV/0!")]


def test_an_error_cell_in_the_header_row_region_above_the_data_is_not_a_row_error(workbook: Workbook) -> None:
    rows = [["Report", ExcelError("#N/A")], CUSTOMER_HEADERS, customer(1)]
    sheet = mapped(workbook(rows))

    assert sheet.header_row == 2
    assert sheet.cell_errors.is_empty()
    assert sheet.raw[ROW].to_list() == [3]
