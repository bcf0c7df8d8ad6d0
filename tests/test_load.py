"""toolkit.load: judging rows against the warehouse, batches, audit tables, the write lock."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import toolkit
import toolkit.load
from tests.conftest import CUSTOMER_HEADERS, LOAN_HEADERS, customer, loan, query, warehouse_held, warehouse_rows, write_workbook
from toolkit.errors import WarehouseBusyError, WarehouseError
from toolkit.ingest import prepare
from toolkit.load import Progress, Warehouse
from toolkit.specs import parse_spec

Book = Callable[..., Path]
COUNTS = ("total", "success", "failed", "inserted", "skipped", "duplicates")
WITH_DEBT = [*CUSTOMER_HEADERS, "Current Debt"]


def counts(summary: toolkit.IngestSummary) -> dict[str, int]:
    return {k: summary.to_dict()[k] for k in COUNTS}


def tally(total: int, *, inserted: int = 0, skipped: int = 0, duplicates: int = 0, failed: int = 0) -> dict[str, int]:
    success = inserted + skipped + duplicates
    assert total == success + failed, "the expectation itself breaks the invariant"
    return {
        "total": total,
        "success": success,
        "failed": failed,
        "inserted": inserted,
        "skipped": skipped,
        "duplicates": duplicates,
    }


# --- rows against the warehouse ---------------------------------------------------------------


def test_identical_row_is_skipped_and_a_changed_row_is_a_conflict_naming_each_column_with_both_values(
    workbook: Book, db: Path
) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1), customer(2)]), db=db)
    before = warehouse_rows(db, "customers")

    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1), customer(2, First_Name="Bob", Age=40), customer(3)]), db=db)

    assert counts(summary) == tally(3, inserted=1, skipped=1, failed=1)
    assert list(summary.errors) == [
        {
            "row": 3,
            "column": None,  # two columns changed: the message names both
            "rule": "customer_id|conflict",
            "message": "Customer ID 2 is already in customers with different values: "
            "First Name (warehouse Asha, file Bob); Age (warehouse 34, file 40)",
            "value": None,
        }
    ]
    # never overwritten: customer 2 keeps its stored values, only customer 3 is new
    assert warehouse_rows(db, "customers") == sorted([*before, *warehouse_rows_for(db, 3)])
    assert query(db, "SELECT first_name, age FROM customers WHERE customer_id = 2") == [("Asha", 34)]


def warehouse_rows_for(db: Path, cid: int) -> list[tuple[object, ...]]:
    return [r for r in warehouse_rows(db, "customers") if r[0] == cid]


def test_a_conflict_on_one_column_names_that_column(workbook: Book, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1, Monthly_Salary=1)]), db=db)
    (error,) = summary.errors
    assert error["column"] == "Monthly Salary"
    assert error["message"].endswith("Monthly Salary (warehouse 50000, file 1)")


def test_identical_rows_whose_key_is_already_stored_count_first_skipped_then_duplicates(workbook: Book, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1), customer(1), customer(1)]), db=db)
    assert counts(summary) == tally(3, skipped=1, duplicates=2)
    assert summary.errors == ()


def test_identical_rows_conflicting_with_the_warehouse_are_all_rejected(workbook: Book, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1, Age=50), customer(1, Age=50)]), db=db)
    assert counts(summary) == tally(2, failed=2)
    assert [(e["row"], e["rule"]) for e in summary.errors] == [(2, "customer_id|conflict"), (3, "customer_id|conflict")]
    assert query(db, "SELECT source_row, stage FROM _rejects ORDER BY source_row") == [(2, "warehouse"), (3, "warehouse")]


def test_an_optional_column_the_file_lacks_is_not_a_difference(workbook: Book, db: Path) -> None:
    toolkit.ingest(workbook([WITH_DEBT, [*customer(1), 1500.5]]), db=db)
    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    assert counts(summary) == tally(1, skipped=1)
    assert query(db, "SELECT current_debt FROM customers") == [(1500.5,)]  # not blanked by the narrower file


def test_a_value_for_a_column_the_warehouse_holds_empty_is_a_conflict_not_a_silent_fill(workbook: Book, db: Path) -> None:
    # The reverse of the case above: the stored row has no Current Debt, the new file has one.
    # Filling it in would be a silent overwrite, so it is reported like any other change.
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    summary = toolkit.ingest(workbook([WITH_DEBT, [*customer(1), 1500.5]]), db=db)
    (error,) = summary.errors
    assert (error["rule"], error["column"]) == ("customer_id|conflict", "Current Debt")
    assert "Current Debt (warehouse empty, file 1500.5)" in error["message"]


def test_a_phone_number_owned_by_another_customer_in_the_warehouse_is_rejected(workbook: Book, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    taken = customer(1)[CUSTOMER_HEADERS.index("Phone Number")]
    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(5, Phone_Number=taken), customer(6)]), db=db)
    assert counts(summary) == tally(2, inserted=1, failed=1)
    assert list(summary.errors) == [
        {
            "row": 2,
            "column": "Phone Number",
            "rule": "phone_number|unique",
            "message": f"Phone Number {taken} already belongs to Customer ID 1 in customers",
            "value": taken,
        }
    ]


def test_a_phone_number_stored_under_the_same_customer_is_not_a_clash(workbook: Book, db: Path) -> None:
    book = workbook([CUSTOMER_HEADERS, customer(1)])
    toolkit.ingest(book, db=db)
    assert counts(toolkit.ingest(book, db=db)) == tally(1, skipped=1)


def test_a_loan_whose_customer_is_not_in_customers_is_rejected_by_the_foreign_key(workbook: Book, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    summary = toolkit.ingest(workbook([LOAN_HEADERS, loan(1, 100), loan(2, 101)]), db=db)
    assert counts(summary) == tally(2, inserted=1, failed=1)
    assert list(summary.errors) == [
        {
            "row": 3,
            "column": "Customer ID",
            "rule": "customer_id|foreign_key",
            "message": "Customer ID 2 is not in customers",
            "value": "2",
        }
    ]


def test_loans_into_a_warehouse_without_customers_are_all_rejected(workbook: Book, db: Path) -> None:
    summary = toolkit.ingest(workbook([LOAN_HEADERS, loan(1, 100), loan(2, 101)]), db=db)
    assert counts(summary) == tally(2, failed=2)
    assert {e["rule"] for e in summary.errors} == {"customer_id|foreign_key"}
    assert warehouse_rows(db, "loans") == []


def test_the_same_loan_id_for_two_customers_is_two_loans(workbook: Book, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1), customer(2)]), db=db)
    summary = toolkit.ingest(workbook([LOAN_HEADERS, loan(1, 100), loan(2, 100)]), db=db)
    assert counts(summary) == tally(2, inserted=2)


def test_rerunning_a_file_inserts_nothing_and_leaves_the_table_unchanged(workbook: Book, db: Path) -> None:
    book = workbook([CUSTOMER_HEADERS, customer(1), customer(2), customer(2), customer(3, Age="abc")])
    first = toolkit.ingest(book, db=db)
    rows = warehouse_rows(db, "customers")
    second = toolkit.ingest(book, db=db)
    assert counts(first) == tally(4, inserted=2, duplicates=1, failed=1)
    assert counts(second) == tally(4, skipped=2, duplicates=1, failed=1)
    assert warehouse_rows(db, "customers") == rows


@settings(max_examples=25, deadline=None)
@given(
    stored=st.sets(st.integers(1, 12)),
    changed=st.sets(st.integers(1, 12)),
    batch_size=st.integers(1, 13),
)
def test_a_file_partly_in_the_warehouse_gets_the_same_outcome_at_any_batch_size(
    stored: set[int], changed: set[int], batch_size: int
) -> None:
    # Rows judged up front are split by batch; every split must count and store what one batch does.
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        seed = write_workbook(base / "seed.xlsx", [CUSTOMER_HEADERS, *(customer(i) for i in sorted(stored))])
        rows = [customer(i, Age=70) if i in changed else customer(i) for i in range(1, 13)]
        book = write_workbook(base / "book.xlsx", [CUSTOMER_HEADERS, *rows])
        outcomes = []
        for size in (batch_size, 1000):
            db = base / f"w{size}.duckdb"
            if stored:
                toolkit.ingest(seed, db=db)
            summary = toolkit.ingest(book, db=db, batch_size=size)
            assert summary.total == summary.success + summary.failed
            outcomes.append((counts(summary), [e["row"] for e in summary.errors], warehouse_rows(db, "customers")))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0]["failed"] == len(stored & changed)


def test_each_row_records_its_run_and_excel_row(workbook: Book, db: Path) -> None:
    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(7), [], customer(8)]), db=db)
    stored = query(db, "SELECT customer_id, _run_id, _source_row FROM customers ORDER BY 1")
    assert stored == [(7, summary.run_id, 2), (8, summary.run_id, 4)]


# --- a foreign key to the table itself ---------------------------------------------------------

EMPLOYEES = parse_spec(
    tomllib.loads(
        """
table = "employees"
key = ["id"]

[[columns]]
name = "id"
header = "ID"
type = "integer"
required = true

[[columns]]
name = "manager"
header = "Manager"
type = "integer"

[[columns]]
name = "badge"
header = "Badge"
type = "text"
unique = true

[[foreign_keys]]
columns = ["manager"]
references = "employees"
ref_columns = ["id"]
"""
    ),
    source="employees",
)
EMPLOYEE_HEADERS = ["ID", "Manager", "Badge"]


def employees(path: Path, rows: list[tuple[int, int | None, str | None]], *, db: Path, **options: Any) -> toolkit.IngestSummary:
    book = write_workbook(path, [EMPLOYEE_HEADERS, *[list(r) for r in rows]])
    return toolkit.ingest(book, db=db, specs={"employees": EMPLOYEES}, **options)


@pytest.mark.parametrize("on_conflict", ["reject", "update"])
@pytest.mark.parametrize("batch_size", [1, 1000])
@pytest.mark.parametrize(
    ("rows", "stored", "rejected"),
    [
        pytest.param([(1, None, "a"), (2, 1, "b"), (3, 2, "c")], [1, 2, 3], {}, id="managers first"),
        pytest.param([(3, 2, "c"), (2, 1, "b"), (1, None, "a")], [1, 2, 3], {}, id="managers last"),
        pytest.param(
            [(2, 99, "b"), (3, 2, "c"), (4, None, "d")],
            [4],
            {2: "Manager 99 is not in employees", 3: "Manager 2 is not in employees"},
            id="under a missing manager",
        ),
    ],
)
def test_a_manager_may_be_a_row_of_the_same_file_in_any_order_and_any_batch_size(
    tmp_path: Path,
    rows: list[tuple[int, int | None, str | None]],
    stored: list[int],
    rejected: dict[int, str],
    batch_size: int,
    on_conflict: str,
) -> None:
    summary = employees(tmp_path / "e.xlsx", rows, db=tmp_path / "w.duckdb", batch_size=batch_size, on_conflict=on_conflict)

    assert {e["row"]: e["message"] for e in summary.errors} == rejected
    assert [r[0] for r in query(tmp_path / "w.duckdb", "SELECT id FROM employees ORDER BY id")] == stored


def employee_rows(ids: int) -> st.SearchStrategy[list[tuple[int, int | None, str | None]]]:
    # Managers range beyond the ids: some are missing, others are found in the file or the seed only.
    return st.lists(
        st.tuples(st.integers(1, ids), st.one_of(st.none(), st.integers(1, 9)), st.sampled_from(["a", "b", "c", "d", None])),
        max_size=8,
    )


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(seed=employee_rows(4), rows=employee_rows(8))
@example(seed=[], rows=[(1, None, "a"), (2, 1, "b")])
def test_with_a_foreign_key_to_its_own_table_the_warehouse_does_not_depend_on_batch_size(
    seed: list[tuple[int, int | None, str | None]], rows: list[tuple[int, int | None, str | None]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        here = Path(folder)
        base = here / "base.duckdb"
        if seed:  # what an earlier file left: managers, keys to conflict with, badges to clash with
            employees(here / "seed.xlsx", seed, db=base)
        outcomes = {}
        for size in (1, 2, 1000):
            db = here / f"batch{size}.duckdb"
            if base.exists():
                shutil.copy(base, db)
            summary = employees(here / "file.xlsx", rows, db=db, batch_size=size)
            outcomes[size] = (counts(summary), summary.errors, warehouse_rows(db, "employees"))
            # every stored manager is a stored employee
            assert query(db, "SELECT id FROM employees WHERE manager NOT IN (SELECT id FROM employees)") == []

        assert outcomes[1] == outcomes[2] == outcomes[1000]


# --- batches ----------------------------------------------------------------------------------


def test_load_reports_progress_after_each_batch_with_increasing_rows(workbook: Book, db: Path) -> None:
    prepared = prepare(workbook([CUSTOMER_HEADERS, *[customer(i) for i in range(1, 8)], customer(9, Age="x")]))
    seen: list[Progress] = []
    with Warehouse(db) as warehouse:
        warehouse.ensure_tables([prepared.validated.spec])
        outcome = warehouse.load(prepared.validated, run_id="r1", batch_size=3, on_progress=seen.append)
    assert (outcome.inserted, outcome.skipped, outcome.rows_done, outcome.cancelled) == (7, 0, 7, False)
    assert [(p.rows_done, p.rows_total, p.batches_done) for p in seen] == [(3, 7, 1), (6, 7, 2), (7, 7, 3)]
    assert all(later.seconds >= earlier.seconds for earlier, later in zip(seen, seen[1:], strict=False))


@pytest.mark.parametrize(("done", "seconds", "rate"), [(100, 2.0, 50.0), (100, 0.0, 0.0), (0, 1.0, 0.0)])
def test_progress_rate_is_rows_per_second_and_zero_before_time_passes(done: int, seconds: float, rate: float) -> None:
    assert Progress(done, 200, 1, seconds).rows_per_second == rate


@pytest.mark.parametrize("size", [0, -1])
def test_load_refuses_a_batch_size_below_one(workbook: Book, db: Path, size: int) -> None:
    prepared = prepare(workbook([CUSTOMER_HEADERS, customer(1)]))
    with Warehouse(db) as warehouse, pytest.raises(ValueError, match="batch_size must be at least 1"):
        warehouse.load(prepared.validated, run_id="r1", batch_size=size)


def test_a_failing_transaction_is_rolled_back(db: Path) -> None:
    with Warehouse(db) as warehouse:
        with pytest.raises(RuntimeError, match="boom"), warehouse.transaction():
            warehouse.con.execute("CREATE TABLE t (x INTEGER)").fetchall()
            raise RuntimeError("boom")
        found = warehouse.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 't'").fetchall()
    assert found == [(0,)]


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (
            duckdb.IOException('Could not write file "w.duckdb.wal": No space left on device'),
            "the disk is full (No space left on device) after 1,200 rows; committed batches are kept, free space and re-run",
        ),
        (
            duckdb.TransactionException('Failed to commit: Could not write file "w.duckdb.wal": File too large'),
            "the file size limit is reached (File too large) after 1,200 rows; committed batches are kept, free space and re-run",
        ),
        (
            duckdb.IOException('Could not write file "w.duckdb": Input/output error'),
            'cannot write the warehouse (Could not write file "w.duckdb": Input/output error) after 1,200 rows; '
            "committed batches are kept, re-run once it can be written",
        ),
    ],
)
def test_a_failure_to_write_is_one_warehouse_error_naming_the_rows_committed(
    db: Path, raised: duckdb.Error, message: str
) -> None:
    with Warehouse(db) as warehouse:
        with pytest.raises(WarehouseError) as info, warehouse.transaction(rows_done=1200):
            warehouse.con.execute("CREATE TABLE t (x INTEGER)").fetchall()
            raise raised
        found = warehouse.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 't'").fetchall()
    assert str(info.value) == f"{db}: {message}"
    assert info.value.__cause__ is raised
    assert found == [(0,)]


@pytest.mark.parametrize("failing_commit", [1, 3, 5])
def test_a_batch_commit_failing_while_the_next_batch_is_written_keeps_exactly_the_batches_before_it(
    workbook: Book, db: Path, monkeypatch: pytest.MonkeyPatch, failing_commit: int
) -> None:
    # Batches commit on a thread while the next one is inserted: a failure must still leave the
    # committed batches a prefix, roll the next batch back and name the rows committed.
    prepared = prepare(workbook([CUSTOMER_HEADERS, *(customer(i) for i in range(1, 11))]))
    commit_batch = Warehouse._commit_batch
    calls = []

    def failing(self: Warehouse, cursor: duckdb.DuckDBPyConnection) -> None:
        calls.append(cursor)
        if len(calls) == failing_commit:
            cursor.rollback()
            raise duckdb.IOException('Could not write file "w.duckdb.wal": No space left on device')
        commit_batch(self, cursor)

    monkeypatch.setattr(Warehouse, "_commit_batch", failing)
    seen: list[Progress] = []
    with Warehouse(db) as warehouse:
        warehouse.ensure_tables([prepared.validated.spec])
        committed = (failing_commit - 1) * 2
        with pytest.raises(WarehouseError, match=rf"disk is full .* after {committed} rows; committed batches are kept"):
            warehouse.load(prepared.validated, run_id="r1", batch_size=2, on_progress=seen.append)
    assert query(db, "SELECT customer_id FROM customers ORDER BY 1") == [(i,) for i in range(1, 2 * failing_commit - 1)]
    assert [p.rows_done for p in seen] == [2 * i for i in range(1, failing_commit)]
    assert len({id(c) for c in calls}) == min(len(calls), 2)  # consecutive batches on two cursors


@pytest.mark.parametrize("kind", ["TABLE", "VIEW"])
def test_a_warehouse_object_named_like_the_batch_the_insert_reads_does_not_take_its_place(
    workbook: Book, db: Path, kind: str
) -> None:
    # Batches are inserted from a Python variable DuckDB finds by name; a table or view of that
    # name would be read instead, so the toolkit inserts another way there.
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE {kind} toolkit_batch_rows AS SELECT 1 AS x").fetchall()
    rows = [customer(i) for i in range(1, 6)]
    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, *rows]), db=db, batch_size=2)
    assert (summary.inserted, summary.failed) == (5, 0)
    assert query(db, "SELECT customer_id FROM customers ORDER BY 1") == [(i,) for i in range(1, 6)]


def after_each_commit(monkeypatch: pytest.MonkeyPatch, record: Callable[[Warehouse, duckdb.DuckDBPyConnection], None]) -> None:
    """Have ``record(warehouse, cursor)`` called after each batch the load commits."""
    commit_batch = Warehouse._commit_batch

    def recording(self: Warehouse, cursor: duckdb.DuckDBPyConnection) -> None:
        commit_batch(self, cursor)
        record(self, cursor)

    monkeypatch.setattr(Warehouse, "_commit_batch", recording)


def test_batches_commit_in_order_each_reported_once_after_its_commit(
    workbook: Book, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = prepare(workbook([CUSTOMER_HEADERS, *(customer(i) for i in range(1, 10))]))
    stored_at_commit: list[int] = []
    seen: list[int] = []
    after_each_commit(
        monkeypatch, lambda _, cursor: stored_at_commit.append(cursor.execute("SELECT count(*) FROM customers").fetchall()[0][0])
    )
    with Warehouse(db) as warehouse:
        warehouse.ensure_tables([prepared.validated.spec])
        warehouse.load(prepared.validated, run_id="r1", batch_size=2, on_progress=lambda p: seen.append(p.rows_done))
    assert stored_at_commit == [2, 4, 6, 8, 9]
    assert seen == [2, 4, 6, 8, 9]


@pytest.mark.parametrize("on_conflict", ["reject", "update"])
def test_rows_reach_duckdb_as_one_contiguous_arrow_table_however_polars_chunked_them(
    workbook: Book, db: Path, monkeypatch: pytest.MonkeyPatch, on_conflict: str
) -> None:
    # DuckDB inserts a contiguous table faster (toolkit.load._insertable); filters leave chunks.
    prepared = prepare(workbook([CUSTOMER_HEADERS, *(customer(i) for i in range(1, 7))]))
    accepted = prepared.validated.accepted
    chunked = pl.concat([accepted.slice(0, 2), accepted.slice(2, 2), accepted.slice(4)], rechunk=False)
    assert chunked.n_chunks() > 1
    validated = dataclasses.replace(prepared.validated, accepted=chunked)
    chunks: list[int] = []
    insert = toolkit.load._insert_rows

    def counting(con: duckdb.DuckDBPyConnection, spec: Any, rows: Any, *, by_name: bool) -> None:
        chunks.append(rows.column(0).num_chunks)
        insert(con, spec, rows, by_name=by_name)

    monkeypatch.setattr(toolkit.load, "_insert_rows", counting)
    with Warehouse(db) as warehouse:
        warehouse.ensure_tables([validated.spec])
        warehouse.load(validated, run_id="r1", batch_size=100, on_conflict=on_conflict)
    assert chunks == [1]
    assert query(db, "SELECT count(*) FROM customers") == [(6,)]


def _checkpoint_threshold(warehouse: Warehouse) -> str:
    return str(warehouse.con.execute("SELECT current_setting('checkpoint_threshold')").fetchall()[0][0])


def _wal_bytes(db: Path) -> int:
    wal = db.with_name(db.name + ".wal")
    return wal.stat().st_size if wal.exists() else 0


def test_a_load_checkpoints_once_after_its_batches_and_restores_the_threshold(
    workbook: Book, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a tiny threshold, DuckDB would fold the log into the file at every commit; during a
    # load the log only grows, and the first commit after it folds it in.
    prepared = prepare(workbook([CUSTOMER_HEADERS, *(customer(i) for i in range(1, 10))]))
    logged: list[int] = []
    after_each_commit(monkeypatch, lambda warehouse, _: logged.append(_wal_bytes(warehouse.path)))
    with Warehouse(db) as warehouse:
        warehouse.ensure_tables([prepared.validated.spec])
        warehouse.con.execute("SET checkpoint_threshold = '1KiB'").fetchall()
        warehouse.load(prepared.validated, run_id="r1", batch_size=2)
        assert _checkpoint_threshold(warehouse) == "1.0 KiB"
        assert len(logged) == 5 and all(earlier < later for earlier, later in zip(logged, logged[1:], strict=False))
        with warehouse.transaction():
            warehouse.con.execute("CREATE TABLE after_the_load (x INTEGER)").fetchall()
        assert _wal_bytes(db) == 0


def test_a_failed_load_restores_the_checkpoint_threshold(workbook: Book, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prepared = prepare(workbook([CUSTOMER_HEADERS, customer(1)]))

    def failing(self: Warehouse, cursor: duckdb.DuckDBPyConnection) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Warehouse, "_commit_batch", failing)
    with Warehouse(db) as warehouse:
        warehouse.ensure_tables([prepared.validated.spec])
        before = _checkpoint_threshold(warehouse)
        with pytest.raises(RuntimeError, match="boom"):
            warehouse.load(prepared.validated, run_id="r1")
        assert _checkpoint_threshold(warehouse) == before


def test_other_duckdb_errors_in_a_transaction_are_bugs_and_pass_through(db: Path) -> None:
    with Warehouse(db) as warehouse, pytest.raises(duckdb.ConstraintException), warehouse.transaction(rows_done=0):
        warehouse.con.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)").fetchall()
        warehouse.con.execute("INSERT INTO t VALUES (1), (1)").fetchall()


# --- audit tables -----------------------------------------------------------------------------


def test_runs_records_each_sheet_with_status_counts_hash_and_version(workbook: Book, db: Path) -> None:
    book = workbook([["Notes", "Customer ID"], [], CUSTOMER_HEADERS + ["Branch"], customer(1) + ["Pune"], customer(2, Age=7)])
    summary = toolkit.ingest(book, db=db, batch_size=17)
    [record] = query(
        db,
        "SELECT run_id, file, file_sha256, sheet, table_name, header_row, status, total, success, failed, inserted, "
        "skipped, duplicates, batch_size, toolkit_version, unmapped_columns, started_at <= finished_at FROM _runs",
    )
    assert record == (
        summary.run_id,
        str(book),
        hashlib.sha256(book.read_bytes()).hexdigest(),
        "Sheet1",
        "customers",
        3,
        "completed",
        2,
        1,
        1,
        1,
        0,
        0,
        17,
        toolkit.__version__,
        ["Branch"],
        True,
    )
    [(warnings,)] = query(db, "SELECT warnings FROM _runs")
    assert warnings == list(summary.warnings)


def test_rejects_keep_excel_row_stage_reasons_every_error_and_the_raw_cells_by_header(workbook: Book, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    summary = toolkit.ingest(
        workbook([CUSTOMER_HEADERS, customer(2, Age="abc", Monthly_Salary=None), customer(1, Last_Name="Iyer")]), db=db
    )
    rejects = pl.DataFrame(
        query(db, f"SELECT source_row, stage, reasons, errors, raw FROM _rejects WHERE run_id = '{summary.run_id}'"),
        schema=["source_row", "stage", "reasons", "errors", "raw"],
        orient="row",
    ).sort("source_row")
    bad_cells, conflict = rejects.to_dicts()

    assert (bad_cells["source_row"], bad_cells["stage"]) == (2, "validate")
    assert bad_cells["reasons"] == ["Age: 'abc' is not a whole number", "Missing Monthly Salary"]
    assert [(e["column"], e["rule"], e["value"]) for e in bad_cells["errors"]] == [
        ("Age", "age|integer", "abc"),
        ("Monthly Salary", "monthly_salary|required", None),
    ]
    assert bad_cells["raw"]["Age"] == "abc"
    assert bad_cells["raw"]["Monthly Salary"] is None
    assert set(bad_cells["raw"]) == set(CUSTOMER_HEADERS)

    assert (conflict["source_row"], conflict["stage"]) == (3, "warehouse")
    assert conflict["reasons"] == [
        "Customer ID 1 is already in customers with different values: Last Name (warehouse Rao, file Iyer)"
    ]
    assert conflict["raw"]["Last Name"] == "Iyer"
    # the summary and the table tell the same story
    assert sorted(r for r in rejects["source_row"]) == summary.failed_rows


# --- the warehouse file -----------------------------------------------------------------------


def test_opening_creates_the_audit_tables(db: Path) -> None:
    with Warehouse(db) as warehouse:
        assert repr(warehouse) == f"<Warehouse {db}>"
    assert query(db, "SELECT table_name FROM duckdb_tables() ORDER BY 1") == [("_changes",), ("_rejects",), ("_runs",)]


def test_opening_marks_runs_left_running_by_a_dead_process_as_interrupted(workbook: Book, db: Path) -> None:
    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE _runs SET status = 'running', finished_at = NULL").fetchall()
    with Warehouse(db):
        pass
    assert query(db, "SELECT run_id, status FROM _runs") == [(summary.run_id, "interrupted")]


def test_a_warehouse_held_by_another_process_is_busy(workbook: Book, db: Path) -> None:
    book = workbook([CUSTOMER_HEADERS, customer(1)])
    with warehouse_held(db), pytest.raises(WarehouseBusyError, match="warehouse is in use by another process"):
        toolkit.ingest(book, db=db)
    assert query(db, "SELECT count(*) FROM duckdb_tables()") == [(0,)]  # nothing written


def test_waiting_for_a_busy_warehouse_succeeds_once_the_other_process_exits(workbook: Book, db: Path) -> None:
    book = workbook([CUSTOMER_HEADERS, customer(1)])
    with warehouse_held(db, seconds=1.0):
        summary = toolkit.ingest(book, db=db, wait=60)
    assert summary.inserted == 1


def test_a_file_that_is_not_a_duckdb_database_is_a_warehouse_error(tmp_path: Path) -> None:
    not_db = tmp_path / "notes.duckdb"
    not_db.write_text("just some text, not a database\n" * 100)
    with pytest.raises(WarehouseError, match="cannot open the warehouse"):
        Warehouse(not_db)
