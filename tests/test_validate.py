"""Validating a mapped sheet: every reason per row, duplicates and conflicts inside one file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import given, settings

from tests.conftest import CUSTOMER_HEADERS, LOAN_HEADERS, customer, loan
from toolkit.match import MappedSheet, map_sheet
from toolkit.read import ROW, read_grid
from toolkit.specs import builtin_specs
from toolkit.validate import ERROR_SCHEMA, Validated, validate

SPECS = builtin_specs()
Workbook = Callable[..., Path]


def judge(path: Path) -> Validated:
    return validate(map_sheet(read_grid(path), SPECS))


def customers(*rows: list[Any]) -> list[list[Any]]:
    return [CUSTOMER_HEADERS, *rows]


def reasons_by_row(result: Validated) -> dict[int, list[str]]:
    return dict(zip(result.rejected[ROW].to_list(), result.rejected["reasons"].to_list(), strict=True))


def test_a_row_lists_every_check_it_failed_in_spec_order(workbook: Workbook) -> None:
    result = judge(workbook(customers(customer(1), customer(2, First_Name=None, Age=17, Monthly_Salary="x"))))

    assert result.accepted[ROW].to_list() == [2]
    assert result.errors.rows() == [
        (3, "First Name", "first_name|required", "Missing First Name", None),
        (3, "Age", "age|min", "Age: '17' is less than the minimum 18", "17"),
        (3, "Monthly Salary", "monthly_salary|integer", "Monthly Salary: 'x' is not a whole number", "x"),
    ]
    assert reasons_by_row(result) == {3: [m for m in result.errors["message"]]}


def test_rejected_rows_keep_the_raw_cell_text_as_found(workbook: Workbook) -> None:
    result = judge(workbook(customers(customer(1, Age=" 12.5 "))))

    assert result.rejected.drop("reasons").row(0) == (2, "1", "Asha", "Rao", " 12.5 ", "9800000001", "50000", "1800000")
    assert result.raw.columns == result.rejected.columns[:-1]


def test_accepted_rows_are_typed_and_columns_the_file_lacks_are_null(workbook: Workbook) -> None:
    result = judge(workbook(customers(customer(1))))

    assert result.accepted.schema == pl.Schema(
        {
            ROW: pl.Int64,
            "customer_id": pl.Int64,
            "first_name": pl.String,
            "last_name": pl.String,
            "age": pl.Int64,
            "phone_number": pl.String,
            "monthly_salary": pl.Int64,
            "approved_limit": pl.Int64,
            "current_debt": pl.Float64,
        }
    )
    assert result.accepted.row(0) == (2, 1, "Asha", "Rao", 34, "9800000001", 50000, 1800000, None)


def test_a_header_with_no_rows_gives_empty_frames_with_their_schemas(workbook: Workbook) -> None:
    result = judge(workbook([LOAN_HEADERS]))

    assert result.accepted.is_empty() and result.rejected.is_empty() and result.duplicates.is_empty()
    assert result.accepted.columns == [ROW, *SPECS["loans"].names]
    assert result.errors.schema == pl.Schema(ERROR_SCHEMA)
    assert result.duplicates.columns == [ROW, "__first_row"]


# --- rows sharing a key in one file -----------------------------------------------------------


def test_identical_rows_sharing_a_key_keep_the_first_and_count_the_rest_as_duplicates(workbook: Workbook) -> None:
    result = judge(workbook(customers(customer(1), customer(2), customer(1), customer(1))))

    assert result.accepted[ROW].to_list() == [2, 3]
    assert result.duplicates.rows() == [(4, 2), (5, 2)]
    assert result.rejected.is_empty()


def test_rows_sharing_a_key_with_different_values_are_all_rejected(workbook: Workbook) -> None:
    result = judge(workbook(customers(customer(5), customer(6), customer(5, Age=40), customer(5))))

    message = "Customer ID 5 is used by rows 2, 4 and 5 with different values"
    assert result.errors.rows() == [(r, "Customer ID", "customer_id|key", message, "5") for r in (2, 4, 5)]
    assert result.accepted[ROW].to_list() == [3]
    assert result.duplicates.is_empty()


def test_a_row_failing_a_rule_does_not_make_a_valid_row_with_its_key_a_conflict(workbook: Workbook) -> None:
    result = judge(workbook(customers(customer(5), customer(5, Monthly_Salary=None), customer(5, Age=12))))

    assert result.accepted[ROW].to_list() == [2]
    assert reasons_by_row(result) == {3: ["Missing Monthly Salary"], 4: ["Age: '12' is less than the minimum 18"]}


@pytest.mark.parametrize(("first", "second"), [("12", 12.0), (" 12 ", 12), ("12.0", "12")])
def test_keys_are_compared_on_converted_values(workbook: Workbook, first: Any, second: Any) -> None:
    same = judge(workbook(customers(customer(first, Phone_Number="9876543210"), customer(second, Phone_Number=9876543210))))
    differ = judge(workbook(customers(customer(first, Phone_Number="9876543210"), customer(second, Age=40))))

    assert (same.accepted["customer_id"].to_list(), same.duplicates.rows()) == ([12], [(3, 2)])
    assert differ.errors["message"].to_list() == ["Customer ID 12 is used by rows 2 and 3 with different values"] * 2


def test_a_composite_key_conflicts_only_when_every_part_is_shared(workbook: Workbook) -> None:
    rows = [LOAN_HEADERS, loan(1, 100), loan(2, 100), loan(1, 101), loan(1, 100, Tenure=24)]
    result = judge(workbook(rows))

    message = "Customer ID 1, Loan ID 100 is used by rows 2 and 5 with different values"
    assert result.errors.rows() == [
        (2, None, "customer_id+loan_id|key", message, None),
        (5, None, "customer_id+loan_id|key", message, None),
    ]
    assert result.accepted[ROW].to_list() == [3, 4]


def test_a_long_list_of_clashing_rows_is_cut_after_five(workbook: Workbook) -> None:
    result = judge(workbook(customers(*(customer(9, Age=20 + i) for i in range(7)))))

    assert set(result.errors["message"]) == {"Customer ID 9 is used by rows 2, 3, 4, 5, 6 and 2 more with different values"}


def test_a_unique_column_clash_rejects_every_row_holding_the_value(workbook: Workbook) -> None:
    rows = customers(customer(1, Phone_Number="9876543210"), customer(2, Phone_Number="+91 98765 43210"), customer(3))
    result = judge(workbook(rows))

    message = "Phone Number 9876543210 is used by rows 2 and 3 with different values"
    assert result.errors.rows() == [(r, "Phone Number", "phone_number|unique", message, "9876543210") for r in (2, 3)]
    assert result.accepted[ROW].to_list() == [4]


def test_a_row_failing_a_rule_does_not_make_a_valid_row_with_its_phone_number_a_conflict(workbook: Workbook) -> None:
    phone = "9876543210"
    rows = customers(
        customer(1, Phone_Number=phone),
        customer(2, Phone_Number="98765-43210", Age=12),  # the same number, once normalised
        customer(3, Phone_Number=phone, Monthly_Salary=None),
    )
    result = judge(workbook(rows))

    assert result.accepted.select(ROW, "phone_number").rows() == [(2, phone)]
    assert reasons_by_row(result) == {3: ["Age: '12' is less than the minimum 18"], 4: ["Missing Monthly Salary"]}
    assert "phone_number|unique" not in result.errors["rule"].to_list()


def test_a_duplicate_of_a_row_rejected_for_a_unique_clash_is_rejected_too(workbook: Workbook) -> None:
    phone = "9876543210"
    rows = customers(customer(1, Phone_Number=phone), customer(2, Phone_Number=phone), customer(1, Phone_Number=phone))
    result = judge(workbook(rows))

    assert result.accepted.is_empty()
    assert result.duplicates.is_empty()
    assert sorted(reasons_by_row(result)) == [2, 3, 4]
    assert result.errors.filter(pl.col("row") == 4)["rule"].to_list() == ["phone_number|unique"]


# --- invariants over random sheets, on small frames -------------------------------------------


def mapped_customers(rows: list[dict[str, str | None]]) -> MappedSheet:
    spec = SPECS["customers"]
    names = [c.name for c in spec.columns if c.header in CUSTOMER_HEADERS]
    raw = pl.DataFrame(
        {ROW: list(range(2, len(rows) + 2)), **{n: [r[n] for r in rows] for n in names}},
        schema={ROW: pl.Int64, **dict.fromkeys(names, pl.String)},
    )
    return MappedSheet(
        spec=spec,
        header_row=1,
        headers={c.name: c.header for c in spec.columns if c.name in names},
        raw=raw,
        cell_errors=pl.DataFrame(schema={ROW: pl.Int64, "column": pl.String, "error": pl.String}),
        unmapped_columns=[],
        blank_rows=0,
    )


_ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "customer_id": st.sampled_from(["1", "1.0", " 2", "3", "x", None]),
            "first_name": st.sampled_from(["Asha", "Ravi", None]),
            "last_name": st.just("Rao"),
            "age": st.sampled_from(["34", "34.0", "17", None]),
            "phone_number": st.sampled_from(["9876543210", "98765 43210", "9876500001", "12"]),
            "monthly_salary": st.sampled_from(["50000", "-1"]),
            "approved_limit": st.just("1800000"),
        }
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(_ROWS)
def test_every_row_is_accepted_a_duplicate_or_rejected_and_accepted_keys_are_unique(rows: list[dict[str, str | None]]) -> None:
    result = validate(mapped_customers(rows))

    accepted, duplicates, rejected = (set(f[ROW]) for f in (result.accepted, result.duplicates, result.rejected))
    assert accepted | duplicates | rejected == set(range(2, len(rows) + 2))
    assert len(accepted) + len(duplicates) + len(rejected) == len(rows)
    assert result.accepted["customer_id"].is_unique().all()
    assert result.accepted["phone_number"].is_unique().all()
    assert set(result.errors["row"]) == rejected
    assert set(result.duplicates["__first_row"]) <= accepted
    typed = result.accepted.drop(ROW)
    for row, first in result.duplicates.iter_rows():
        again = validate(mapped_customers([rows[row - 2]])).accepted.drop(ROW)
        assert again.equals(typed.filter(pl.col("customer_id") == again["customer_id"][0])), (row, first)
