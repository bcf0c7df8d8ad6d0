"""toolkit.summary: the frozen run summary, its keys, invariants and renderings."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import toolkit
from tests.conftest import CUSTOMER_HEADERS, DATA, customer, write_workbook
from toolkit.summary import CONTRACT_KEYS, IngestSummary

ERRORS = (
    {"row": 3, "column": "Age", "rule": "age|integer", "message": "Age: 'abc' is not a whole number", "value": "abc"},
    {"row": 3, "column": "Monthly Salary", "rule": "monthly_salary|required", "message": "Missing Monthly Salary", "value": None},
    {"row": 5, "column": "Monthly Salary", "rule": "monthly_salary|required", "message": "Missing Monthly Salary", "value": None},
    {
        "row": 7,
        "column": None,
        "rule": "customer_id|conflict",
        "message": "Customer ID 2 is already in customers ...",
        "value": None,
    },
)


def make(**overrides: Any) -> IngestSummary:
    fields: dict[str, Any] = {
        "run_id": "r1",
        "file": "customer_data.xlsx",
        "sheet": "Sheet1",
        "table": "customers",
        "total": 10,
        "success": 7,
        "inserted": 4,
        "skipped": 2,
        "duplicates": 1,
        "failed": 3,
        "errors": ERRORS,
        "unmapped_columns": ("Branch",),
        "warnings": ("optional column(s) not in the file, left empty: Current Debt",),
        "started_at": datetime(2024, 5, 1, 9, 0, 0),
        "finished_at": datetime(2024, 5, 1, 9, 0, 2, 500000),
        "file_sha256": "ab" * 32,
        "toolkit_version": "0.1.0",
    }
    fields.update(overrides)
    return IngestSummary(**fields)


def test_to_dict_has_every_contract_key_in_contract_order() -> None:
    keys = list(make().to_dict())
    assert [k for k in keys if k in CONTRACT_KEYS] == list(CONTRACT_KEYS)


def test_contract_keys_are_the_documented_ones() -> None:
    assert CONTRACT_KEYS == (
        "run_id",
        "file",
        "sheet",
        "table",
        "total",
        "success",
        "failed",
        "inserted",
        "skipped",
        "duplicates",
        "errors",
        "unmapped_columns",
    )


def test_to_dict_carries_the_extra_documented_keys() -> None:
    extra = {
        "warnings",
        "failures_by_rule",
        "failures_by_column",
        "status",
        "file_sha256",
        "header_row",
        "batch_size",
        "started_at",
        "finished_at",
        "seconds",
        "toolkit_version",
    }
    assert extra <= set(make().to_dict())


def test_to_dict_values_are_plain_json_data() -> None:
    data = make().to_dict()
    assert json.loads(json.dumps(data)) == data
    assert (data["total"], data["success"], data["failed"]) == (10, 7, 3)
    assert (data["inserted"], data["skipped"], data["duplicates"]) == (4, 2, 1)
    assert data["errors"] == [dict(e) for e in ERRORS]
    assert data["unmapped_columns"] == ["Branch"]
    assert (data["started_at"], data["finished_at"], data["seconds"]) == (
        "2024-05-01T09:00:00",
        "2024-05-01T09:00:02.500000",
        2.5,
    )


def test_each_error_has_the_documented_keys() -> None:
    for error in make().to_dict()["errors"]:
        assert list(error) == ["row", "column", "rule", "message", "value"]


def test_success_is_a_field_of_its_own_that_must_match_inserted_skipped_duplicates_and_updated() -> None:
    summary = make()
    assert summary.success == summary.inserted + summary.skipped + summary.duplicates == 7
    assert summary.total == summary.success + summary.failed
    assert make(success=8, inserted=4, skipped=2, duplicates=1, updated=1, total=11).success == 8


@pytest.mark.parametrize(("total", "failed"), [(11, 3), (10, 4), (0, 0)])
def test_counts_that_do_not_add_up_are_refused(total: int, failed: int) -> None:
    with pytest.raises(AssertionError, match=r"row accounting broken: total \d+ != success 7 \+ failed"):
        make(total=total, failed=failed)


@pytest.mark.parametrize(
    "counts",
    [
        {"inserted": 5},  # a row counted inserted that the rows do not account for
        {"skipped": 1},
        {"duplicates": 0},
        {"updated": 1},
        {"success": 6, "total": 9},  # the first invariant holds, the second does not
    ],
)
def test_a_success_count_that_is_not_inserted_skipped_duplicates_and_updated_is_refused(counts: dict[str, int]) -> None:
    with pytest.raises(AssertionError, match=r"row accounting broken: success \d+ != inserted \d+ \+ skipped"):
        make(**counts)


@given(*(st.integers(0, 5) for _ in range(7)))
def test_a_summary_is_built_exactly_when_both_invariants_hold(
    total: int, success: int, failed: int, inserted: int, skipped: int, duplicates: int, updated: int
) -> None:
    counts = {"inserted": inserted, "skipped": skipped, "duplicates": duplicates, "updated": updated}
    fields = {"total": total, "success": success, "failed": failed, **counts}
    if total == success + failed and success == sum(counts.values()):
        assert make(**fields).to_dict()["success"] == success
    else:
        with pytest.raises(AssertionError, match="row accounting broken"):
            make(**fields)


def test_failures_are_counted_by_rule_and_by_column_most_common_first() -> None:
    summary = make()
    assert summary.failures_by_rule == {"monthly_salary|required": 2, "age|integer": 1, "customer_id|conflict": 1}
    assert summary.failures_by_column == {"Monthly Salary": 2, "Age": 1, "(row)": 1}
    assert list(summary.failures_by_rule) == ["monthly_salary|required", "age|integer", "customer_id|conflict"]
    assert summary.to_dict()["failures_by_rule"] == summary.failures_by_rule


def test_failed_rows_are_the_distinct_rows_with_an_error() -> None:
    assert make().failed_rows == [3, 5, 7]


def test_seconds_is_none_without_both_timestamps() -> None:
    assert make(finished_at=None).seconds is None
    assert make(started_at=None).to_dict()["started_at"] is None


def test_repr_is_terse_and_pinned() -> None:
    assert repr(make()) == (
        "<IngestSummary customer_data.xlsx -> customers: 10 rows, 4 inserted, 2 skipped, 1 duplicates, 3 failed>"
    )


def test_the_summary_is_frozen() -> None:
    summary = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.total = 0  # type: ignore[misc]


def test_text_names_the_counts_ignored_columns_warnings_and_top_rules() -> None:
    text = make().text()
    assert text.splitlines()[0] == "customer_data.xlsx [Sheet1] -> customers (completed)"
    assert "10 rows: 7 ok (4 inserted, 2 already present, 1 duplicates in file), 3 rejected" in text
    assert "ignored columns: Branch" in text
    assert "warning: optional column(s) not in the file, left empty: Current Debt" in text
    assert "2 x monthly_salary|required" in text


def test_html_escapes_every_user_value(tmp_path: Any) -> None:
    hostile = make(file="<script>alert(1)</script>.xlsx", errors=(), failed=0, total=7)
    page = hostile.to_html(str(tmp_path / "run.html"))
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
    assert (tmp_path / "run.html").read_text(encoding="utf-8") == page
    assert "<script>alert(1)</script>" not in hostile._repr_html_()


def test_a_summary_travels_as_its_dict(tmp_path: Path) -> None:
    summary = toolkit.ingest(DATA / "loan_data.xlsx", db=tmp_path / "w.duckdb")
    back = IngestSummary.from_dict(json.loads(json.dumps(summary.to_dict())))
    assert back.to_dict() == summary.to_dict()
    assert back.text() == summary.text()


def test_from_dict_rebuilds_the_rejected_rows_from_the_errors(tmp_path: Path) -> None:
    book = write_workbook(tmp_path / "c.xlsx", [CUSTOMER_HEADERS, customer(1), customer(2, Age="abc", First_Name=None)])
    full = toolkit.ingest(book, db=tmp_path / "w.duckdb")

    rebuilt = IngestSummary.from_dict(full.to_dict()).rejected

    assert rebuilt.rows(named=True) == [
        {"__row": 3, "Age": "abc", "First Name": None, "reasons": [e["message"] for e in full.errors]}
    ]
