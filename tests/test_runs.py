from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

import toolkit
from tests.conftest import CUSTOMER_HEADERS, LOAN_HEADERS, customer, loan
from toolkit.errors import WarehouseBusyError, WarehouseError
from toolkit.runs import RejectedRow, connect_read_only, from_summary, read_run, read_runs, select_runs

Workbook = Callable[..., Path]


def ticking(start: datetime = datetime(2024, 5, 1, 9, 0)) -> Callable[[], datetime]:
    """A clock that advances 1.5 s per reading."""
    counter = itertools.count()
    return lambda: start + timedelta(seconds=1.5 * next(counter))


@pytest.fixture
def loaded(workbook: Workbook, db: Path) -> toolkit.IngestSummary:
    """Customers with defects of every kind the report shows: cell, row-level conflict, unmapped column."""
    rows = [
        [*CUSTOMER_HEADERS, "Notes"],
        [*customer(1), "ok"],
        [*customer(2, Age="abc", Monthly_Salary=None), "two reasons"],
        [*customer(3, Phone_Number="123"), None],
        [*customer(4, First_Name="Ann"), None],
        [*customer(4, First_Name="Bob"), None],
    ]
    return toolkit.ingest(workbook(rows, name="customers.xlsx"), db=db, clock=ticking(), run_id="run-1")


def test_a_run_read_back_from_the_warehouse_is_the_run_as_it_finished(loaded: toolkit.IngestSummary, db: Path) -> None:
    with connect_read_only(db) as con:
        assert read_run(con, "run-1") == from_summary(loaded)


def test_report_data_holds_counts_failures_and_rejected_rows_with_their_cells(loaded: toolkit.IngestSummary) -> None:
    report = from_summary(loaded)
    assert (report.total, report.success, report.failed, report.inserted) == (5, 1, 4, 1)
    assert report.seconds == 1.5
    assert all(ok for _, ok in report.invariants)
    assert report.headers == tuple(CUSTOMER_HEADERS)
    assert report.unmapped_columns == ("Notes",)
    assert report.failures_by_column == {"Customer ID": 2, "Age": 1, "Monthly Salary": 1, "Phone Number": 1}
    assert report.rejected_total == 4
    second = report.rejected[0]
    assert second.row == 3
    assert second.cells["Age"] == "abc" and second.cells["Monthly Salary"] is None
    assert set(second.failing(report.rule_cells)) == {"Age", "Monthly Salary"}


@pytest.mark.parametrize(("limit", "shown"), [(None, 4), (10, 4), (2, 2), (0, 0)])
def test_limit_cuts_the_rows_shown_not_the_count(loaded: toolkit.IngestSummary, db: Path, limit: int | None, shown: int) -> None:
    with connect_read_only(db) as con:
        from_warehouse = read_run(con, "run-1", limit=limit)
    for report in (from_summary(loaded, limit=limit), from_warehouse):
        assert len(report.rejected) == shown
        assert report.rejected_total == 4


def test_headers_are_recorded_in_the_files_column_order(workbook: Workbook, db: Path) -> None:
    order = [6, 0, 3, 1, 5, 2, 4]
    headers = [CUSTOMER_HEADERS[i] for i in order]
    headers[0] = "APPROVED_LIMIT"  # as found, not the spec's spelling
    rows = [headers, [customer(1, Age="x")[i] for i in order]]
    toolkit.ingest(workbook(rows), db=db, run_id="shuffled")
    with connect_read_only(db) as con:
        report = read_run(con, "shuffled")
    assert report.headers == tuple(headers)
    assert list(report.rejected[0].cells) == headers


def test_a_warehouse_from_before_headers_were_recorded_gets_the_column_and_still_reports(workbook: Workbook, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1, Age="x")]), db=db, run_id="old")
    with duckdb.connect(str(db)) as con:
        con.execute("ALTER TABLE _runs DROP COLUMN headers").fetchall()
    with connect_read_only(db) as con:
        assert read_run(con, "old").headers == tuple(CUSTOMER_HEADERS)  # from the raw cells
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(2, Age="y")]), db=db, run_id="new")
    with connect_read_only(db) as con:
        assert [r.headers for r in (read_run(con, "old"), read_run(con, "new"))] == [tuple(CUSTOMER_HEADERS)] * 2


def test_runs_are_selected_by_id_or_most_recent_oldest_first(workbook: Workbook, db: Path) -> None:
    for i, run_id in enumerate(["b", "a", "c"]):
        clock = ticking(datetime(2024, 1, 1 + i))
        toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(i + 1)]), db=db, run_id=run_id, clock=clock)
    with connect_read_only(db) as con:
        assert select_runs(con) == ["c"]
        assert select_runs(con, last=2) == ["a", "c"]
        assert select_runs(con, last=10) == ["b", "a", "c"]
        assert select_runs(con, run_ids=["c", "b"]) == ["b", "c"]
        with pytest.raises(WarehouseError, match="no run 'x', 'y' in _runs"):
            select_runs(con, run_ids=["a", "x", "y"])


def test_an_unfinished_run_has_no_counts_and_no_invariants(workbook: Workbook, db: Path) -> None:
    toolkit.ingest(workbook([LOAN_HEADERS, loan(1, 1)]), db=db, run_id="cut")
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE _runs SET status = 'interrupted', total = NULL, success = NULL, finished_at = NULL").fetchall()
    (report,) = read_runs(db, run_ids=["cut"])
    assert (report.status, report.total, report.seconds, report.invariants) == ("interrupted", None, None, [])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such warehouse"),
        (lambda p: p.write_text("not a database"), "cannot open the warehouse"),
        (lambda p: duckdb.connect(str(p)).close(), "not a toolkit warehouse"),
    ],
)
def test_an_unusable_warehouse_is_one_clear_error(db: Path, make: Callable[[Path], object], message: str) -> None:
    make(db)
    with pytest.raises(WarehouseError, match=message):
        read_runs(db)


def test_a_warehouse_another_process_is_writing_is_busy(loaded: toolkit.IngestSummary, db: Path) -> None:
    hold = "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseBusyError, match="warehouse is in use by another process"):
            read_runs(db)
    finally:
        holder.kill()
        holder.communicate()


def test_a_missing_run_names_the_warehouse(loaded: toolkit.IngestSummary, db: Path) -> None:
    with pytest.raises(WarehouseError, match=r"warehouse\.duckdb: no run 'nope' in _runs"):
        read_runs(db, run_ids=["nope"])


def test_failing_lists_only_errors_that_name_a_cell_of_the_row() -> None:
    row = RejectedRow(
        7,
        {"A": "1", "B": None},
        (
            {"column": "A", "rule": "a|min", "message": "too small", "value": "1"},
            {"column": None, "rule": "a_before_b", "message": "A after B", "value": None},
            {"column": "A", "rule": "a|key", "message": "shared", "value": "1"},
        ),
    )
    assert row.failing({}) == {"A": ["too small", "shared"]}
    assert row.reasons == ["too small", "A after B", "shared"]


def test_a_failure_naming_no_cell_marks_the_cells_its_rule_is_about() -> None:
    row = RejectedRow(
        7,
        {"A": "1", "B": None, "C": "x"},
        (
            {"column": "A", "rule": "a|min", "message": "too small", "value": "1"},
            {"column": None, "rule": "a_before_b", "message": "A after B", "value": None},
            {"column": None, "rule": "unknown_rule", "message": "something", "value": None},
        ),
    )
    # a failure naming a cell marks that cell only; one naming none marks its rule's cells
    assert row.failing({"a_before_b": ("A", "B"), "a|min": ("C",)}) == {"A": ["too small", "A after B"], "B": ["A after B"]}


def test_rule_cells_come_from_the_spec_whichever_way_the_report_is_made(workbook: Workbook, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    headers = ["END DATE", *[h for h in LOAN_HEADERS if h != "End Date"]]  # spelled and ordered as found
    values = dict(zip(LOAN_HEADERS, loan(1, 10, **{"End Date": datetime(2019, 1, 1)}), strict=True))
    summary = toolkit.ingest(workbook([headers, [values["End Date" if h == "END DATE" else h] for h in headers]]), db=db)
    with connect_read_only(db) as con:
        reports = [from_summary(summary), read_run(con, summary.run_id)]
    # A summary knows the headers as found only of columns whose own checks failed (see README).
    for report, end_date in zip(reports, ["End Date", "END DATE"], strict=True):
        (row,) = report.rejected
        assert report.rule_cells == {"end_after_start": (end_date, "Date of Approval")}
        assert set(row.failing(report.rule_cells)) == {end_date, "Date of Approval"} <= set(report.headers)


def test_a_run_recorded_before_update_mode_counts_no_updates(loaded: toolkit.IngestSummary, db: Path) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE _runs SET updated = NULL").fetchall()
        con.execute("DROP TABLE _changes").fetchall()
    (report,) = read_runs(db, run_ids=["run-1"])
    assert (report.updated, report.updates, report.updates_total) == (0, (), 0)
    assert [ok for _, ok in report.invariants] == [True, True]
