"""toolkit.ingest: read -> validate -> load orchestration, several files, progress, cancel, preview."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import logging
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import xlsxwriter
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import toolkit
from tests.conftest import (
    CUSTOMER_HEADERS,
    HOSTILE,
    LOAN_HEADERS,
    NOTES_SPEC,
    ODDFILES,
    customer,
    loan,
    query,
    warehouse_held,
    warehouse_rows,
    write_hostile,
    write_workbook,
)
from toolkit import read
from toolkit.errors import HeaderError, UnreadableFileError, WarehouseBusyError
from toolkit.load import LoadOutcome, Progress, Warehouse
from toolkit.specs import load_specs, parse_spec

Book = Callable[..., Path]
ingest_module = importlib.import_module("toolkit.ingest")  # toolkit.ingest is also the function
MIB = 1024 * 1024
COUNTS = ("total", "success", "failed", "inserted", "skipped", "duplicates")


def counts(summary: toolkit.IngestSummary | toolkit.ToolkitError) -> dict[str, int]:
    assert isinstance(summary, toolkit.IngestSummary), summary
    return {k: summary.to_dict()[k] for k in COUNTS}


def assert_invariants(summary: toolkit.IngestSummary) -> None:
    assert summary.total == summary.success + summary.failed
    assert summary.success == summary.inserted + summary.skipped + summary.duplicates + summary.updated


def phone(cid: int) -> str:
    return customer(cid)[CUSTOMER_HEADERS.index("Phone Number")]


# --- several files in one command -------------------------------------------------------------


def test_customers_given_after_loans_still_load_first_so_their_loans_are_inserted(workbook: Book, db: Path) -> None:
    loans = workbook([LOAN_HEADERS, loan(1, 100), loan(2, 200)], name="loans.xlsx")
    customers = workbook([CUSTOMER_HEADERS, customer(1), customer(2)], name="customers.xlsx")

    outcomes = toolkit.ingest_many([loans, customers], db=db)

    assert [(o.table, o.file) for o in outcomes if isinstance(o, toolkit.IngestSummary)] == [
        ("customers", str(customers)),
        ("loans", str(loans)),
    ]
    assert [counts(o)["inserted"] for o in outcomes] == [2, 2]
    assert query(db, "SELECT table_name FROM _runs ORDER BY started_at") == [("customers",), ("loans",)]


@pytest.mark.parametrize(("days", "shown"), [(2.0, "48:00:00"), (1.5, "36:00:00")])
def test_a_duration_cell_in_a_date_column_is_rejected_never_taken_for_a_day_of_1900(
    workbook: Book, db: Path, tmp_path: Path, days: float, shown: str
) -> None:
    # Read as text (the column mixes dates and a duration), 48 hours once came out as 1900-01-02.
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    path = tmp_path / "loans.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, LOAN_HEADERS)
    for row, values in enumerate([loan(1, 100), loan(1, 101)], start=1):
        for column, value in enumerate(values):
            if isinstance(value, date):
                sheet.write_datetime(row, column, datetime.combine(value, datetime.min.time()), day)
            else:
                sheet.write(row, column, value)
    sheet.write_number(2, LOAN_HEADERS.index("Date of Approval"), days, book.add_format({"num_format": "[h]:mm:ss"}))
    book.close()

    summary = toolkit.ingest(path, db=db)

    assert (summary.inserted, summary.failed) == (1, 1)
    assert [e["message"] for e in summary.errors] == [
        f"Date of Approval: '{shown}' is not a date (expected a date cell or YYYY-MM-DD text)"
    ]


def test_prepare_hashes_the_file_unless_given_its_hash(workbook: Book, monkeypatch: pytest.MonkeyPatch) -> None:
    book = workbook([CUSTOMER_HEADERS, customer(1)])
    assert toolkit.prepare(book).sha256 == hashlib.sha256(book.read_bytes()).hexdigest()

    def hashing(path: Path) -> str:
        raise AssertionError("hashed again: the caller gave the hash")

    monkeypatch.setattr(ingest_module, "file_sha256", hashing)
    assert toolkit.prepare(book, sha256="given").sha256 == "given"


def test_a_loan_of_a_customer_rejected_earlier_in_the_same_command_is_rejected(workbook: Book, db: Path) -> None:
    loans = workbook([LOAN_HEADERS, loan(1, 100), loan(2, 200)])
    customers = workbook([CUSTOMER_HEADERS, customer(1), customer(2, Monthly_Salary=None)])

    customer_run, loan_run = toolkit.ingest_many([loans, customers], db=db)

    assert counts(customer_run)["failed"] == 1
    assert isinstance(loan_run, toolkit.IngestSummary)
    assert counts(loan_run) == {"total": 2, "success": 1, "failed": 1, "inserted": 1, "skipped": 0, "duplicates": 0}
    assert [(e["row"], e["rule"]) for e in loan_run.errors] == [(3, "customer_id|foreign_key")]


def test_a_bad_file_among_several_yields_its_error_in_place_and_the_others_still_load(workbook: Book, db: Path) -> None:
    customers = workbook([CUSTOMER_HEADERS, customer(1)])
    broken = workbook([["Customer ID", "Shoe Size"], [1, 42]], name="broken.xlsx")
    missing = Path(workbook([CUSTOMER_HEADERS]).parent / "nowhere.xlsx")
    loans = workbook([LOAN_HEADERS, loan(1, 100)])

    outcomes = toolkit.ingest_many([loans, broken, customers, missing], db=db)

    kinds = [type(o) for o in outcomes]
    assert kinds.count(toolkit.IngestSummary) == 2
    errors = [o for o in outcomes if isinstance(o, toolkit.ToolkitError)]
    assert [type(e) for e in errors] == [HeaderError, UnreadableFileError]
    assert "broken.xlsx" in str(errors[0]) and "nowhere.xlsx" in str(errors[1])
    # nothing written for the bad files: only the two good runs are recorded
    assert sorted(query(db, "SELECT file FROM _runs")) == sorted([(str(customers),), (str(loans),)])
    assert query(db, "SELECT count(*) FROM loans") == [(1,)]


def _warehouse_contents(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    tables = {
        "customers": "SELECT * EXCLUDE (_run_id) FROM customers ORDER BY customer_id",
        "loans": "SELECT * EXCLUDE (_run_id) FROM loans ORDER BY customer_id, loan_id",
        "_rejects": "SELECT table_name, source_row, stage, reasons FROM _rejects ORDER BY ALL",
        "_runs": "SELECT file, table_name, total, success, failed, inserted, skipped, duplicates FROM _runs ORDER BY started_at",
    }
    return {name: query(db, text) for name, text in tables.items()}


def test_workers_give_the_same_results_in_the_same_order_and_the_same_warehouse(workbook: Book, tmp_path: Path) -> None:
    # Loans first, two customer files sharing a key with different values, and a bad file:
    # the order of loading decides who wins, so it must not depend on which worker is faster.
    loans = workbook([LOAN_HEADERS, loan(1, 100), loan(2, 101), loan(3, 102)], name="loans.xlsx")
    first = workbook([CUSTOMER_HEADERS, customer(1), customer(2)], name="first.xlsx")
    broken = workbook([["Shoe Size"], [42]], name="broken.xlsx")
    second = workbook([CUSTOMER_HEADERS, customer(2, First_Name="Other"), customer(3)], name="second.xlsx")
    files = [loans, first, broken, second]

    results = {n: toolkit.ingest_many(files, db=tmp_path / f"w{n}.duckdb", workers=n) for n in (1, 2)}

    def shown(outcome: toolkit.IngestSummary | toolkit.ToolkitError) -> object:
        if isinstance(outcome, toolkit.IngestSummary):
            return (outcome.file, outcome.table, outcome.inserted, outcome.failed)
        return str(outcome)

    assert [shown(o) for o in results[1]] == [shown(o) for o in results[2]]
    assert [o.table for o in results[2] if isinstance(o, toolkit.IngestSummary)] == ["customers", "customers", "loans"]
    assert _warehouse_contents(tmp_path / "w1.duckdb") == _warehouse_contents(tmp_path / "w2.duckdb")


@pytest.mark.parametrize(("workers", "processes"), [(1, 2), (2, 1)], ids=["read here: two", "read by workers: one each"])
def test_worker_processes_read_a_large_sheet_on_one_core_and_a_lone_reader_on_two(
    workbook: Book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int, processes: int
) -> None:
    seen: list[int] = []
    prepare = ingest_module.prepare

    def spy(path: Path, **options: Any) -> Any:
        seen.append(options["read_processes"])
        return prepare(path, **options)

    class PoolHere:  # runs the workers' jobs in this process, where the spy sees them
        def __init__(self, size: int, function: Callable[..., object]) -> None:
            self.function = function

        def __enter__(self) -> PoolHere:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def run(self, jobs: list[tuple[str, tuple[object, ...]]]) -> Iterator[tuple[int, object]]:
            for index, (_, args) in enumerate(jobs):
                yield index, self.function(*args)

    monkeypatch.setattr(ingest_module, "prepare", spy)
    monkeypatch.setattr(ingest_module, "Pool", PoolHere)
    files = [workbook([CUSTOMER_HEADERS, customer(n)], name=f"c{n}.xlsx") for n in (1, 2)]

    toolkit.ingest_many(files, db=tmp_path / "w.duckdb", workers=workers)

    assert seen == [processes, processes]


@pytest.mark.parametrize(
    ("index", "known", "done", "expected"),
    [
        (0, {0: "customers", 1: "customers"}, set(), True),  # first of the first table
        (1, {0: "customers", 1: "customers"}, set(), False),  # waits for the one given before it
        (1, {0: "customers", 1: "customers"}, {0}, True),
        (0, {0: "loans", 1: "customers"}, set(), False),  # children wait for every parent
        (0, {0: "loans", 1: "customers"}, {1}, True),
        (0, {0: "customers"}, set(), True),  # a file not read yet, given later, cannot be a parent of customers
        (1, {1: "customers"}, set(), False),  # ... but one given earlier may be a customers file
        (0, {0: "loans"}, set(), False),  # ... and any file not read yet may be a parent of loans
    ],
)
def test_a_file_loads_only_when_nothing_that_goes_before_it_is_left(
    index: int, known: dict[int, str], done: set[int], expected: bool
) -> None:
    from toolkit.ingest import _LoadOrder

    order = _LoadOrder(2, {"customers": 0, "loans": 1}, known)
    for finished in done:
        order.done(finished)

    assert (order.first() == index) is expected


def _may_load_by_rescanning(index: int, known: dict[int, str], done: set[int], rank: dict[str, int], count: int) -> bool:
    """The rule _LoadOrder keeps, checked the slow way: nothing left goes before ``index``."""
    mine = (rank[known[index]], index)
    for other in range(count):
        if other == index or other in done:
            continue
        if other in known:
            if (rank[known[other]], other) < mine:
                return False
        elif other < index or mine[0] > 0:
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(
    files=st.lists(st.tuples(st.sampled_from(["customers", "loans", "notes"]), st.booleans(), st.booleans()), max_size=9),
    arrival=st.randoms(use_true_random=False),
)
def test_files_load_in_the_order_the_rule_gives_whatever_order_they_are_read_in(
    files: list[tuple[str, bool, bool]], arrival: random.Random
) -> None:
    # Each file: (its table, known ahead from its header?, fails to read?); read in a random order.
    from toolkit.ingest import _LoadOrder

    rank = {"customers": 0, "loans": 1, "notes": 2}
    ahead = {i: table for i, (table, early, _) in enumerate(files) if early}
    reads = list(range(len(files)))
    arrival.shuffle(reads)
    order = _LoadOrder(len(files), rank, ahead)
    known, done, prepared, expected = dict(ahead), set(), set(), []
    waiting: set[int] = set()  # read, not loaded yet, as _LoadOrder's user sees them
    found: list[int] = []
    for index in reads:
        table, _, fails = files[index]
        if fails:
            done.add(index)
            order.done(index)
        else:
            prepared.add(index)
            known[index] = table
            waiting.add(index)
            order.learn(index, table)
        while ready := [i for i in prepared if _may_load_by_rescanning(i, known, done, rank, len(files))]:
            chosen = min(ready, key=lambda i: (rank[known[i]], i))
            prepared.remove(chosen)
            done.add(chosen)
            expected.append(chosen)
        while (first := order.first()) is not None and first in waiting:
            waiting.remove(first)
            order.done(first)
            found.append(first)

    assert found == expected
    assert order.first() is None


def test_a_file_is_identified_ahead_only_from_an_xlsx_header_never_by_reading_a_whole_sheet(
    workbook: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    def whole_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("a whole sheet was read to identify the file")

    xlsx = workbook([CUSTOMER_HEADERS, customer(1)])
    other = workbook([CUSTOMER_HEADERS, customer(1)], name="book.xlsb")  # any format without the quick header read
    monkeypatch.setattr(read, "_read_text", whole_read)  # how open_sheet reads a whole sheet
    options = ingest_module._Options(None, None, None, None)

    assert ingest_module._identify(xlsx, options) == "customers"
    assert ingest_module._identify(other, options) is None


def test_files_are_read_in_the_order_they_load_so_children_do_not_wait_in_memory_for_a_parent_given_last(
    workbook: Book, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_in: list[str] = []
    prepare_or_error = ingest_module._prepare_or_error

    def recording(path: Path, options: object) -> object:
        read_in.append(path.name)
        return prepare_or_error(path, options)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest_module, "_prepare_or_error", recording)
    unknown = db.parent / "b-unknown.xlsx"
    unknown.write_bytes(b"not a workbook")  # its table cannot be told ahead: it may be a parent
    books = [
        workbook([LOAN_HEADERS, loan(1, 100)], name="a-loans.xlsx"),
        unknown,
        workbook([LOAN_HEADERS, loan(1, 101)], name="c-loans.xlsx"),
        workbook([CUSTOMER_HEADERS, customer(1)], name="d-customers.xlsx"),
    ]

    results = toolkit.ingest_many(books, db=db, workers=1)

    assert read_in == ["b-unknown.xlsx", "d-customers.xlsx", "a-loans.xlsx", "c-loans.xlsx"]
    assert [(Path(r.file).name, r.inserted) for r in results if isinstance(r, toolkit.IngestSummary)] == [
        ("d-customers.xlsx", 1),
        ("a-loans.xlsx", 1),
        ("c-loans.xlsx", 1),
    ]


@pytest.mark.parametrize(
    ("workers", "sizes", "cpus", "expected"),
    [
        (None, [1000, 1000], 8, 1),  # under PARALLEL_FROM_BYTES in all: no worker processes
        (None, [3 * MIB, 1 * MIB], 8, 2),  # from PARALLEL_FROM_BYTES: one per file ...
        (None, [2 * MIB] * 6, 4, 4),  # ... at most one per core
        (None, [5 * MIB, 5 * MIB], None, 1),  # a CPU count Python cannot tell counts as one
        (3, [1000, 1000], 8, 2),  # asked for: at most one per file, whatever their size
        (3, [], 8, 1),
    ],
)
def test_the_default_worker_count_follows_the_size_of_the_files_and_the_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int | None, sizes: list[int], cpus: int | None, expected: int
) -> None:
    files = []
    for n, size in enumerate(sizes):
        files.append(tmp_path / f"f{n}.xlsx")
        files[-1].write_bytes(bytes(size))
    monkeypatch.setattr(ingest_module.os, "cpu_count", lambda: cpus)

    assert ingest_module._worker_count(workers, files) == expected


def test_a_structural_error_raises_before_the_warehouse_is_created(workbook: Book, db: Path) -> None:
    with pytest.raises(HeaderError, match="no table spec matches the headers"):
        toolkit.ingest(workbook([["Shoe Size"], [42]]), db=db)
    assert not db.exists()


# --- every format fastexcel reads ----------------------------------------------------------------


def test_a_macro_enabled_xlsm_workbook_ingests(tmp_path: Path, db: Path) -> None:
    path = tmp_path / "customers.xlsm"
    vba = tmp_path / "vbaProject.bin"
    vba.write_bytes(b"placeholder macros: the reader loads sheets without running or parsing them")
    book = xlsxwriter.Workbook(str(path))
    book.add_vba_project(str(vba))  # a real .xlsm part list and macro-enabled content type
    sheet = book.add_worksheet()
    for r, row in enumerate([CUSTOMER_HEADERS, customer(1), customer(2, Age="abc")]):
        sheet.write_row(r, 0, row)
    book.close()

    summary = toolkit.ingest(path, db=db)

    assert counts(summary) == {"total": 2, "success": 1, "failed": 1, "inserted": 1, "skipped": 0, "duplicates": 0}
    assert [(e["row"], e["rule"]) for e in summary.errors] == [(3, "age|integer")]


PAIRS = parse_spec(
    {
        "table": "pairs",
        "key": ["left"],
        "columns": [
            {"name": "left", "header": "1", "type": "integer", "required": True},
            {"name": "right", "header": "2", "type": "integer"},
        ],
    },
    source="test",
)


@pytest.mark.parametrize("suffix", ["xls", "xlsb", "ods", "xlsx"])
def test_xls_xlsb_and_ods_workbooks_of_the_corpus_ingest_like_xlsx(suffix: str, db: Path) -> None:
    # Sheet 'Visible' holds a 1|2 header, rows 3|4 and 5|6, a blank row and a note; hidden sheets follow.
    path = ODDFILES / f"python-calamine__any_sheets.{suffix}"
    if not path.exists():
        pytest.skip(f"corpus file {path} is not available (../shared/data/oddfiles)")

    summary = toolkit.ingest(path, db=db, specs={"pairs": PAIRS})

    assert (summary.sheet, summary.table) == ("Visible", "pairs")
    assert counts(summary) == {"total": 3, "success": 2, "failed": 1, "inserted": 2, "skipped": 0, "duplicates": 0}
    assert warehouse_rows(db, "pairs") == [(3, 4, 2), (5, 6, 3)]  # values, then the Excel row
    assert [(e["row"], e["column"], e["rule"]) for e in summary.errors] == [(5, "1", "left|integer")]


# --- every run ---------------------------------------------------------------------------------


def test_a_header_only_sheet_gives_total_zero_with_a_warning_and_a_completed_run(workbook: Book, db: Path) -> None:
    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS]), db=db)
    assert counts(summary) == dict.fromkeys(COUNTS, 0)
    assert "the sheet has a header row but no data rows" in summary.warnings
    assert query(db, "SELECT status, total FROM _runs") == [("completed", 0)]


@pytest.mark.parametrize("count", ["inserted", "skipped"])
def test_a_loader_that_miscounts_breaks_the_second_invariant_and_the_run_is_refused(
    workbook: Book, db: Path, monkeypatch: pytest.MonkeyPatch, count: str
) -> None:
    # success is counted from the rows, so a warehouse count off by one no longer goes unnoticed.
    real_load = Warehouse.load

    def miscounting(self: Warehouse, *args: Any, **kwargs: Any) -> LoadOutcome:
        outcome = real_load(self, *args, **kwargs)
        return dataclasses.replace(outcome, **{count: getattr(outcome, count) + 1})

    monkeypatch.setattr(Warehouse, "load", miscounting)
    book = workbook([CUSTOMER_HEADERS, customer(1), customer(2), customer(2), customer(3, Age=3)])
    with pytest.raises(AssertionError, match=r"row accounting broken: success 3 != inserted \d \+ skipped \d \+ duplicates 1"):
        toolkit.ingest(book, db=db)


def test_success_counts_the_rows_not_rejected_in_ingest_and_preview_alike(workbook: Book, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1), customer(2)]), db=db)
    rows = [customer(1), customer(1), customer(2, Age=50), customer(3), customer(4, Age="x"), customer(5), customer(5)]
    book = workbook([CUSTOMER_HEADERS, *rows])

    for summary in (toolkit.preview(book, db=db), toolkit.ingest(book, db=db)):
        # rows 2-3 skipped + duplicate, row 4 a conflict, row 5 inserted, row 6 bad, rows 7-8 inserted + duplicate
        assert counts(summary) == {"total": 7, "success": 5, "failed": 2, "inserted": 2, "skipped": 1, "duplicates": 2}
        assert summary.failed_rows == [4, 6]
        assert_invariants(summary)


def test_the_summary_frames_hold_the_accepted_rows_typed_and_the_rejected_rows_as_found(workbook: Book, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1), customer(2)]), db=db)
    rows = [customer(1), customer(2, Age=40), customer(3, Age=" x ", Monthly_Salary=None), customer(4), customer(4)]

    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, *rows]), db=db)

    # accepted: one row per key that passed everything, skipped (row 2) or inserted (row 5); the
    # duplicate (row 6) is counted, not repeated. Columns the file lacks are null.
    assert_frame_equal(
        summary.accepted,
        pl.DataFrame(
            {
                "__row": [2, 5],
                "customer_id": [1, 4],
                "first_name": ["Asha", "Asha"],
                "last_name": ["Rao", "Rao"],
                "age": [34, 34],
                "phone_number": ["9800000001", "9800000004"],
                "monthly_salary": [50000, 50000],
                "approved_limit": [1800000, 1800000],
                "current_debt": [None, None],
            },
            schema_overrides={"age": pl.Int32, "current_debt": pl.Float64},  # age is 32-bit (issue 2)
        ),
    )
    # rejected: the cells as found (text), then every reason and its rule, from validation and the warehouse.
    assert_frame_equal(
        summary.rejected,
        pl.DataFrame(
            {
                "__row": [3, 4],
                "customer_id": ["2", "3"],
                "first_name": ["Asha", "Asha"],
                "last_name": ["Rao", "Rao"],
                "age": ["40", " x "],
                "phone_number": ["9800000002", "9800000003"],
                "monthly_salary": ["50000", None],
                "approved_limit": ["1800000", "1800000"],
                "reasons": [
                    ["Customer ID 2 is already in customers with different values: Age (warehouse 34, file 40)"],
                    ["Age: 'x' is not a whole number", "Missing Monthly Salary"],
                ],
                "rules": [["customer_id|conflict"], ["age|integer", "monthly_salary|required"]],
            }
        ),
    )


def test_clock_and_run_id_are_injectable(workbook: Book, db: Path) -> None:
    ticks = iter([datetime(2024, 1, 1, 9), datetime(2024, 1, 1, 9, 0, 5)])
    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db, clock=lambda: next(ticks), run_id="run-1")
    assert (summary.run_id, summary.started_at, summary.seconds) == ("run-1", datetime(2024, 1, 1, 9), 5.0)
    assert query(db, "SELECT run_id, started_at, finished_at FROM _runs") == [
        ("run-1", datetime(2024, 1, 1, 9), datetime(2024, 1, 1, 9) + timedelta(seconds=5))
    ]


def test_every_failure_and_the_summary_are_logged(workbook: Book, db: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="toolkit")
    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1), customer(2, Monthly_Salary=None)]), db=db)
    messages = [r.getMessage() for r in caplog.records if r.name == "toolkit"]
    assert any("row 3: Missing Monthly Salary" in m for m in messages)
    assert messages[-1] == repr(summary)


def test_progress_is_reported_per_batch_with_increasing_rows_done(workbook: Book, db: Path) -> None:
    seen: list[Progress] = []
    toolkit.ingest(
        workbook([CUSTOMER_HEADERS, *[customer(i) for i in range(1, 11)]]), db=db, batch_size=4, on_progress=seen.append
    )
    assert [(p.rows_done, p.rows_total, p.batches_done) for p in seen] == [(4, 10, 1), (8, 10, 2), (10, 10, 3)]


# --- cancelling --------------------------------------------------------------------------------


def stop_after(checks: int) -> Callable[[], bool]:
    """A should_stop that says stop on its ``checks + 1``-th call (it is asked before each batch)."""
    calls = iter(range(1_000_000))
    return lambda: next(calls) >= checks


def test_should_stop_cancels_after_the_current_batch_and_a_rerun_completes_the_load(workbook: Book, tmp_path: Path) -> None:
    rows = [customer(i) for i in range(1, 11)]
    rows[2] = customer(3, Age="old")  # rejected by validation, so counted even though the run stops
    rows.append(customer(10))  # a duplicate of the last accepted row: unprocessed with it
    book = workbook([CUSTOMER_HEADERS, *rows])
    db = tmp_path / "cancelled.duckdb"

    cancelled = toolkit.ingest(book, db=db, batch_size=3, should_stop=stop_after(2))

    assert cancelled.status == "cancelled"
    assert counts(cancelled) == {"total": 7, "success": 6, "failed": 1, "inserted": 6, "skipped": 0, "duplicates": 0}
    assert "cancelled: 4 rows not processed" in cancelled.warnings
    assert_invariants(cancelled)
    assert [r[0] for r in warehouse_rows(db, "customers")] == [1, 2, 4, 5, 6, 7]  # two whole batches
    [(status, total, inserted, finished)] = query(db, "SELECT status, total, inserted, finished_at IS NOT NULL FROM _runs")
    assert (status, total, inserted, finished) == ("cancelled", 7, 6, True)

    rerun = toolkit.ingest(book, db=db, batch_size=3)
    clean = tmp_path / "clean.duckdb"
    toolkit.ingest(book, db=clean, batch_size=3)
    assert counts(rerun) == {"total": 11, "success": 10, "failed": 1, "inserted": 3, "skipped": 6, "duplicates": 1}
    assert warehouse_rows(db, "customers") == [r for r in warehouse_rows(clean, "customers")]


def test_should_stop_before_the_first_batch_writes_no_rows(workbook: Book, db: Path) -> None:
    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1), customer(2, Age=3)]), db=db, should_stop=lambda: True)
    assert summary.status == "cancelled"
    assert counts(summary) == {"total": 1, "success": 0, "failed": 1, "inserted": 0, "skipped": 0, "duplicates": 0}
    assert warehouse_rows(db, "customers") == []


# --- preview -----------------------------------------------------------------------------------


def test_preview_reports_what_ingest_would_do_without_writing(workbook: Book, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1), customer(2)]), db=db)
    book = workbook([CUSTOMER_HEADERS, customer(1), customer(2, Age=50), customer(3), customer(3)])
    before = query(db, "SELECT count(*) FROM _runs")

    preview = toolkit.preview(book, db=db)

    assert query(db, "SELECT count(*) FROM _runs") == before
    assert preview.status == "preview"
    assert counts(preview) == counts(toolkit.ingest(book, db=db))


def test_preview_without_a_warehouse_judges_the_file_alone(workbook: Book, tmp_path: Path) -> None:
    preview = toolkit.preview(workbook([CUSTOMER_HEADERS, customer(1), customer(1)]), db=tmp_path / "none.duckdb")
    assert counts(preview) == {"total": 2, "success": 2, "failed": 0, "inserted": 1, "skipped": 0, "duplicates": 1}
    assert not (tmp_path / "none.duckdb").exists()


def test_preview_of_a_warehouse_held_by_a_writer_is_a_busy_error_not_a_duckdb_error(workbook: Book, db: Path) -> None:
    book = workbook([CUSTOMER_HEADERS, customer(1)])
    toolkit.ingest(book, db=db)
    with warehouse_held(db), pytest.raises(WarehouseBusyError, match="warehouse is in use by another process"):
        toolkit.preview(book, db=db)


# --- hostile content ---------------------------------------------------------------------------


def test_hostile_text_is_stored_exactly_as_written(tmp_path: Path, db: Path) -> None:
    spec = tmp_path / "notes.toml"
    spec.write_text(NOTES_SPEC)
    path = write_hostile(tmp_path / "hostile.xlsx", sheet="x'); DROP TABLE _runs; --<b>")

    summary = toolkit.ingest(path, db=db, specs=load_specs([spec]))

    assert (summary.inserted, summary.failed) == (len(HOSTILE), 0)
    with duckdb.connect(str(db), read_only=True) as con:
        stored = dict(con.execute("SELECT body, id FROM notes").fetchall())
        (sheet,) = con.execute("SELECT sheet FROM _runs").fetchall()[0]
    for (kind, text), row in zip(HOSTILE.items(), range(1, len(HOSTILE) + 1), strict=True):
        assert stored.get(text) == row, kind
    assert sheet == "x'); DROP TABLE _runs; --<b>"


def test_tens_of_thousands_of_empty_styled_rows_are_skipped_and_only_real_rows_count(tmp_path: Path, db: Path) -> None:
    path = tmp_path / "styled.xlsx"
    book = xlsxwriter.Workbook(str(path))
    ws = book.add_worksheet()
    styled = book.add_format({"bg_color": "#FFFF00", "border": 1, "num_format": "0.00"})
    ws.write_row(0, 0, CUSTOMER_HEADERS)
    for row in (1, 2, 3):
        ws.write_row(row, 0, customer(row))
    for row in range(4, 40_004):  # formatted blank cells, as left by a user formatting a whole range
        for col in range(len(CUSTOMER_HEADERS)):
            ws.write_blank(row, col, None, styled)
    for row in range(40_004, 60_004):  # formatted rows without cells
        ws.set_row(row, 18, styled)
    ws.write_row(60_004, 0, customer(4))
    book.close()

    summary = toolkit.ingest(path, db=db)

    assert (summary.total, summary.inserted, summary.failed) == (4, 4, 0)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT customer_id, _source_row FROM customers ORDER BY 1").fetchall()
    assert rows == [(1, 2), (2, 3), (3, 4), (4, 60_005)]


# --- batch size never changes the outcome (hypothesis) -----------------------------------------

KINDS = ["valid", "valid", "valid", "changed", "text_id", "bad_age", "missing_salary", "stolen_phone"]


def generated_row(cid: int, kind: str) -> list[Any]:
    """A customer row with one kind of defect; ids come from a small pool so keys collide often."""
    if kind == "changed":
        return customer(cid, First_Name="Zoya")
    if kind == "text_id":  # a key stored as text: the same key as the number
        return customer(f" {cid} ", Phone_Number=phone(cid))
    if kind == "bad_age":
        return customer(cid, Age="forty")
    if kind == "missing_salary":
        return customer(cid, Monthly_Salary=None)
    if kind == "stolen_phone":
        return customer(cid, Phone_Number=phone(cid % 9 + 1))
    return customer(cid)


rows_strategy = st.lists(st.tuples(st.integers(1, 9), st.sampled_from(KINDS)), max_size=10)


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(seed=rows_strategy, rows=rows_strategy)
def test_warehouse_content_does_not_depend_on_batch_size_and_a_second_run_inserts_nothing(
    seed: list[tuple[int, str]], rows: list[tuple[int, str]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        here = Path(folder)
        base = here / "base.duckdb"
        if seed:  # what an earlier file left in the warehouse: rows to skip or conflict with
            toolkit.ingest(write_workbook(here / "seed.xlsx", [CUSTOMER_HEADERS, *(generated_row(*r) for r in seed)]), db=base)
        book = write_workbook(here / "file.xlsx", [CUSTOMER_HEADERS, *(generated_row(*r) for r in rows)])

        outcomes = {}
        for size in (1, 7, 1000):
            db = here / f"batch{size}.duckdb"
            if base.exists():
                shutil.copy(base, db)
            summary = toolkit.ingest(book, db=db, batch_size=size)
            assert_invariants(summary)
            outcomes[size] = (counts(summary), summary.errors, warehouse_rows(db, "customers"))

        assert outcomes[1] == outcomes[7] == outcomes[1000]

        again = toolkit.ingest(book, db=here / "batch7.duckdb", batch_size=7)
        assert_invariants(again)
        first = outcomes[7][0]
        assert counts(again)["inserted"] == 0
        assert counts(again)["skipped"] == first["inserted"] + first["skipped"]
        assert warehouse_rows(here / "batch7.duckdb", "customers") == outcomes[7][2]


# --- order of ingestion never changes the warehouse for disjoint keys (hypothesis) -------------

LOAN_KINDS = ["valid", "valid", "valid", "changed", "orphan", "ends_early", "too_many_emis", "bad_tenure"]


def pooled_customer(cid: int, kind: str, pool: int) -> list[Any]:
    """generated_row, but a stolen phone is taken inside the file's own pool of ids: across
    files only keys are disjoint, so a phone owned by the other file would make order matter."""
    if kind == "stolen_phone":
        return customer(cid, Phone_Number=phone(pool + 1))
    return generated_row(cid, kind)


def generated_loan(cid: int, lid: int, kind: str) -> list[Any]:
    """A loan with one kind of defect: a foreign key, a cross-column rule, a cell, a key clash."""
    if kind == "changed":  # the same key as a valid row of the file, other values
        return loan(cid, lid, **{"Loan Amount": 55_555})
    if kind == "orphan":
        return loan(cid + 100, lid)
    if kind == "ends_early":
        return loan(cid, lid, **{"End Date": date(2019, 1, 1)})
    if kind == "too_many_emis":
        return loan(cid, lid, **{"EMIs paid on Time": 99})
    if kind == "bad_tenure":
        return loan(cid, lid, Tenure="twelve")
    return loan(cid, lid)


def customer_file(pool: int) -> st.SearchStrategy[list[list[Any]]]:
    rows = st.lists(st.tuples(st.integers(pool + 1, pool + 6), st.sampled_from(KINDS)), max_size=8)
    return rows.map(lambda found: [pooled_customer(cid, kind, pool) for cid, kind in found])


def loan_file(pool: int) -> st.SearchStrategy[list[list[Any]]]:
    # Customers of both customer files (some rejected: their loans are orphans); Loan IDs from the file's pool.
    cids = st.sampled_from([*range(1, 7), *range(11, 17)])
    rows = st.lists(st.tuples(cids, st.integers(pool + 1, pool + 4), st.sampled_from(LOAN_KINDS)), max_size=8)
    return rows.map(lambda found: [generated_loan(*row) for row in found])


def stored(db: Path) -> dict[str, Any]:
    """The warehouse without the lineage that depends on the order (_run_id), per file's rejects."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = {
            t: con.execute(f'SELECT * EXCLUDE (_run_id, _source_row) FROM "{t}" ORDER BY ALL').fetchall()
            for t in ("customers", "loans")
        }
        rejected = con.execute(
            "SELECT r.file, j.source_row, j.stage, j.reasons FROM _rejects j JOIN _runs r USING (run_id) ORDER BY ALL"
        ).fetchall()
    return {**tables, "_rejects": rejected}


@pytest.mark.slow
@settings(max_examples=12, deadline=None)
@given(customers_a=customer_file(0), customers_b=customer_file(10), loans_a=loan_file(0), loans_b=loan_file(10))
def test_for_files_with_disjoint_keys_the_order_of_ingestion_does_not_change_the_warehouse(
    customers_a: list[list[Any]], customers_b: list[list[Any]], loans_a: list[list[Any]], loans_b: list[list[Any]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        here = Path(folder)
        books = [
            write_workbook(here / "customers_a.xlsx", [CUSTOMER_HEADERS, *customers_a]),
            write_workbook(here / "customers_b.xlsx", [CUSTOMER_HEADERS, *customers_b]),
            write_workbook(here / "loans_a.xlsx", [LOAN_HEADERS, *loans_a]),
            write_workbook(here / "loans_b.xlsx", [LOAN_HEADERS, *loans_b]),
        ]
        outcomes = {}
        # Within a table, files load in the order given (customers always before loans); the last
        # warehouse also changes the batch size, which must not matter for loans either.
        for name, order, size in (("forward", books, 1000), ("reverse", books[::-1], 1000), ("batches of 2", books, 2)):
            db = here / f"{name}.duckdb"
            results = toolkit.ingest_many(order, db=db, batch_size=size)
            for summary in results:
                assert isinstance(summary, toolkit.IngestSummary), summary
                assert_invariants(summary)
            per_file = {Path(s.file).name: counts(s) for s in results if isinstance(s, toolkit.IngestSummary)}
            outcomes[name] = (per_file, stored(db))

        assert outcomes["reverse"] == outcomes["forward"]
        assert outcomes["batches of 2"] == outcomes["forward"]
