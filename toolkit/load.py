"""Accepted rows -> the DuckDB warehouse in batches, with dedupe and audit tables.

Each batch is one transaction. Rows whose key is already present are found with one join
against the table and left out: skipped with the same values, rejected as conflicts (naming the
changed columns) with other values. Rows whose foreign key or unique value does not fit the
warehouse are rejected, the rest are inserted, and the table's key constraint refuses any
duplicate, so a re-run never duplicates a row. Committed batches survive a crash; ``_runs`` keeps
the run as not finished until its last commit. Where the outcome cannot differ (see
``_judge_once``) every row is judged in one join before the first batch, so the per-batch work is
the insert alone and the load stays linear in the file's rows.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from toolkit import schema, sql
from toolkit.errors import WarehouseBusyError, WarehouseError
from toolkit.read import text_frame
from toolkit.specs import TableSpec
from toolkit.validate import ERROR_SCHEMA, ROW, Validated

BATCH_NAME = "__toolkit_batch"


@dataclass(frozen=True)
class Progress:
    """Reported after each committed batch."""

    rows_done: int
    rows_total: int
    batches_done: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows_done / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class LoadOutcome:
    inserted: int
    skipped: int
    errors: pl.DataFrame  # ERROR_SCHEMA, warehouse-stage rejections
    rows_done: int  # accepted rows judged against the warehouse (all of them unless cancelled)
    cancelled: bool = False
    updated: int = 0
    changes: pl.DataFrame = field(default_factory=pl.DataFrame)  # CHANGE_SCHEMA: what the rows updated changed


class Warehouse:
    """A DuckDB warehouse file opened for writing (one writer process at a time)."""

    def __init__(self, path: str | Path, *, wait: float = 0.0) -> None:
        self.path = Path(path)
        self.con = _connect(self.path, wait)
        try:
            _run(self.con, sql.RUNS_DDL)
            for column, sql_type in sql.RUNS_ADDED_COLUMNS:
                # warehouses made by an older toolkit get the audit columns added since
                _run(self.con, f"ALTER TABLE _runs ADD COLUMN IF NOT EXISTS {sql.quote(column)} {sql_type}")
            _run(self.con, sql.REJECTS_DDL)
            _run(self.con, sql.CHANGES_DDL)
            # We hold the file's write lock, so a run still marked running died with its process.
            _run(self.con, "UPDATE _runs SET status = 'interrupted' WHERE status = 'running'")
        except duckdb.Error as exc:
            self.con.close()
            raise WarehouseError(f"{self.path}: cannot set up the warehouse ({_first_line(exc)})") from exc

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self.close()
            return
        with contextlib.suppress(duckdb.Error):  # the failure on its way out is the one to report
            self.close()

    def close(self) -> None:
        with _write_failures(self.path, rows_done=None):  # closing checkpoints the WAL into the file
            self.con.close()

    def __repr__(self) -> str:
        return f"<Warehouse {self.path}>"

    def ensure_tables(self, specs: Sequence[TableSpec]) -> None:
        """Create each spec's table, or evolve it (see toolkit.schema); refuses unsafe changes."""
        for spec in specs:
            with _write_failures(self.path, rows_done=0):
                schema.apply(self.con, spec)

    def start_run(self, record: dict[str, Any], validated: Validated) -> None:
        """Record the run as running, with the rows validation rejected, in one transaction."""
        with self.transaction(rows_done=0):
            self._insert_dicts("_runs", [record])
            self._insert_rejects(record["run_id"], validated, validated.errors, stage="validate")

    def finish_run(self, run_id: str, counts: dict[str, Any], *, status: str, finished_at: datetime) -> None:
        assignments = ", ".join(f"{sql.quote(k)} = ?" for k in counts)
        with self.transaction(rows_done=counts.get("total")):
            _run(
                self.con,
                f"UPDATE _runs SET {assignments}, status = ?, finished_at = ? WHERE run_id = ?",
                [*counts.values(), status, finished_at, run_id],
            )

    def load(
        self,
        validated: Validated,
        *,
        run_id: str,
        batch_size: int = 1000,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_conflict: str = "reject",
    ) -> LoadOutcome:
        """Load the accepted rows in batches of ``batch_size``, one transaction each.

        ``on_conflict="update"`` replaces the provided columns of rows whose key is present with
        other values, in the same batch transaction, and records each change in ``_changes``.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if on_conflict not in ON_CONFLICT:
            raise ValueError(f"on_conflict must be one of {', '.join(ON_CONFLICT)}, got {on_conflict!r}")
        spec = validated.spec
        rows = validated.accepted.with_columns(_run_id=pl.lit(run_id), _source_row=pl.col(ROW))
        order = _in_table_order(self.con, spec, rows)  # once: every batch is inserted in the table's column order
        tally = _Tally(rows.height, on_progress)
        by_name = not _name_taken(self.con, _ROWS_NAME)  # see _insert_rows
        # The whole-file join runs before the batches' single thread: it is one large query.
        whole = (
            _judge_whole_file(self.con, spec, rows, validated.headers, batch_size, order) if _judge_once(on_conflict) else None
        )
        with _single_thread(self.con, batch_size), _setting(self.con, "checkpoint_threshold", LOAD_WAL_LIMIT):
            if whole is not None:
                self._load_judged(
                    validated, whole, rows, tally, run_id=run_id, batch_size=batch_size, by_name=by_name, should_stop=should_stop
                )
            else:
                self._load_batch_by_batch(
                    validated,
                    rows,
                    order,
                    tally,
                    run_id=run_id,
                    batch_size=batch_size,
                    by_name=by_name,
                    should_stop=should_stop,
                    on_conflict=on_conflict,
                )
        return tally.outcome()

    def _load_judged(
        self,
        validated: Validated,
        whole: _WholeFile,
        rows: pl.DataFrame,
        tally: _Tally,
        *,
        run_id: str,
        batch_size: int,
        by_name: bool,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        """Write batches judged up front, each batch's commit overlapping the next one's insert.

        DuckDB spends ~2 ms committing even a small batch, on its own threads, outside the GIL:
        while one cursor commits batch k, another inserts batch k+1 (1.4x to 1.7x faster at 1000
        rows a batch in three runs of benchmarks/duckdb_floor.py). Commits still happen one at a
        time and in order, so the committed batches are always the first ones, as with one
        transaction after another: a crash keeps a prefix.
        """
        spec = validated.spec
        cursors = (self.con, self.con.cursor())
        pending: _Commit | None = None
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="toolkit-commit") as committer:

                def settle() -> None:
                    # The previous batch's commit: wait for it, then count its rows as done.
                    nonlocal pending
                    if pending is not None:
                        commit, pending = pending, None
                        with _write_failures(self.path, tally.rows_done):
                            commit.future.result()
                        tally.add(*commit.counts)

                # should_stop is asked once a batch, before it commits: the batch under way when it
                # says stop is rolled back, the ones before it are kept.
                for index, batch in enumerate(rows.iter_slices(batch_size)):
                    judged, new_rows = whole.part(index)
                    counts = (judged, new_rows.num_rows, batch.height)
                    # A batch of rows all present already writes nothing: no empty commit (~2 ms each on a re-run).
                    if not (new_rows.num_rows or judged.errors.height):
                        settle()
                        if should_stop is not None and should_stop():
                            tally.cancelled = True
                            return
                        tally.add(*counts)
                        continue
                    cursor = cursors[1] if pending is not None and pending.cursor is cursors[0] else cursors[0]
                    with _write_failures(self.path, lambda: tally.rows_done):
                        cursor.begin()
                        try:
                            _insert_rows(cursor, spec, new_rows, by_name=by_name)
                            self._insert_rejects(run_id, validated, judged.errors, stage="warehouse", con=cursor)
                            settle()
                            stop = should_stop is not None and should_stop()
                        except BaseException:
                            with contextlib.suppress(duckdb.Error):
                                cursor.rollback()
                            # The batch before may still commit: count it, or fail first with its own
                            # error (a no-op when settling it is what failed).
                            settle()
                            raise
                        if stop:  # asked while this batch was written: it is not committed
                            cursor.rollback()
                            tally.cancelled = True
                            return
                        pending = _Commit(committer.submit(self._commit_batch, cursor), cursor, counts)
                settle()
        finally:
            if pending is not None:  # failing on the way out: the commit under way finishes or fails on its own
                with contextlib.suppress(BaseException):
                    pending.future.result()
            cursors[1].close()

    def _commit_batch(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """Commit one batch written by _load_judged (on its committer thread)."""
        cursor.commit()

    def _load_batch_by_batch(
        self,
        validated: Validated,
        rows: pl.DataFrame,
        order: list[pl.Expr],
        tally: _Tally,
        *,
        run_id: str,
        batch_size: int,
        by_name: bool,
        should_stop: Callable[[], bool] | None,
        on_conflict: str,
    ) -> None:
        """Judge and write one batch after another: an update can change how a later batch is judged."""
        spec = validated.spec
        for batch in rows.iter_slices(batch_size):
            if should_stop is not None and should_stop():
                tally.cancelled = True
                return
            # Rows of earlier batches are stored or rejected by now: parents from the rest only.
            # (A parent in a later batch that the warehouse rejects is not known yet here.)
            later = rows.slice(tally.rows_done)
            judged = judge(self.con, spec, batch, validated.headers, on_conflict=on_conflict, file_rows=later)
            handled = pl.concat([judged.errors["row"], judged.same, judged.updates]).implode()
            new_rows = _insertable(batch.filter(~pl.col(ROW).is_in(handled)).select(order))
            with self.transaction(rows_done=tally.rows_done):
                _insert_rows(self.con, spec, new_rows, by_name=by_name)
                if judged.updates.len():
                    updates = batch.filter(pl.col(ROW).is_in(judged.updates.implode()))
                    self._update_rows(spec, updates, list(validated.headers))
                    self._insert_changes(run_id, spec, judged.changes)
                self._insert_rejects(run_id, validated, judged.errors, stage="warehouse")
            tally.add(judged, new_rows.num_rows, batch.height)

    def record_rejects(self, run_id: str, validated: Validated, errors: pl.DataFrame, *, stage: str) -> None:
        with self.transaction():
            self._insert_rejects(run_id, validated, errors, stage=stage)

    @contextlib.contextmanager
    def transaction(self, *, rows_done: int | None = None) -> Iterator[None]:
        """One transaction; a failure to write (full disk...) raises WarehouseError saying how many
        rows of the run were committed before it (``rows_done``)."""
        with _write_failures(self.path, rows_done):
            self.con.begin()
            try:
                yield
            except BaseException as exc:
                try:
                    self.con.rollback()
                except duckdb.Error:
                    if _write_failure(exc) is None:  # a full disk can fail the rollback too: report the first
                        raise
                raise
            self.con.commit()

    def _update_rows(self, spec: TableSpec, rows: pl.DataFrame, present: list[str]) -> None:
        self.con.register(BATCH_NAME, rows)
        try:
            _run(self.con, sql.update_rows(spec, BATCH_NAME, present))
        finally:
            self.con.unregister(BATCH_NAME)

    def _insert_changes(self, run_id: str, spec: TableSpec, changes: pl.DataFrame) -> None:
        frame = changes.select(
            pl.lit(run_id).alias("run_id"),
            pl.lit(spec.table).alias("table_name"),
            pl.col("row").alias("source_row"),
            "column",
            "old_value",
            "new_value",
        )
        self.con.register("__toolkit_changes", frame)
        try:
            _run(self.con, "INSERT INTO _changes SELECT * FROM __toolkit_changes")
        finally:
            self.con.unregister("__toolkit_changes")

    def _insert_rejects(
        self, run_id: str, validated: Validated, errors: pl.DataFrame, *, stage: str, con: duckdb.DuckDBPyConnection | None = None
    ) -> None:
        if errors.is_empty():
            return
        con = self.con if con is None else con
        headers = validated.headers
        # Only the failing rows: building the header -> cell map costs ~15 s per million rows.
        failing = validated.raw.filter(pl.col(ROW).is_in(errors["row"].implode()))
        raw = text_frame(failing).select(
            ROW,
            pl.concat_list([pl.struct(key=pl.lit(headers[c]), value=pl.col(c)) for c in headers]).alias("raw"),
        )
        grouped = errors.group_by("row", maintain_order=True).agg(
            reasons=pl.col("message"),
            errors=pl.struct("column", "rule", "message", "value"),
        )
        frame = grouped.join(raw, left_on="row", right_on=ROW, how="left").select(
            pl.lit(run_id).alias("run_id"),
            pl.lit(validated.spec.table).alias("table_name"),
            pl.col("row").alias("source_row"),
            pl.lit(stage).alias("stage"),
            "reasons",
            "errors",
            "raw",
        )
        con.register("__toolkit_rejects", frame)
        try:
            _run(
                con,
                "INSERT INTO _rejects SELECT run_id, table_name, source_row, stage, reasons, errors, "
                "map_from_entries(raw) FROM __toolkit_rejects",
            )
        finally:
            con.unregister("__toolkit_rejects")

    def _insert_dicts(self, table: str, records: list[dict[str, Any]]) -> None:
        names = list(records[0])
        placeholders = ", ".join("?" for _ in names)
        self.con.executemany(
            f"INSERT INTO {sql.quote(table)} ({sql.column_list(names)}) VALUES ({placeholders})",
            [list(r.values()) for r in records],
        )


@contextlib.contextmanager
def _write_failures(path: Path, rows_done: int | Callable[[], int] | None) -> Iterator[None]:
    """DuckDB failing to write the file (full disk, size limit, I/O error) -> one-line WarehouseError.

    The failed transaction is rolled back; committed batches stay, and the run, never finished,
    is marked ``interrupted`` by the next process to open the warehouse. Other DuckDB errors are
    bugs and pass through.
    """
    try:
        yield
    except duckdb.Error as exc:
        reason = _write_failure(exc)
        if reason is None:
            raise
        done = rows_done() if callable(rows_done) else rows_done  # a callable: the count when it failed
        after = f" after {done:,} rows" if done is not None else ""
        advice = "free space and re-run" if "limit" in reason or "full" in reason else "re-run once it can be written"
        raise WarehouseError(f"{path}: {reason}{after}; committed batches are kept, {advice}") from exc


def _write_failure(exc: object) -> str | None:
    """What went wrong writing, in a few words; None when ``exc`` is not a failure to write."""
    if not isinstance(exc, duckdb.Error):
        return None
    text = str(exc)
    if "No space left on device" in text:
        return "the disk is full (No space left on device)"
    if "File too large" in text:
        return "the file size limit is reached (File too large)"
    if isinstance(exc, duckdb.IOException | duckdb.FatalException) or "Could not write" in text:
        return f"cannot write the warehouse ({_first_line(exc)})"
    return None


_ROWS_NAME = "toolkit_batch_rows"


def _insert_rows(con: duckdb.DuckDBPyConnection, spec: TableSpec, rows: pa.Table, *, by_name: bool) -> None:
    """Insert rows judged absent from the table, in its column order; were that judgement ever
    wrong, the table's key constraint refuses the duplicate and the batch rolls back."""
    if not rows.num_rows:
        return
    if by_name:
        # DuckDB finds the arrow table by its local name (a replacement scan): 0.3 to 0.5 ms a
        # batch less than a relation insert (1000 batches of 1000 rows, commits overlapped: 3.9 s
        # -> 3.4 s, 2.45 -> 2.13 s and 2.63 -> 2.09 s in three runs of benchmarks/duckdb_floor.py).
        # Only where no table has the name: it would be read instead.
        toolkit_batch_rows = rows  # noqa: F841 - read by the statement below, by this name
        con.execute(f"INSERT INTO {sql.quote(spec.table)} SELECT * FROM {_ROWS_NAME}").fetchall()
    else:
        con.from_arrow(rows).insert_into(spec.table)


class _Tally:
    """What the batches committed so far did, reported after each one."""

    def __init__(self, rows_total: int, on_progress: Callable[[Progress], None] | None) -> None:
        self.rows_total = rows_total
        self.on_progress = on_progress
        self.started = time.perf_counter()
        self.inserted = self.skipped = self.updated = self.batches = self.rows_done = 0
        self.errors = [pl.DataFrame(schema=ERROR_SCHEMA)]
        self.changes = [_NO_CHANGES]
        self.cancelled = False

    def add(self, judged: Judgement, inserted: int, rows: int) -> None:
        self.inserted += inserted
        self.skipped += judged.same.len()
        self.updated += judged.updates.len()
        self.errors.append(judged.errors)
        self.changes.append(judged.changes)
        self.batches += 1
        self.rows_done += rows
        if self.on_progress is not None:
            elapsed = time.perf_counter() - self.started
            self.on_progress(Progress(self.rows_done, self.rows_total, self.batches, elapsed))

    def outcome(self) -> LoadOutcome:
        return LoadOutcome(
            self.inserted,
            self.skipped,
            pl.concat(self.errors),
            self.rows_done,
            cancelled=self.cancelled,
            updated=self.updated,
            changes=pl.concat(self.changes),
        )


@dataclass(frozen=True)
class _Commit:
    """A batch's commit under way on ``cursor``, and what to count once it is done."""

    future: Future[Any]
    cursor: duckdb.DuckDBPyConnection
    counts: tuple[Judgement, int, int]


@dataclass(frozen=True)
class Judgement:
    """How a batch of accepted rows meets the warehouse."""

    errors: pl.DataFrame  # ERROR_SCHEMA: conflicts (in reject mode), unique clashes, missing parents
    same: pl.Series  # rows already present with the same values: skipped
    updates: pl.Series  # rows whose key is present with other values, to update (update mode only)
    changes: pl.DataFrame  # CHANGE_SCHEMA: old and new value of each changed column of those rows


CHANGE_SCHEMA = {"row": pl.Int64, "column": pl.String, "old_value": pl.String, "new_value": pl.String}
ON_CONFLICT = ("reject", "update")
_BATCH = "__batch"
# Empty parts shared by every batch (frames are immutable): building them costs ~0.3 ms a batch.
_NO_ERRORS = pl.DataFrame(schema=ERROR_SCHEMA)
_NO_ROWS = pl.Series(ROW, [], dtype=pl.Int64)
_NO_CHANGES = pl.DataFrame(schema=CHANGE_SCHEMA)


def _judge_once(on_conflict: str) -> bool:
    """Whether judging every row in one join gives what judging batch by batch would.

    It does when no batch's writes can change how a later batch is judged. Accepted rows have
    distinct keys and unique values (settled in the file), so an insert cannot make a later row
    present or clash; a foreign key to the table itself is judged against the stored rows and
    the file's, which an insert only moves from one to the other; we hold the warehouse's write
    lock, so nobody else writes meanwhile. Not so with updates (an updated unique value frees or
    takes one): those are judged batch by batch.
    """
    return on_conflict == "reject"


@dataclass(frozen=True)
class _WholeFile:
    """Every accepted row judged in one join, split by batch: the errors, the rows already
    present (ascending), and the rows to insert (one arrow table, converted once). Batch i's
    share of ``same`` and ``new_rows`` starts at ``same_starts[i]`` and ``new_starts[i]``."""

    errors: dict[int, pl.DataFrame]
    same: pl.Series
    same_starts: list[int]
    new_rows: pa.Table
    new_starts: list[int]

    def part(self, index: int) -> tuple[Judgement, pa.Table]:
        same_start, new_start = self.same_starts[index], self.new_starts[index]
        judgement = Judgement(
            errors=self.errors.get(index, _NO_ERRORS),
            same=self.same.slice(same_start, self.same_starts[index + 1] - same_start),
            updates=_NO_ROWS,
            changes=_NO_CHANGES,
        )
        return judgement, self.new_rows.slice(new_start, self.new_starts[index + 1] - new_start)


def _judge_whole_file(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    rows: pl.DataFrame,
    headers: dict[str, str],
    batch_size: int,
    order: list[pl.Expr],
) -> _WholeFile:
    # One join against the table instead of one per batch: a per-batch join scans the growing
    # table each time, which makes a large file's load quadratic.
    judged = judge(con, spec, rows, headers)
    # Accepted rows are in sheet order, so a batch is the rows from its first Excel row to the
    # next batch's: each part is found by a binary search, and sliced without a copy.
    numbers = rows[ROW]
    firsts = numbers.gather_every(batch_size)

    def starts(ascending: pl.Series) -> list[int]:
        return [*ascending.search_sorted(firsts, side="left").to_list(), ascending.len()]

    batch = (numbers.search_sorted(judged.errors["row"], side="left") // batch_size).alias(_BATCH)
    errors = judged.errors.with_columns(batch)
    same = judged.same.sort()
    handled = pl.concat([judged.errors["row"], same]).implode()
    new = rows.filter(~pl.col(ROW).is_in(handled))
    return _WholeFile(
        errors={int(k[0]): v for k, v in errors.partition_by(_BATCH, as_dict=True, include_key=False).items()},
        same=same,
        same_starts=starts(same),
        new_rows=_insertable(new.select(order)),
        new_starts=starts(new[ROW]),
    )


def _insertable(rows: pl.DataFrame) -> pa.Table:
    """``rows`` as one contiguous arrow table, for DuckDB to insert.

    polars' filters leave a frame in several chunks (a million validated rows come in about
    eleven), and DuckDB inserts a contiguous table faster: the million loans rows in one batch,
    0.72-0.75 s against 0.57-0.58 s, for 0.02 s of copying (one-off, toolkit.load with its table
    and key). Batches sliced from it stay contiguous too.
    """
    return rows.rechunk().to_arrow()


def _in_table_order(con: duckdb.DuckDBPyConnection, spec: TableSpec, rows: pl.DataFrame) -> list[pl.Expr]:
    """The table's columns in its own order, from ``rows`` (null for columns the spec dropped)."""
    columns = schema.existing_columns(con, spec.table)
    return [pl.col(name) if name in rows.columns else pl.lit(None).alias(name) for name in columns]


def classify(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, batch: pl.DataFrame, headers: dict[str, str]
) -> tuple[pl.DataFrame, pl.Series]:
    """Judge rows against the warehouse: (errors, rows already present with the same values)."""
    judgement = judge(con, spec, batch, headers)
    return judgement.errors, judgement.same


def judge(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    batch: pl.DataFrame,
    headers: dict[str, str],
    *,
    on_conflict: str = "reject",
    file_rows: pl.DataFrame | None = None,
) -> Judgement:
    """Judge rows against the warehouse; reads only, the caller decides what to write.

    Only the columns the file provides are compared: an optional column the file lacks is not a
    difference. With ``on_conflict="update"`` a row whose key is present with other values is an
    update instead of a conflict, unless it fails another check. A foreign key to the table
    itself is satisfied by a stored row or by one of ``file_rows`` (the file's accepted rows not
    loaded yet; default: ``batch``) that is not rejected, so a file may list employees before or
    after their managers.
    """
    present = [c for c in spec.names if c in headers]
    unique_errors: list[pl.DataFrame] = []
    fk_errors: dict[int, pl.DataFrame] = {}  # by position in spec.foreign_keys
    lacking: dict[int, pl.DataFrame] = {}  # rows whose self-reference has no stored parent
    same_rows = pl.Series(ROW, [], dtype=pl.Int64)
    conflicts = pl.DataFrame(schema=ERROR_SCHEMA)
    changes = pl.DataFrame(schema=CHANGE_SCHEMA)
    table_exists = _table_exists(con, spec.table)
    con.register(BATCH_NAME, batch)
    try:
        if table_exists:
            # DuckDB compares each row with its stored row, so only rows that differ (rare: a re-run
            # has none) come back with their stored values to be described; a re-run of a million
            # rows would otherwise fetch and compare the million stored rows in polars.
            # Without a key, several stored rows may equal a row on the columns it provides: keep one.
            # Counting distinct rows first is a third of the cost of unique() on a million matches.
            matches = con.sql(sql.stored_matches(spec, BATCH_NAME, present)).pl()
            if matches[ROW].n_unique() < matches.height:
                matches = matches.unique(ROW, keep="first")
            same_rows = matches.filter(~pl.col("__differs"))[ROW]
            if matches["__differs"].any():
                differing = con.sql(sql.differing_rows(spec, BATCH_NAME, present)).pl().unique(ROW, keep="first")
                # A row polars finds equal after all is skipped too, never left out of both counts.
                also_same, conflicts, changes = _compare(differing, batch, spec, present, headers)
                same_rows = pl.concat([same_rows, also_same])
        for column in spec.unique_columns:
            if column in headers and table_exists:
                clashes = con.sql(sql.unique_clashes(spec, BATCH_NAME, column)).pl()
                unique_errors.append(_unique_errors(clashes, batch, spec, column, headers))
        for position, fk in enumerate(spec.foreign_keys):
            if all(c in headers for c in fk.columns) and _table_exists(con, fk.references):
                orphans = con.sql(sql.missing_parents(BATCH_NAME, fk.columns, fk.references, fk.ref_columns)).pl()
            else:
                orphans = batch.filter(pl.all_horizontal(pl.col(c).is_not_null() for c in fk.columns)).select(ROW)
                orphans = orphans if all(c in headers for c in fk.columns) else orphans.clear()
            if fk.references == spec.table:
                lacking[position] = orphans
            else:
                fk_errors[position] = _orphan_errors(orphans, batch, fk.columns, fk.references, headers)
    finally:
        con.unregister(BATCH_NAME)
    if lacking:
        # A row rejected for another reason is no parent; a conflict only where it stays rejected.
        kept_conflicts = [] if on_conflict == "update" else [conflicts["row"]]
        refused = [e["row"] for e in [*unique_errors, *fk_errors.values()]] + kept_conflicts
        orphaned = _own_orphans(spec, batch, batch if file_rows is None else file_rows, lacking, refused)
        fk_errors |= {p: _orphan_errors(o, batch, spec.foreign_keys[p].columns, spec.table, headers) for p, o in orphaned.items()}
    other_errors = pl.concat([pl.DataFrame(schema=ERROR_SCHEMA), *unique_errors, *(fk_errors[p] for p in sorted(fk_errors))])
    if on_conflict == "update":
        updates = conflicts.filter(~pl.col("row").is_in(other_errors["row"].implode()))["row"].alias(ROW)
        all_errors = pl.concat([other_errors, conflicts.filter(~pl.col("row").is_in(updates.implode()))])
    else:
        updates = pl.Series(ROW, [], dtype=pl.Int64)
        all_errors = pl.concat([other_errors, conflicts])
    all_errors = all_errors.sort("row", maintain_order=True)
    same = same_rows.filter(~same_rows.is_in(all_errors["row"].implode()))
    return Judgement(all_errors, same, updates, changes.filter(pl.col("row").is_in(updates.implode())))


def _own_orphans(
    spec: TableSpec, batch: pl.DataFrame, file_rows: pl.DataFrame, lacking: dict[int, pl.DataFrame], refused: list[pl.Series]
) -> dict[int, pl.DataFrame]:
    """Of the rows ``lacking`` a stored parent (per self-referencing foreign key), those whose
    parent is not among ``file_rows`` either. A row rejected is no parent, so rejecting it may
    orphan its children in turn: repeated until nothing changes (once per level of a broken chain)."""
    orphans = {position: rows.clear() for position, rows in lacking.items()}
    while True:
        rejected = pl.concat([pl.Series(ROW, [], dtype=pl.Int64), *refused, *(o[ROW] for o in orphans.values())])
        parents = file_rows.filter(~pl.col(ROW).is_in(rejected.implode()))
        found = {}
        for position, rows in lacking.items():
            fk = spec.foreign_keys[position]
            keys = parents.select(
                pl.col(ref).cast(batch.schema[column], strict=False).alias(column)
                for column, ref in zip(fk.columns, fk.ref_columns, strict=True)
            )
            found[position] = batch.join(rows, on=ROW).join(keys, on=list(fk.columns), how="anti").select(ROW)
        if all(found[p].height == orphans[p].height for p in found):  # orphans only grow: same size, same rows
            return found
        orphans = found


def _compare(
    existing: pl.DataFrame, batch: pl.DataFrame, spec: TableSpec, present: list[str], headers: dict[str, str]
) -> tuple[pl.Series, pl.DataFrame, pl.DataFrame]:
    """(rows identical to the stored row, conflict errors, changes column by column)."""
    if existing.is_empty():
        return pl.Series(ROW, [], dtype=pl.Int64), pl.DataFrame(schema=ERROR_SCHEMA), pl.DataFrame(schema=CHANGE_SCHEMA)
    ours = batch.select(ROW, *present).join(existing, on=ROW, suffix="__old")
    compared = [c for c in present if c not in spec.key]
    differs = {c: pl.col(c).ne_missing(pl.col(f"{c}__old")) for c in compared}
    ours = ours.with_columns(
        __changes=pl.concat_list(
            [
                pl.when(differs[c]).then(pl.format(f"{headers[c]} (warehouse {{}}, file {{}})", _shown(f"{c}__old"), _shown(c)))
                for c in compared
            ]
        ).list.drop_nulls()
        if compared
        else pl.lit([], dtype=pl.List(pl.String)),
        __changed_columns=pl.concat_list([pl.when(differs[c]).then(pl.lit(headers[c])) for c in compared]).list.drop_nulls()
        if compared
        else pl.lit([], dtype=pl.List(pl.String)),
    )
    same = ours.filter(pl.col("__changes").list.len() == 0)[ROW]
    conflicts = ours.filter(pl.col("__changes").list.len() > 0)
    errors = conflicts.select(
        pl.col(ROW).alias("row"),
        pl.when(pl.col("__changed_columns").list.len() == 1).then(pl.col("__changed_columns").list.first()).alias("column"),
        pl.lit(f"{'+'.join(spec.identity)}|conflict").alias("rule"),
        pl.format(
            "{} is already in {} with different values: {}",
            _key_label(spec.identity, headers),
            pl.lit(spec.table),
            pl.col("__changes").list.join("; "),
        ).alias("message"),
        pl.lit(None, dtype=pl.String).alias("value"),
    )
    changes = [
        conflicts.filter(differs[c]).select(
            pl.col(ROW).alias("row"),
            pl.lit(headers[c]).alias("column"),
            pl.col(f"{c}__old").cast(pl.String).alias("old_value"),
            pl.col(c).cast(pl.String).alias("new_value"),
        )
        for c in compared
    ]
    return same, errors, pl.concat([pl.DataFrame(schema=CHANGE_SCHEMA), *changes]).sort("row", maintain_order=True)


def _unique_errors(
    clashes: pl.DataFrame, batch: pl.DataFrame, spec: TableSpec, column: str, headers: dict[str, str]
) -> pl.DataFrame:
    if clashes.is_empty():
        return pl.DataFrame(schema=ERROR_SCHEMA)
    owners = clashes.rename({k: f"{k}__owner" for k in spec.identity})
    joined = batch.select(ROW, column).join(owners, on=ROW).unique(ROW, keep="first", maintain_order=True)
    owner = pl.concat_str(
        [pl.format(f"{headers.get(k, k)} {{}}", pl.col(f"{k}__owner").cast(pl.String)) for k in spec.identity], separator=", "
    )
    return joined.select(
        pl.col(ROW).alias("row"),
        pl.lit(headers[column]).alias("column"),
        pl.lit(f"{column}|unique").alias("rule"),
        pl.format(f"{headers[column]} {{}} already belongs to {{}} in {spec.table}", pl.col(column).cast(pl.String), owner).alias(
            "message"
        ),
        pl.col(column).cast(pl.String).alias("value"),
    )


def _orphan_errors(
    orphans: pl.DataFrame, batch: pl.DataFrame, columns: Sequence[str], parent: str, headers: dict[str, str]
) -> pl.DataFrame:
    if orphans.is_empty():
        return pl.DataFrame(schema=ERROR_SCHEMA)
    rows = batch.join(orphans.select(ROW), on=ROW)
    return rows.select(
        pl.col(ROW).alias("row"),
        pl.lit(headers[columns[0]]).alias("column"),
        pl.lit(f"{'+'.join(columns)}|foreign_key").alias("rule"),
        pl.format("{} is not in {}", _key_label(columns, headers), pl.lit(parent)).alias("message"),
        pl.col(columns[0]).cast(pl.String).alias("value"),
    )


def _key_label(columns: Sequence[str], headers: dict[str, str]) -> pl.Expr:
    return pl.concat_str([pl.format(f"{headers.get(c, c)} {{}}", _shown(c)) for c in columns], separator=", ")


def _shown(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String).fill_null("empty")


#: DuckDB splits a scan into row groups of this many rows: a smaller batch is one task anyway.
_ROW_GROUP = 122_880


def _single_thread(con: duckdb.DuckDBPyConnection, batch_size: int) -> contextlib.AbstractContextManager[None]:
    """Run small batches' statements on one DuckDB thread: for a 1000-row insert, scheduling work
    over several threads costs more (~0.5 ms a batch, measured) than it saves. Batches of two row
    groups or more keep every thread (a million rows in one batch: 1.40 s on one, 1.35 s on two,
    medians of 5 in benchmarks/duckdb_floor.py; 1.00 s and 0.84 s in another run)."""
    return contextlib.nullcontext() if batch_size >= 2 * _ROW_GROUP else _setting(con, "threads", "1")


#: The write-ahead log a load's batches may pile up before DuckDB folds it into the file (its
#: ``checkpoint_threshold``; DuckDB's default is 16 MiB). At 16 MiB, a million loans rows in
#: 1000-row commits checkpoint about six times along the way, each rewriting the table's growing
#: primary-key index: 3.4 s against 2.8 s with one checkpoint at the end (benchmarks/duckdb_floor.py,
#: median of 5; on a faster day 2.09 s against 1.75 s, and once no difference: what the checkpoints cost
#: follows what writing the file costs at the time). The log is as durable as the file, so a crash
#: still keeps every committed batch; the price is memory, about 70 MB for those million rows (one run
#: of the floor), capped by the limit. The first commit after the load (the run's record)
#: checkpoints when the log is over DuckDB's own threshold again; a smaller log waits for the
#: warehouse to close, as before.
LOAD_WAL_LIMIT = "256MiB"


@contextlib.contextmanager
def _setting(con: duckdb.DuckDBPyConnection, name: str, value: str) -> Iterator[None]:
    """DuckDB's setting ``name`` at ``value`` for the block, then back at what it was, also when the block fails."""
    (before,) = _run(con, f"SELECT current_setting('{name}')")[0]
    _run(con, f"SET {name} = '{value}'")
    try:
        yield
    finally:
        _run(con, f"SET {name} = '{before}'")


def _name_taken(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether a table or view of the warehouse is called ``name``."""
    query = (
        "SELECT count(*) FROM (SELECT table_name AS n FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()) "
        "WHERE n = ?"
    )
    return bool(_run(con, query, [name])[0][0])


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    found = _run(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [table])
    return bool(found[0][0])


def _run(con: duckdb.DuckDBPyConnection, query: str, params: list[Any] | None = None) -> list[Any]:
    """Execute and fetch everything: DuckDB refuses new work while a result is unfinished."""
    return con.execute(query, params).fetchall()


def _connect(path: Path, wait: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            message = str(exc)
            if "lock" not in message.lower():
                raise WarehouseError(f"{path}: cannot open the warehouse ({_first_line(exc)})") from exc
            if time.monotonic() >= deadline:
                raise WarehouseBusyError(
                    f"{path}: warehouse is in use by another process; try again when it finishes, or pass --wait SECONDS"
                ) from exc
            time.sleep(0.2)
        except duckdb.Error as exc:
            raise WarehouseError(f"{path}: cannot open the warehouse ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
