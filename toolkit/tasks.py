"""Celery workers feeding one warehouse writer: read and validate anywhere, load in one process.

A submission is a chord: ``ingest_file`` for every file in parallel on the read workers (each
writes its Prepared to the spool, see :mod:`toolkit.spool`, and returns the entry id), then
``load_batch`` on the ``warehouse`` queue, consumed by the writer alone — one process, since DuckDB
has one writer — which loads the entries in ``load_order`` (parents before children) through
``load_prepared``: the same dedupe, audit tables and summaries as ``ingest``.

Tasks are acknowledged late and requeued when their worker dies, so any task may run twice:

- a spool entry's id derives from the file's sha256 and the read's options, so a repeated read reuses it;
- a submission carries a *ticket*, the Redis server's time when it was made (one clock for every
  machine); the writer records beside each entry it loads the summary and the time it loaded it.
  A load request whose ticket is older than that record was already served — a redelivery, a
  duplicate, the same file submitted twice at once — and gets the recorded summary, loading
  nothing. A submission made after the load loads again, as a re-run of ``ingest`` would (present
  rows skipped, loans whose customers have arrived since inserted);
- the writer notes each batch it starts in the spool; on start it loads the batches a crash left
  unfinished and answers their submitters at once, without waiting for Redis to redeliver.

No polars work runs in a worker's main process: the prefork pool forks children from it, and a
child forked from a process that has started polars' thread pool deadlocks.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from celery import Celery, states
from celery.exceptions import CPendingDeprecationWarning
from celery.signals import celeryd_after_setup, worker_ready

from toolkit.cluster import READ_QUEUE, WAREHOUSE_QUEUE, celery_config, redis_time, settings
from toolkit.errors import ClusterError, SchemaChangeError, SpoolError, ToolkitError, WarehouseError
from toolkit.ingest import load_prepared, prepare
from toolkit.limits import DEFAULT_MAX_CELLS, DEFAULT_MAX_UNCOMPRESSED_BYTES
from toolkit.load import Progress, Warehouse
from toolkit.read import file_sha256
from toolkit.specs import TableSpec, load_queue, load_specs
from toolkit.spool import Spool, decode, entry_id

# The submitting side is toolkit.cluster (no task code needed there).
__all__ = ["app", "configure", "run_worker"]

log = logging.getLogger("toolkit")
app = Celery("toolkit")
app.conf.update(celery_config(settings("broker")))


def configure(*, broker: str | None = None, spool: str | Path | None = None, db: str | Path | None = None) -> None:
    """Point this process, and the worker processes it forks, at a broker, a spool and a warehouse."""
    if spool is not None:
        os.environ["TOOLKIT_SPOOL"] = str(Path(spool).resolve())
    if db is not None:
        os.environ["TOOLKIT_DB"] = str(Path(db).resolve())
    if broker is not None:
        os.environ["TOOLKIT_BROKER_URL"] = broker
        app.conf.update(celery_config(broker))


# --- the tasks ---------------------------------------------------------------------------------


@app.task(name="toolkit.ingest_file")
def ingest_file(
    path: str,
    *,
    table: str | None = None,
    sheet: str | int | None = None,
    header_row: int | None = None,
    specs: Any = None,
    staged: bool = False,
    max_cells: int = DEFAULT_MAX_CELLS,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> dict[str, Any]:
    """Read and validate one file into the spool; a bad file is an outcome, not a failure."""
    spool = Spool(settings("spool"))
    source = spool.resolve(path) if staged else Path(path)
    try:
        chosen = decode(specs) if specs is not None else load_specs()
        # Only what changes the read names the entry: a resubmission with another batch size or
        # conflict policy (the writer's business) reuses it.
        options: dict[str, Any] = {
            "table": table,
            "sheet": sheet,
            "header_row": header_row,
            "max_cells": max_cells,
            "max_uncompressed_bytes": max_uncompressed_bytes,
        }
        digest = file_sha256(source)
        entry = entry_id(digest, options, chosen)
        if not spool.has(entry):
            # One core per read: a cluster runs as many readers as it has cores to spare (--concurrency).
            prepared = prepare(source, specs=chosen, sha256=digest, read_processes=1, **options)
            spool.write(entry, prepared)
        return {"file": str(source), "spool_id": entry}
    except ToolkitError as exc:
        return _failed(str(source), exc)


@app.task(name="toolkit.load_batch", bind=True)
def load_batch(
    self: Any, outcomes: list[dict[str, Any]], *, ticket: float, batch_size: int = 1000, on_conflict: str = "reject"
) -> Any:
    """Load a submission's spool entries in load order (the chord's body, on the writer)."""
    record = {"task_id": self.request.id, "ticket": ticket, "batch_size": batch_size, "on_conflict": on_conflict}
    return run_batch({**record, "outcomes": outcomes})


@app.task(name="toolkit.load", bind=True)
def load(self: Any, spool_id: str, *, ticket: float | None = None, batch_size: int = 1000, on_conflict: str = "reject") -> Any:
    """Load one spool entry; without a ticket it loads again even if it was loaded before."""
    spool = Spool(settings("spool"))
    outcome = {"file": spool.source(spool_id), "spool_id": spool_id}
    record = {"task_id": self.request.id, "ticket": ticket or redis_time(), "batch_size": batch_size, "on_conflict": on_conflict}
    return run_batch({**record, "outcomes": [outcome], "single": True})[0]


@app.task(name="toolkit.resume")
def resume() -> int:
    """Finish the batches a crashed writer left, and answer their submitters now."""
    claimed = Spool(settings("spool")).claimed()
    for record in claimed:
        outcomes = run_batch(record)
        app.backend.store_result(record["task_id"], outcomes[0] if record.get("single") else outcomes, states.SUCCESS)
    return len(claimed)


@worker_ready.connect
def _resume_on_start(sender: Any = None, **_: Any) -> None:
    # In the worker's main process: only enqueue (the pool child does the work, see the docstring).
    if sender is not None and WAREHOUSE_QUEUE in sender.app.amqp.queues.consume_from:
        resume.apply_async()


@celeryd_after_setup.connect
def _keep_running_tasks_quietly(**_: Any) -> None:
    # Running tasks are kept on a lost connection (see celery_config); Celery warns about that choice
    # at every connection loss whatever the setting says. Installed after Celery's own warning filters.
    warnings.filterwarnings(
        "ignore", message="(?s).*worker_cancel_long_running_tasks_on_connection_loss", category=CPendingDeprecationWarning
    )


# --- the writer --------------------------------------------------------------------------------


def run_batch(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Load the entries of ``record["outcomes"]`` in load order; outcomes in ``ingest_many``'s order."""
    spool, db = Spool(settings("spool")), settings("db")
    spool.claim(record["task_id"], record)
    try:
        outcomes: list[dict[str, Any]] = record["outcomes"]
        results: dict[int, dict[str, Any]] = {}
        tables: dict[int, str] = {}
        specs: dict[str, TableSpec] = {}
        for index, outcome in enumerate(outcomes):
            if "spool_id" not in outcome:
                results[index] = outcome
                continue
            try:
                spec = spool.read_spec(outcome["spool_id"])
            except SpoolError as exc:
                results[index] = _failed(outcome["file"], exc)
                continue
            specs.setdefault(spec.table, spec)
            tables[index] = spec.table
        queue = load_queue(tables, specs)
        with _Writer(db) as writer:
            for done, index in enumerate(queue):
                report = _reporter(record["task_id"], outcomes[index]["file"], done, len(queue))
                try:
                    results[index] = {"summary": _load_entry(spool, writer, outcomes[index]["spool_id"], record, report)}
                except (SchemaChangeError, SpoolError) as exc:  # this entry cannot load; the others may
                    results[index] = _failed(outcomes[index]["file"], exc)
                except WarehouseError as exc:  # the warehouse cannot be written: every file left fails with it
                    results.update({i: _failed(outcomes[i]["file"], exc) for i in queue[done:]})
                    break
    except Exception:
        spool.release(record["task_id"])  # a bug, not a crash: do not replay it at every start
        raise
    spool.release(record["task_id"])
    position = {index: n for n, index in enumerate(queue)}
    ranked = sorted(results, key=lambda i: position.get(i, i))
    return [results[i] for i in ranked]


def _load_entry(spool: Spool, writer: _Writer, entry: str, record: dict[str, Any], report: Callable[[Progress], None]) -> Any:
    done = spool.loaded(entry)
    if done is not None and done["database"] == writer.db and done["stamp"] >= record["ticket"]:
        return done["summary"]  # served already: a redelivery, or the same file submitted twice at once
    prepared = spool.read(entry)
    report(Progress(0, prepared.validated.accepted.height, 0, 0.0))
    summary = load_prepared(
        prepared, writer.open(), batch_size=record["batch_size"], on_conflict=record["on_conflict"], on_progress=report
    )
    # The run has committed; a crash before the next line costs a second run that skips every row.
    loaded = summary.to_dict()
    spool.mark_loaded(entry, {"stamp": _stamp(), "database": writer.db, "task_id": record["task_id"], "summary": loaded})
    return loaded


class _Writer:
    """The warehouse, opened on the first entry that needs it and closed after the batch, so
    readers (notebooks, reports) get the file between batches."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.warehouse: Warehouse | None = None

    def open(self) -> Warehouse:
        if self.warehouse is None:
            self.warehouse = Warehouse(self.db, wait=float(settings("warehouse_wait")))
        return self.warehouse

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.warehouse is not None:
            self.warehouse.close()


def _stamp() -> float:
    """When this load committed, on the tickets' clock (Redis); this host's clock if Redis stays away."""
    for _ in range(15):
        try:
            return redis_time()
        except ClusterError:
            time.sleep(2)
    log.warning("Redis unreachable for 30 s: the loaded marker carries this host's clock")
    return time.time()


def _reporter(task_id: str, file: str, done: int, total: int) -> Callable[[Progress], None]:
    last = [0.0]

    def report(progress: Progress) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5 and progress.rows_done < progress.rows_total:
            return  # at most two updates a second reach Redis
        last[0] = now
        meta = {"file": file, "done": done, "total": total, "rows_done": progress.rows_done, "rows_total": progress.rows_total}
        try:
            load_batch.update_state(task_id=task_id, state="PROGRESS", meta=meta)
        except (redis.RedisError, OSError):
            log.warning("progress of %s not reported: Redis unreachable; the load goes on", file)

    return report


def _failed(file: str, exc: ToolkitError) -> dict[str, Any]:
    return {"file": file, "error": str(exc), "kind": type(exc).__name__}


def run_worker(
    *,
    writer: bool = False,
    db: str | Path | None = None,
    spool: str | Path | None = None,
    broker: str | None = None,
    concurrency: int | None = None,
    loglevel: str = "INFO",
) -> None:
    """Run a worker in this process until it is stopped: a read worker, or with ``writer`` the
    warehouse writer (one pool process: DuckDB has one writer)."""
    if writer and concurrency not in (None, 1):
        raise ClusterError(f"the warehouse writer runs one process (DuckDB has one writer), not {concurrency}")
    configure(broker=broker, spool=spool, db=db if writer else None)
    redis_time()  # Redis down: one line now rather than a worker retrying forever
    if writer and not Path(settings("db")).parent.is_dir():
        raise WarehouseError(f"{settings('db')}: the warehouse's folder does not exist")
    role = "writer" if writer else "reader"
    app.worker_main(
        [
            "worker",
            f"--queues={WAREHOUSE_QUEUE if writer else READ_QUEUE}",
            f"--concurrency={1 if writer else concurrency or os.cpu_count() or 1}",
            f"--hostname={role}-{os.getpid()}@%h",
            f"--loglevel={loglevel}",
            "--pool=prefork",
            # no worker-to-worker chatter: nothing here needs it, and mingle costs seconds at start
            "--without-gossip",
            "--without-mingle",
        ]
    )
