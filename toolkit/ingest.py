"""read -> match -> validate -> load -> summary: what the CLI, notebooks and tasks call."""

from __future__ import annotations

import dataclasses
import heapq
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from toolkit import __version__
from toolkit.errors import SchemaChangeError, ToolkitError, WarehouseBusyError, WarehouseError
from toolkit.limits import DEFAULT_MAX_CELLS, DEFAULT_MAX_UNCOMPRESSED_BYTES
from toolkit.load import Progress, Warehouse, classify
from toolkit.match import HEADER_SEARCH_ROWS, MappedSheet, map_sheet, match_header
from toolkit.read import Background, Grid, file_sha256, open_sheet, quick_head
from toolkit.specs import TableSpec, load_order, load_specs
from toolkit.summary import IngestSummary
from toolkit.validate import ERROR_SCHEMA, ROW, Validated, rejected_frame, validate
from toolkit.workers import Pool

log = logging.getLogger("toolkit")
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Prepared:
    """A sheet read, matched and validated: everything short of touching the warehouse."""

    path: Path
    sheet: MappedSheet
    validated: Validated
    sha256: str
    sheet_name: str
    #: The mapped headers as found, in the file's column order (``sheet.headers`` is in spec order).
    header_order: tuple[str, ...] = ()

    @property
    def table(self) -> str:
        return self.validated.spec.table

    @property
    def warnings(self) -> list[str]:
        found = []
        if self.validated.raw.is_empty():
            found.append("the sheet has a header row but no data rows")
        missing = [c.header for c in self.validated.spec.columns if c.name not in self.validated.headers]
        if missing:
            found.append(f"optional column(s) not in the file, left empty: {', '.join(missing)}")
        return found


def prepare(
    path: str | Path,
    *,
    specs: Mapping[str, TableSpec] | None = None,
    table: str | None = None,
    sheet: str | int | None = None,
    header_row: int | None = None,
    max_cells: int = DEFAULT_MAX_CELLS,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    sha256: str | None = None,
    read_processes: int = 2,
) -> Prepared:
    """Read and validate one sheet without opening the warehouse; structural problems raise.

    A sheet declaring more than ``max_cells`` cells, or a zipped workbook more than
    ``max_uncompressed_bytes`` unpacked, is refused before it is parsed (toolkit.limits).
    ``sha256``: the file's hash, when the caller has just computed it (else it is hashed here).
    ``read_processes=2`` parses a large .xlsx sheet (over ``toolkit.halves.SPLIT_FROM_BYTES`` of XML)
    in two halves, in this process and a helper one at once; 1 keeps the read in this process.
    """
    path = Path(path)
    specs = specs if specs is not None else load_specs()
    # The hash needs nothing from the read: it runs on a thread while fastexcel parses (which
    # lets go of the GIL), instead of after (~40 ms for a 55 MB workbook).
    hashing = Background(file_sha256, path, name="toolkit-hash") if sha256 is None else None
    opened = open_sheet(
        path,
        sheet=sheet,
        head_rows=max(HEADER_SEARCH_ROWS, header_row or 0),
        prefer_sheet=table,
        max_cells=max_cells,
        max_uncompressed_bytes=max_uncompressed_bytes,
    )
    mapped = map_sheet(opened, specs, table=table, header_row=header_row, read_processes=read_processes)
    validated = validate(mapped)
    digest = hashing.result() if hashing is not None else sha256
    assert digest is not None
    return Prepared(path, mapped, validated, digest, opened.name, _header_order(opened.head, mapped))


def _header_order(grid: Grid, mapped: MappedSheet) -> tuple[str, ...]:
    # Recorded in _runs so the fix-it workbook can give the user back their own column order.
    cells = grid.cells.filter(pl.col(ROW) == mapped.header_row).row(0, named=True)
    found = set(mapped.headers.values())
    return tuple(dict.fromkeys(text for letter in grid.letters if (text := (cells[letter] or "").strip()) in found))


def ingest(
    path: str | Path,
    *,
    db: str | Path = "warehouse.duckdb",
    table: str | None = None,
    sheet: str | int | None = None,
    batch_size: int = 1000,
    specs: Mapping[str, TableSpec] | None = None,
    header_row: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    clock: Clock = datetime.now,
    run_id: str | None = None,
    wait: float = 0.0,
    on_conflict: str = "reject",
    max_cells: int = DEFAULT_MAX_CELLS,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> IngestSummary:
    """Ingest one sheet of a workbook into the DuckDB warehouse at ``db``.

    Structural problems (unreadable file, missing sheet or required column) raise a
    :class:`~toolkit.errors.ToolkitError` before anything is written; bad rows are reported
    in the summary and the ``_rejects`` table. ``on_conflict="update"`` replaces stored rows whose
    key is present with other values (counted as ``updated``, changes kept in ``_changes``).
    ``max_cells`` and ``max_uncompressed_bytes`` refuse oversized files unread (see :func:`prepare`).
    """
    prepared = _prepare(Path(path), _Options(specs, table, sheet, header_row, max_cells, max_uncompressed_bytes))
    with Warehouse(db, wait=wait) as warehouse:
        return load_prepared(
            prepared,
            warehouse,
            batch_size=batch_size,
            on_progress=on_progress,
            should_stop=should_stop,
            clock=clock,
            run_id=run_id,
            on_conflict=on_conflict,
        )


def ingest_many(
    paths: Iterable[str | Path],
    *,
    db: str | Path = "warehouse.duckdb",
    table: str | None = None,
    sheet: str | int | None = None,
    batch_size: int = 1000,
    specs: Mapping[str, TableSpec] | None = None,
    header_row: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    clock: Clock = datetime.now,
    wait: float = 0.0,
    on_conflict: str = "reject",
    workers: int | None = None,
    max_cells: int = DEFAULT_MAX_CELLS,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> list[IngestSummary | ToolkitError]:
    """Ingest several files into one warehouse; parents load before children (customers
    before loans). A bad file yields its error in the result list; the others still load.

    Files are read and validated in ``workers`` processes (default: one per core, at most one
    per file, and none for less than ``PARALLEL_FROM_BYTES`` of workbooks; 1 = all in this
    process) while this process, the one writer, loads those ready in turn. The order of
    loading, and so the warehouse, is the same however many workers there are: by table
    (parents first), then as the files were given. Files are read in that order too, as far as
    it is known before reading them (from .xlsx header rows; other files are read first).
    """
    specs = specs if specs is not None else load_specs()
    files = [Path(p) for p in paths]
    options = _Options(specs, table, sheet, header_row, max_cells, max_uncompressed_bytes)
    rank = {name: i for i, name in enumerate(load_order(list(specs), specs))}
    count = _worker_count(workers, files)
    # The table of an .xlsx file is known from its header row in milliseconds: knowing it early
    # lets a file load while workers still read later ones, and files are read in the order they
    # will load, so a parent given last does not keep every child read before it waiting in
    # memory. Others are known once read (and read first: they may be parents).
    known = {i: table for i, path in enumerate(files) if (table := _identify(path, options)) is not None}
    order = _LoadOrder(len(files), rank, known)
    reading = sorted(range(len(files)), key=order.key)
    outcomes: dict[int, IngestSummary | ToolkitError] = {}  # loaded, or failed
    prepared: dict[int, Prepared] = {}  # read, waiting for its turn: its frames are let go once it loads
    loaded: list[int] = []  # in the order they were loaded
    warehouse: Warehouse | None = None
    closed: ToolkitError | None = None  # the warehouse could not be opened: every file fails with it

    def load_ready() -> None:
        nonlocal warehouse, closed
        while (index := order.first()) is not None and index in prepared:
            file = prepared.pop(index)
            order.done(index)
            loaded.append(index)
            if closed is None and warehouse is None:
                try:
                    warehouse = Warehouse(db, wait=wait)
                except ToolkitError as exc:
                    log.error("%s", exc)
                    closed = exc
            if closed is not None:
                outcomes[index] = closed
                continue
            assert warehouse is not None
            try:
                outcomes[index] = load_prepared(
                    file,
                    warehouse,
                    batch_size=batch_size,
                    on_progress=on_progress,
                    clock=clock,
                    on_conflict=on_conflict,
                )
            except SchemaChangeError as exc:  # this table cannot take the spec; others may
                log.error("%s: %s", file.path.name, exc)
                outcomes[index] = exc

    try:
        for index, result in _prepare_all(files, reading, options, count):
            if isinstance(result, ToolkitError):
                log.error("%s", result)
                outcomes[index] = result
                order.done(index)
            else:
                prepared[index] = result
                order.learn(index, result.table)
            load_ready()
    finally:
        if warehouse is not None:
            warehouse.close()
    # Results in the order they were loaded, bad files where they were given.
    position = {index: n for n, index in enumerate(loaded)}
    return [outcomes[i] for i in sorted(outcomes, key=lambda i: position.get(i, i))]


class _LoadOrder:
    """Which file loads next: files load by (table rank, position), parents first.

    A file not read yet may be of any table, so it counts as one of the first table's: it goes
    before every file given after it, and before every file of a later table. The next file is
    the first in that order of those neither loaded nor failed; it loads once it is read. A heap
    keeps this to O(log n) a file (rescanning every file for every result was O(n²) a result).
    """

    def __init__(self, count: int, rank: Mapping[str, int], known: Mapping[int, str]) -> None:
        self._rank = rank
        self._known = dict(known)
        self._done: set[int] = set()
        self._heap = [(self.key(index), index) for index in range(count)]
        heapq.heapify(self._heap)

    def key(self, index: int) -> tuple[int, int]:
        """Where file ``index`` goes in the order, as far as its table is known."""
        table = self._known.get(index)
        return (self._rank[table] if table is not None else 0, index)

    def learn(self, index: int, table: str) -> None:
        """File ``index`` holds ``table`` (its entry under what was thought before goes stale)."""
        self._known[index] = table
        heapq.heappush(self._heap, (self.key(index), index))

    def done(self, index: int) -> None:
        """File ``index`` loaded or failed: it holds back nothing any more."""
        self._done.add(index)

    def first(self) -> int | None:
        """The file that goes before every other one left, or None when none is left."""
        while self._heap:
            key, index = self._heap[0]
            if index not in self._done and key == self.key(index):
                return index
            heapq.heappop(self._heap)  # loaded, failed, or an entry from before its table was known
        return None


@dataclass(frozen=True)
class _Options:
    """How a file is read and matched (sent to the worker processes by ``ingest_many``)."""

    specs: Mapping[str, TableSpec] | None  # None: the built-in specs
    table: str | None
    sheet: str | int | None
    header_row: int | None
    max_cells: int = DEFAULT_MAX_CELLS
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES
    read_processes: int = 2  # 1 in the worker processes of ingest_many: the cores are taken


def _identify(path: Path, options: _Options) -> str | None:
    """The table a workbook's header row names, when that is quick to know (.xlsx), else None."""
    try:
        # Only the streamed head of an .xlsx sheet: any other read would be the whole sheet, done
        # again by the worker.
        opened = quick_head(
            path,
            sheet=options.sheet,
            prefer_sheet=options.table,
            head_rows=max(HEADER_SEARCH_ROWS, options.header_row or 0),
            max_cells=options.max_cells,
            max_uncompressed_bytes=options.max_uncompressed_bytes,
        )
        if opened is None:
            return None
        specs = options.specs or load_specs()
        _, spec, _, _ = match_header(opened.head, specs, table=options.table, header_row=options.header_row)
    except ToolkitError:
        return None  # the worker meets the same problem and reports it
    return spec.table


#: Below this much workbook in all, starting worker processes (~0.5 s each) costs more than it saves.
PARALLEL_FROM_BYTES = 4 * 1024 * 1024


def _worker_count(workers: int | None, files: list[Path]) -> int:
    if workers is not None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        return min(workers, max(len(files), 1))
    if sum(path.stat().st_size for path in files if path.is_file()) < PARALLEL_FROM_BYTES:
        return 1
    return max(1, min(os.cpu_count() or 1, len(files)))


def _prepare_all(
    files: list[Path], reading: list[int], options: _Options, workers: int
) -> Iterator[tuple[int, Prepared | ToolkitError]]:
    """(index, prepared file or its error) for every file, as they are ready; read in the order
    ``reading`` gives (indices into ``files``)."""
    if workers == 1:
        for index in reading:
            yield index, _prepare_or_error(files[index], options)
        return
    options = dataclasses.replace(options, read_processes=1)  # each worker reads on one core
    with Pool(workers, _prepare_or_error) as pool:
        for position, result in pool.run([(files[index].name, (files[index], options)) for index in reading]):
            assert isinstance(result, Prepared | ToolkitError)
            yield reading[position], result


def _prepare(path: Path, options: _Options) -> Prepared:
    return prepare(
        path,
        specs=options.specs,
        table=options.table,
        sheet=options.sheet,
        header_row=options.header_row,
        max_cells=options.max_cells,
        max_uncompressed_bytes=options.max_uncompressed_bytes,
        read_processes=options.read_processes,
    )


def _prepare_or_error(path: Path, options: _Options) -> Prepared | ToolkitError:
    try:
        return _prepare(path, options)
    except ToolkitError as exc:
        return exc


def load_prepared(
    prepared: Prepared,
    warehouse: Warehouse,
    *,
    batch_size: int = 1000,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    clock: Clock = datetime.now,
    run_id: str | None = None,
    on_conflict: str = "reject",
) -> IngestSummary:
    """Load a prepared sheet through an open warehouse and record the run."""
    validated = prepared.validated
    spec = validated.spec
    run_id = run_id or uuid.uuid4().hex
    started = clock()
    warehouse.ensure_tables([spec])
    record = {**_run_record(prepared, run_id, started, batch_size), "on_conflict": on_conflict}
    warehouse.start_run(record, validated)
    outcome = warehouse.load(
        validated,
        run_id=run_id,
        batch_size=batch_size,
        on_progress=on_progress,
        should_stop=should_stop,
        on_conflict=on_conflict,
    )
    duplicates = validated.duplicates
    # A duplicate follows the row it repeats: rejected by the warehouse, it is rejected too.
    inherited = duplicates.join(outcome.errors.rename({"row": "__first_row"}), on="__first_row").select(
        pl.col(ROW).alias("row"), *[c for c in ERROR_SCHEMA if c != "row"]
    )
    warehouse.record_rejects(run_id, validated, inherited, stage="warehouse")
    errors = pl.concat([validated.errors, outcome.errors, inherited]).sort("row", maintain_order=True)
    unprocessed = _unprocessed(validated, outcome.rows_done) if outcome.cancelled else set()
    failed_rows = set(errors["row"].to_list())
    total = validated.raw.height - len(unprocessed)
    n_duplicates = duplicates.filter(~pl.col(ROW).is_in(list(failed_rows | unprocessed))).height
    summary = IngestSummary(
        run_id=run_id,
        file=str(prepared.path),
        sheet=prepared.sheet_name,
        table=spec.table,
        total=total,
        success=_succeeded(validated, failed_rows | unprocessed),
        inserted=outcome.inserted,
        skipped=outcome.skipped,
        updated=outcome.updated,
        duplicates=n_duplicates,
        failed=len(failed_rows),
        errors=tuple(errors.to_dicts()),
        unmapped_columns=tuple(prepared.sheet.unmapped_columns),
        warnings=tuple(prepared.warnings + ([f"cancelled: {len(unprocessed)} rows not processed"] if unprocessed else [])),
        status="cancelled" if outcome.cancelled else "completed",
        database=str(warehouse.path),
        file_sha256=prepared.sha256,
        header_row=prepared.sheet.header_row,
        batch_size=batch_size,
        started_at=started,
        finished_at=clock(),
        toolkit_version=__version__,
        accepted=validated.accepted.filter(~pl.col(ROW).is_in(list(failed_rows | unprocessed))),
        rejected=rejected_frame(validated.raw, errors),
        changes=outcome.changes,
    )
    as_dict = summary.to_dict()  # once: each call copies every error
    counts = {k: as_dict[k] for k in ("total", "success", "failed", "inserted", "skipped", "duplicates", "updated")}
    counts["warnings"] = list(summary.warnings)
    assert summary.finished_at is not None
    warehouse.finish_run(run_id, counts, status=summary.status, finished_at=summary.finished_at)
    _log(summary)
    return summary


def preview(
    path: str | Path,
    *,
    db: str | Path | None = None,
    table: str | None = None,
    sheet: str | int | None = None,
    specs: Mapping[str, TableSpec] | None = None,
    header_row: int | None = None,
    clock: Clock = datetime.now,
    max_cells: int = DEFAULT_MAX_CELLS,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> IngestSummary:
    """What an ingest would do, without writing: ``inserted`` counts rows that would be inserted."""
    import duckdb

    prepared = _prepare(Path(path), _Options(specs, table, sheet, header_row, max_cells, max_uncompressed_bytes))
    validated = prepared.validated
    started = clock()
    try:
        con = duckdb.connect(str(db), read_only=True) if db and Path(db).exists() else duckdb.connect()
    except duckdb.Error as exc:  # translated here like Warehouse does, so callers see one error family
        if "lock" in str(exc).lower():
            raise WarehouseBusyError(f"{db}: warehouse is in use by another process; try again when it finishes") from exc
        raise WarehouseError(f"{db}: cannot open the warehouse ({str(exc).strip().splitlines()[0]})") from exc
    try:
        warehouse_errors, same = classify(con, validated.spec, validated.accepted, validated.headers)
    finally:
        con.close()
    inherited = validated.duplicates.join(warehouse_errors.rename({"row": "__first_row"}), on="__first_row").select(
        pl.col(ROW).alias("row"), *[c for c in ERROR_SCHEMA if c != "row"]
    )
    errors = pl.concat([validated.errors, warehouse_errors, inherited]).sort("row", maintain_order=True)
    failed_rows = set(errors["row"].to_list())
    loadable = validated.accepted.filter(~pl.col(ROW).is_in(list(failed_rows)))
    return IngestSummary(
        run_id="preview",
        file=str(prepared.path),
        sheet=prepared.sheet_name,
        table=validated.spec.table,
        total=validated.raw.height,
        success=_succeeded(validated, failed_rows),
        inserted=loadable.height - same.len(),
        skipped=same.len(),
        duplicates=validated.duplicates.filter(~pl.col(ROW).is_in(list(failed_rows))).height,
        failed=len(failed_rows),
        errors=tuple(errors.to_dicts()),
        unmapped_columns=tuple(prepared.sheet.unmapped_columns),
        warnings=tuple(prepared.warnings),
        status="preview",
        database=str(db) if db else None,
        file_sha256=prepared.sha256,
        header_row=prepared.sheet.header_row,
        started_at=started,
        finished_at=clock(),
        toolkit_version=__version__,
        accepted=loadable,
        rejected=rejected_frame(validated.raw, errors),
    )


def _succeeded(validated: Validated, not_counted: set[int]) -> int:
    """Distinct data rows outside ``not_counted``: counted from the rows themselves, never from
    inserted + skipped + duplicates, so that the summary's second invariant checks the loader."""
    return validated.raw.filter(~pl.col(ROW).is_in(list(not_counted)))[ROW].n_unique()


def _unprocessed(validated: Validated, rows_done: int) -> set[int]:
    left = set(validated.accepted[ROW][rows_done:].to_list())
    repeats = validated.duplicates.filter(pl.col("__first_row").is_in(list(left)))[ROW].to_list()
    return left | set(repeats)


def _run_record(prepared: Prepared, run_id: str, started: datetime, batch_size: int) -> dict[str, object]:
    return {
        "run_id": run_id,
        "file": str(prepared.path),
        "file_sha256": prepared.sha256,
        "sheet": prepared.sheet_name,
        "table_name": prepared.table,
        "header_row": prepared.sheet.header_row,
        "started_at": started,
        "status": "running",
        "batch_size": batch_size,
        "toolkit_version": __version__,
        "unmapped_columns": list(prepared.sheet.unmapped_columns),
        "headers": list(prepared.header_order),
    }


def _log(summary: IngestSummary) -> None:
    if log.isEnabledFor(logging.INFO):
        for error in summary.errors:
            log.info("%s row %s: %s", summary.file, error["row"], error["message"])
    log.info("%r", summary)
