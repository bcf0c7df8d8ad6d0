"""Each rule of the built-in specs accepting and rejecting, and every cell conversion."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import given, settings

from tests.conftest import CUSTOMER_HEADERS, LOAN_HEADERS, ExcelError, customer, loan, write_workbook
from toolkit.match import map_sheet
from toolkit.read import ROW, read_grid
from toolkit.rules import convert, raw_name
from toolkit.specs import Column, builtin_specs
from toolkit.validate import Validated, validate

SPECS = builtin_specs()
PHONE = SPECS["customers"].column("phone_number")
INTEGER = Column(name="n", header="N", type="integer")


def sheet(table: str, cells: dict[str, Any]) -> list[list[Any]]:
    """Header and one valid row of ``table`` with ``cells`` (header -> value) replaced or added."""
    base = (
        dict(zip(CUSTOMER_HEADERS, customer(1), strict=True))
        if table == "customers"
        else dict(zip(LOAN_HEADERS, loan(1, 100), strict=True))
    )
    base.update(cells)
    return [list(base), list(base.values())]


def judge(path: Path) -> Validated:
    return validate(map_sheet(read_grid(path), SPECS))


def failures(result: Validated) -> list[tuple[str, str]]:
    return list(zip(result.errors["rule"], result.errors["message"], strict=True))


def converted(column: Column, cells: list[str | None]) -> list[Any]:
    frame = pl.DataFrame({raw_name(column.name): cells}, schema={raw_name(column.name): pl.String})
    return frame.select(convert(column))[column.name].to_list()


# --- every rule of the built-in specs, rejecting ---------------------------------------------

REJECTED = [
    ("customers", {"Customer ID": None}, "customer_id|required", "Missing Customer ID"),
    ("customers", {"Customer ID": "abc"}, "customer_id|integer", "Customer ID: 'abc' is not a whole number"),
    ("customers", {"Customer ID": 0}, "customer_id|min", "Customer ID: '0' is less than the minimum 1"),
    ("customers", {"First Name": "   "}, "first_name|required", "Missing First Name"),
    ("customers", {"Last Name": None}, "last_name|required", "Missing Last Name"),
    ("customers", {"Age": 34.5}, "age|integer", "Age: '34.5' is not a whole number"),
    ("customers", {"Age": 17}, "age|min", "Age: '17' is less than the minimum 18"),
    ("customers", {"Age": 101}, "age|max", "Age: '101' is more than the maximum 100"),
    ("customers", {"Phone Number": None}, "phone_number|required", "Missing Phone Number"),
    ("customers", {"Phone Number": "98765"}, "phone_number|phone", "Phone Number: '98765' is not a 10-digit phone number"),
    ("customers", {"Monthly Salary": None}, "monthly_salary|required", "Missing Monthly Salary"),
    ("customers", {"Monthly Salary": "50k"}, "monthly_salary|integer", "Monthly Salary: '50k' is not a whole number"),
    ("customers", {"Monthly Salary": -1}, "monthly_salary|min", "Monthly Salary: '-1' is less than the minimum 0"),
    ("customers", {"Approved Limit": ""}, "approved_limit|required", "Missing Approved Limit"),
    ("customers", {"Approved Limit": 1.5}, "approved_limit|integer", "Approved Limit: '1.5' is not a whole number"),
    ("customers", {"Approved Limit": -100}, "approved_limit|min", "Approved Limit: '-100' is less than the minimum 0"),
    ("customers", {"Current Debt": "lots"}, "current_debt|number", "Current Debt: 'lots' is not a number"),
    ("customers", {"Current Debt": -0.5}, "current_debt|min", "Current Debt: '-0.5' is less than the minimum 0"),
    ("loans", {"Customer ID": None}, "customer_id|required", "Missing Customer ID"),
    ("loans", {"Customer ID": 1.25}, "customer_id|integer", "Customer ID: '1.25' is not a whole number"),
    ("loans", {"Customer ID": -3}, "customer_id|min", "Customer ID: '-3' is less than the minimum 1"),
    ("loans", {"Loan ID": None}, "loan_id|required", "Missing Loan ID"),
    ("loans", {"Loan ID": "L-100"}, "loan_id|integer", "Loan ID: 'L-100' is not a whole number"),
    ("loans", {"Loan ID": 0}, "loan_id|min", "Loan ID: '0' is less than the minimum 1"),
    ("loans", {"Loan Amount": None}, "loan_amount|required", "Missing Loan Amount"),
    ("loans", {"Loan Amount": "1,000"}, "loan_amount|number", "Loan Amount: '1,000' is not a number"),
    ("loans", {"Loan Amount": 0}, "loan_amount|greater_than", "Loan Amount: '0' must be greater than 0"),
    ("loans", {"Tenure": None}, "tenure|required", "Missing Tenure"),
    ("loans", {"Tenure": "abc"}, "tenure|integer", "Tenure: 'abc' is not a whole number"),
    ("loans", {"Tenure": 0, "EMIs paid on Time": 0}, "tenure|min", "Tenure: '0' is less than the minimum 1"),
    ("loans", {"Interest Rate": None}, "interest_rate|required", "Missing Interest Rate"),
    ("loans", {"Interest Rate": "ten"}, "interest_rate|number", "Interest Rate: 'ten' is not a number"),
    ("loans", {"Interest Rate": 0}, "interest_rate|greater_than", "Interest Rate: '0' must be greater than 0"),
    ("loans", {"Interest Rate": 100.5}, "interest_rate|max", "Interest Rate: '100.5' is more than the maximum 100"),
    ("loans", {"Monthly payment": None}, "monthly_repayment|required", "Missing Monthly payment"),
    ("loans", {"Monthly payment": "n/a"}, "monthly_repayment|number", "Monthly payment: 'n/a' is not a number"),
    ("loans", {"Monthly payment": -5}, "monthly_repayment|greater_than", "Monthly payment: '-5' must be greater than 0"),
    ("loans", {"EMIs paid on Time": None}, "emis_paid_on_time|required", "Missing EMIs paid on Time"),
    ("loans", {"EMIs paid on Time": 2.5}, "emis_paid_on_time|integer", "EMIs paid on Time: '2.5' is not a whole number"),
    ("loans", {"EMIs paid on Time": -1}, "emis_paid_on_time|min", "EMIs paid on Time: '-1' is less than the minimum 0"),
    ("loans", {"EMIs paid on Time": 13}, "emis_within_tenure", "EMIs paid on Time is greater than Tenure"),
    ("loans", {"Date of Approval": None}, "start_date|required", "Missing Date of Approval"),
    (
        "loans",
        {"Date of Approval": "01/05/2019"},
        "start_date|date",
        "Date of Approval: '01/05/2019' is not a date (expected a date cell or YYYY-MM-DD text)",
    ),
    ("loans", {"End Date": None}, "end_date|required", "Missing End Date"),
    (
        "loans",
        {"End Date": "31/02/2019"},
        "end_date|date",
        "End Date: '31/02/2019' is not a date (expected a date cell or YYYY-MM-DD text)",
    ),
    (
        "loans",
        {"End Date": dt.datetime(2021, 1, 15, 13, 30)},
        "end_date|time_of_day",
        "End Date: '2021-01-15 13:30:00' has a time of day; the column holds dates only",
    ),
    ("loans", {"End Date": dt.date(2019, 12, 31)}, "end_after_start", "End Date is before Date of Approval"),
]


@pytest.mark.parametrize(("table", "cells", "rule", "message"), REJECTED, ids=[case[2] for case in REJECTED])
def test_each_rule_rejects_a_row_that_breaks_it_and_names_it(
    workbook: Callable[..., Path], table: str, cells: dict[str, Any], rule: str, message: str
) -> None:
    result = judge(workbook(sheet(table, cells)))

    assert result.spec.table == table
    assert failures(result) == [(rule, message)]
    assert result.errors["row"].to_list() == [2]
    assert result.accepted.is_empty()
    assert result.rejected["reasons"].to_list() == [[message]]


# --- the same rules, accepting (boundary values included) ------------------------------------

ACCEPTED = [
    ("customers", {}),
    ("customers", {"Customer ID": 1}),
    ("customers", {"Age": 18}),
    ("customers", {"Age": 100}),
    ("customers", {"Age": None}),  # optional
    ("customers", {"Monthly Salary": 0, "Approved Limit": 0}),
    ("customers", {"Current Debt": 0}),
    ("customers", {"Current Debt": 12.75}),
    ("customers", {"Current Debt": None}),  # optional
    ("loans", {}),
    ("loans", {"Loan Amount": 0.01, "Monthly payment": 0.01}),
    ("loans", {"Interest Rate": 100}),
    ("loans", {"Interest Rate": 0.001}),
    ("loans", {"Tenure": 1, "EMIs paid on Time": 1}),
    ("loans", {"EMIs paid on Time": 0}),
    ("loans", {"EMIs paid on Time": 12}),  # equal to Tenure
    ("loans", {"End Date": dt.date(2020, 1, 15)}),  # same day as Date of Approval
]


@pytest.mark.parametrize(("table", "cells"), ACCEPTED, ids=[f"{t}-{c}" for t, c in ACCEPTED])
def test_each_rule_accepts_a_row_within_it(workbook: Callable[..., Path], table: str, cells: dict[str, Any]) -> None:
    result = judge(workbook(sheet(table, cells)))

    assert result.spec.table == table
    assert failures(result) == []
    assert result.accepted[ROW].to_list() == [2]


# --- cell conversions, through real workbook cells -------------------------------------------

CONVERTED = [
    ("customers", "Monthly Salary", "12", "monthly_salary", 12),
    ("customers", "Monthly Salary", " 250000 ", "monthly_salary", 250000),
    ("customers", "Monthly Salary", 12.0, "monthly_salary", 12),
    ("customers", "Monthly Salary", "12.0", "monthly_salary", 12),
    ("customers", "Monthly Salary", "1e3", "monthly_salary", 1000),
    ("customers", "Age", "   ", "age", None),  # whitespace only is missing; Age is optional
    ("customers", "Phone Number", 9876543210, "phone_number", "9876543210"),
    ("customers", "Phone Number", "+91 98765-43210", "phone_number", "9876543210"),
    ("customers", "First Name", "  Asha  ", "first_name", "Asha"),
    ("customers", "Current Debt", " 1500.5 ", "current_debt", 1500.5),
    ("loans", "Date of Approval", dt.date(2019, 5, 1), "start_date", dt.date(2019, 5, 1)),
    ("loans", "Date of Approval", "2019-05-01", "start_date", dt.date(2019, 5, 1)),
    ("loans", "Date of Approval", " 2019-05-01 ", "start_date", dt.date(2019, 5, 1)),
    ("loans", "Date of Approval", dt.datetime(2019, 5, 1, 0, 0), "start_date", dt.date(2019, 5, 1)),
    ("loans", "Date of Approval", "2019-05-01 00:00:00", "start_date", dt.date(2019, 5, 1)),
    ("loans", "Date of Approval", "2019-05-01T00:00", "start_date", dt.date(2019, 5, 1)),
    ("loans", "Loan Amount", "  250000 ", "loan_amount", 250000.0),
    ("loans", "Interest Rate", 10.35, "interest_rate", 10.35),
]


@pytest.mark.parametrize(("table", "header", "cell", "column", "expected"), CONVERTED)
def test_cells_as_spreadsheets_hold_them_are_converted(
    workbook: Callable[..., Path], table: str, header: str, cell: Any, column: str, expected: Any
) -> None:
    result = judge(workbook(sheet(table, {header: cell})))

    assert failures(result) == []
    assert result.accepted[column].to_list() == [expected]


NOT_CONVERTED = [
    ("customers", "Monthly Salary", 8.5, "monthly_salary|integer", "Monthly Salary: '8.5' is not a whole number"),
    ("customers", "Monthly Salary", "12.5", "monthly_salary|integer", "Monthly Salary: '12.5' is not a whole number"),
    ("customers", "Monthly Salary", "   ", "monthly_salary|required", "Missing Monthly Salary"),
    ("customers", "Monthly Salary", "nan", "monthly_salary|integer", "Monthly Salary: 'nan' is not a whole number"),
    ("customers", "Monthly Salary", dt.date(2020, 1, 1), "monthly_salary|integer", None),
    ("customers", "Current Debt", "inf", "current_debt|number", "Current Debt: 'inf' is not a number"),
    (
        "loans",
        "Date of Approval",
        dt.datetime(2019, 5, 1, 13, 30),
        "start_date|time_of_day",
        "Date of Approval: '2019-05-01 13:30:00' has a time of day; the column holds dates only",
    ),
    (
        "loans",
        "Date of Approval",
        "2019-05-01 09:00",
        "start_date|time_of_day",
        "Date of Approval: '2019-05-01 09:00' has a time of day; the column holds dates only",
    ),
    ("loans", "Date of Approval", "31/02/2019", "start_date|date", None),
    ("loans", "Date of Approval", "01/05/2019", "start_date|date", None),
    ("loans", "Date of Approval", "2019-02-31", "start_date|date", None),
    ("loans", "Date of Approval", "May 1, 2019", "start_date|date", None),
    ("loans", "Date of Approval", 43586, "start_date|date", None),  # a serial number, not a date cell
    ("loans", "Date of Approval", "2019-05-01x", "start_date|date", None),
]


@pytest.mark.parametrize(("table", "header", "cell", "rule", "message"), NOT_CONVERTED)
def test_cells_that_do_not_convert_reject_the_row_quoting_the_cell(
    workbook: Callable[..., Path], table: str, header: str, cell: Any, rule: str, message: str | None
) -> None:
    result = judge(workbook(sheet(table, {header: cell})))

    assert result.errors["rule"].to_list() == [rule]
    if message is not None:
        assert result.errors["message"].to_list() == [message]
    elif not rule.endswith("|required"):
        assert result.errors["message"][0].startswith(f"{header}: '")
    assert result.accepted.is_empty()


@pytest.mark.parametrize("error", ["#DIV/0!", "#N/A", "#REF!", "#NAME?", "#VALUE!"])
@pytest.mark.parametrize(("table", "header", "column"), [("customers", "Age", "age"), ("loans", "End Date", "end_date")])
def test_an_excel_error_in_a_mapped_column_rejects_the_row_naming_the_error_once(
    workbook: Callable[..., Path], error: str, table: str, header: str, column: str
) -> None:
    result = judge(workbook(sheet(table, {header: ExcelError(error)})))

    assert result.errors.rows(named=True) == [
        {"row": 2, "column": header, "rule": f"{column}|excel_error", "message": f"{header}: Excel error {error}", "value": error}
    ]
    assert result.rejected[column].to_list() == [error]


def test_an_excel_error_in_a_required_column_is_not_also_reported_missing(workbook: Callable[..., Path]) -> None:
    result = judge(workbook(sheet("customers", {"Monthly Salary": ExcelError("#N/A")})))

    assert failures(result) == [("monthly_salary|excel_error", "Monthly Salary: Excel error #N/A")]


# --- phone numbers (issue 8.8), on cell text --------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("9876543210", "9876543210"),
        ("+91 98765-43210", "9876543210"),
        ("+919876543210", "9876543210"),
        ("0091 9876543210", "9876543210"),
        ("919876543210", "9876543210"),
        ("09876543210", "9876543210"),
        ("(987) 654.3210", "9876543210"),
        ("98765 43210", "9876543210"),
        ("98765\u00a043210", "9876543210"),  # a non-breaking space
        ("9198765432", "9198765432"),  # ten digits starting 91: nothing to drop
        ("0123456789", "0123456789"),
        ("987654321", None),  # nine digits
        ("98765432101", None),  # eleven digits not starting with 0
        ("98765ABCDE", None),
        ("phone", None),
        ("+1 2025550123", None),  # a foreign number
        ("+9876543210", None),  # a plus needs a country code
        ("+44 7911 123456", None),
        ("91 09876543210", None),  # one prefix is dropped, not two
        ("9876543210.0", None),
        ("   ", None),
    ],
)
def test_phone_numbers_normalise_to_ten_digits_or_do_not_convert(cell: str, expected: str | None) -> None:
    assert converted(PHONE, [cell]) == [expected]


_SEPARATORS = st.text(alphabet=" -.()", max_size=2)


@settings(max_examples=200, deadline=None)
@given(
    number=st.text(alphabet="0123456789", min_size=10, max_size=10),
    prefix=st.sampled_from(["", "+91", "+91 ", "0091", "0091-", "91", "91 ", "0", "0 ", "(+91) "]),
    separators=st.lists(_SEPARATORS, min_size=10, max_size=10),
)
def test_any_ten_digit_number_with_separators_and_a_prefix_normalises_to_itself(
    number: str, prefix: str, separators: list[str]
) -> None:
    written = prefix + "".join(digit + sep for digit, sep in zip(number, separators, strict=True))
    assert converted(PHONE, [written]) == [number]


# --- whole numbers, on cell text and through real cells --------------------------------------

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(max_examples=200, deadline=None)
@given(n=_INT64, form=st.sampled_from(["{}", "{}.0", "{}.000", " {} ", "\t{}.0  "]))
def test_any_whole_number_written_as_text_converts_to_itself(n: int, form: str) -> None:
    assert converted(INTEGER, [form.format(n)]) == [n]


@pytest.mark.parametrize(
    "cell",
    [
        "12.5",
        "0.1",
        "12.0000001",
        "12.0000000000000001",
        "12345678901234567.5",
        "1.5e0",
        "1e-3",
        "1,000",
        "twelve",
        "12 000",
        "0x10",
        "inf",
        "-nan",
        "9223372036854775808",
        "1e19",
    ],
)
def test_text_that_is_not_a_whole_number_does_not_convert(cell: str) -> None:
    assert converted(INTEGER, [cell]) == [None]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(min_value=-(10**15), max_value=10**15))
def test_any_whole_number_stored_as_a_number_cell_converts_to_itself(tmp_path_factory: pytest.TempPathFactory, n: int) -> None:
    path = write_workbook(tmp_path_factory.mktemp("int") / "n.xlsx", [["Monthly Salary"], [n], [float(n)], [str(n)]])
    grid = read_grid(path)
    frame = grid.cells.select(pl.col("A").alias(raw_name(INTEGER.name))).slice(1)
    assert frame.select(convert(INTEGER))[INTEGER.name].to_list() == [n, n, n]


# --- 32-bit whole numbers (age, tenure, EMIs paid on time are INTEGER in the warehouse) -------


@pytest.mark.parametrize(
    ("table", "header", "cell", "messages"),
    [
        ("customers", "Age", "3000000000", ["Age: '3000000000' is too large for a 32-bit whole number"]),
        ("loans", "Tenure", -(2**31) - 1, ["Tenure: '-2147483649' is too large for a 32-bit whole number"]),
        ("loans", "EMIs paid on Time", "1e12", ["EMIs paid on Time: '1e12' is too large for a 32-bit whole number"]),
        ("customers", "Age", "99999999999999999999", ["Age: '99999999999999999999' is too large for a 32-bit whole"]),
        ("customers", "Age", "2147483648.5", ["Age: '2147483648.5' is not a whole number"]),
    ],
)
def test_a_whole_number_beyond_32_bits_is_a_rejection_never_an_overflow(
    workbook: Callable[..., Path], table: str, header: str, cell: Any, messages: list[str]
) -> None:
    result = judge(workbook(sheet(table, {header: cell})))
    (failure,) = failures(result)
    assert failure[0].endswith("|integer")  # the same check as for 64 bits, with its own message
    assert len(messages) == 1 and failure[1].startswith(messages[0])
    assert result.accepted.is_empty()


@pytest.mark.parametrize("n", [-(2**31), 2**31 - 1, 0])
def test_the_32_bit_limits_themselves_convert(n: int) -> None:
    column = Column(name="n", header="N", type="integer32")
    assert converted(column, [str(n), f"{n}.0"]) == [n, n]
