"""Talking to the cluster: its settings, and submitting files (what the CLI and the notebook app call).

The workers' side is :mod:`toolkit.tasks`; this module holds no task code, so a submitter (a
laptop, the notebook app) needs only Celery's client and sends tasks by name. Settings come from
``TOOLKIT_*`` environment variables: ``TOOLKIT_BROKER_URL`` (Redis, broker and result store),
``TOOLKIT_SPOOL`` and ``TOOLKIT_DB`` (the workers'), ``TOOLKIT_VISIBILITY_TIMEOUT`` and
``TOOLKIT_WAREHOUSE_WAIT`` (seconds): see ``_VARIABLES``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import kombu.exceptions
import redis
from celery import Celery, chord, states
from celery.backends.redis import RedisBackend
from kombu.utils.url import maybe_sanitize_url

from toolkit import errors
from toolkit.errors import ClusterError, ToolkitError
from toolkit.limits import DEFAULT_MAX_CELLS, DEFAULT_MAX_UNCOMPRESSED_BYTES
from toolkit.specs import TableSpec, load_specs
from toolkit.spool import Spool, encode
from toolkit.summary import IngestSummary

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
READ_QUEUE, WAREHOUSE_QUEUE = "toolkit", "warehouse"
WRITER_TASKS = ("toolkit.load", "toolkit.load_batch", "toolkit.resume")


_VARIABLES = {
    "broker": ("TOOLKIT_BROKER_URL", DEFAULT_BROKER),
    "spool": ("TOOLKIT_SPOOL", "spool"),
    "db": ("TOOLKIT_DB", "warehouse.duckdb"),
    "visibility_timeout": ("TOOLKIT_VISIBILITY_TIMEOUT", "3600"),  # seconds
    "warehouse_wait": ("TOOLKIT_WAREHOUSE_WAIT", "60"),  # seconds the writer waits for a busy warehouse
}


def settings(name: str) -> str:
    """This process's setting ``name`` (a key of ``_VARIABLES``), from its variable or the default."""
    variable, default = _VARIABLES[name]
    return os.environ.get(variable, default)


def celery_config(broker: str) -> dict[str, Any]:
    # A message is redelivered this long after a worker took it without acknowledging (a killed
    # worker); tasks that run longer are delivered twice, which the spool and the tickets absorb.
    visibility = float(settings("visibility_timeout"))
    return {
        "broker_url": broker,
        "result_backend": broker,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,  # acknowledged when done: a task whose worker died runs again
        "task_reject_on_worker_lost": True,  # a killed pool process requeues its task at once
        "worker_prefetch_multiplier": 1,  # a worker holds only what it runs: no file waits behind a busy one
        "task_track_started": True,
        "task_default_queue": READ_QUEUE,
        "task_routes": {name: {"queue": WAREHOUSE_QUEUE} for name in WRITER_TASKS},
        # Workers sweep Redis for such messages every few seconds (kombu's default is ~100 s).
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "unacked_restore_interval": max(1, min(10, round(visibility / 10))),
            "unacked_restore_throttle": 1,
        },
        "broker_connection_retry_on_startup": True,
        # On losing Redis, running tasks go on (a load does not need Redis until it reports); Celery's
        # other choice terminates them mid-load, and a task terminated while Redis is down is lost.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "result_expires": 7 * 24 * 3600,
        "redis_socket_connect_timeout": 5,
    }


def redis_time(broker: str | None = None) -> float:
    """The Redis server's clock (seconds): the one clock submitters and the writer share."""
    url = broker or settings("broker")
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    try:
        reply: Any = client.time()  # typed for the asyncio client too; this one answers (seconds, micros)
    except redis.RedisError as exc:
        raise ClusterError(
            f"{maybe_sanitize_url(url)}: cannot reach the task queue ({exc}); start Redis or pass --broker URL"
        ) from exc
    finally:
        client.close()
    return float(reply[0]) + reply[1] / 1e6


# --- submitting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmissionProgress:
    """Where a submission is: files read so far, then the file being loaded and its rows."""

    files: int
    read: int
    state: str  # PENDING (waiting for the writer), STARTED, PROGRESS (loading), SUCCESS, FAILURE
    loading: str | None = None
    loaded: int = 0
    to_load: int = 0
    rows_done: int = 0
    rows_total: int = 0


class Submission:
    """Files submitted to the cluster; ``summaries()`` waits for their outcome."""

    def __init__(self, result: Any, files: Sequence[str], failed: dict[int, ToolkitError]) -> None:
        self._result = result
        self.files = tuple(files)
        self._failed = failed  # files that could not even be submitted (staging), by position

    @property
    def id(self) -> str:
        return str(self._result.id) if self._result is not None else ""

    def __repr__(self) -> str:
        return f"<Submission {self.id} ({len(self.files)} files)>"

    def ready(self) -> bool:
        return self._result is None or bool(self._result.ready())

    def progress(self) -> SubmissionProgress:
        if self._result is None:
            return SubmissionProgress(len(self.files), len(self.files), states.SUCCESS)
        state, info = self._result.state, self._result.info
        if state == "PROGRESS" and isinstance(info, dict):
            return SubmissionProgress(
                len(self.files), len(self.files), state, Path(info["file"]).name, info["done"], info["total"],
                info["rows_done"], info["rows_total"],
            )  # fmt: skip
        if state in states.READY_STATES:
            return SubmissionProgress(len(self.files), len(self.files), state)
        header = self._result.parent
        read = header.completed_count() if header is not None else 0
        return SubmissionProgress(len(self.files), read + len(self._failed), state)

    def summaries(
        self,
        *,
        timeout: float = 3600.0,
        on_progress: Callable[[SubmissionProgress], None] | None = None,
        poll: float = 0.25,
    ) -> list[IngestSummary | ToolkitError]:
        """Wait (at most ``timeout`` seconds) and return what ``ingest_many`` would: a summary per
        loaded sheet in load order, the error of each bad file where it was given."""
        outcomes = self._wait(timeout, on_progress, poll) if self._result is not None else []
        results: list[IngestSummary | ToolkitError] = [_outcome(o) for o in outcomes]
        for index in sorted(self._failed):
            results.insert(index, self._failed[index])
        return results

    def _wait(self, timeout: float, on_progress: Callable[[SubmissionProgress], None] | None, poll: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if on_progress is not None:
                    on_progress(self.progress())
                if self._result.ready():
                    break
            except (redis.RedisError, kombu.exceptions.OperationalError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(f"lost the task queue while waiting for submission {self.id} ({exc})") from exc
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"submission {self.id}: not finished after {timeout:g} s; are the read workers and the writer running "
                    "(python -m toolkit worker, python -m toolkit worker --warehouse)?"
                )
            time.sleep(poll)
        # Read the stored result rather than get(): get() subscribes to Redis, and an unfinished
        # subscription is torn down noisily when the interpreter exits.
        value, state = self._result.result, self._result.state
        if state != states.SUCCESS:
            raise RuntimeError(f"submission {self.id} ended {state} on a worker: {value!r}")
        return list(value)


def submit(
    paths: Iterable[str | Path],
    *,
    table: str | None = None,
    sheet: str | int | None = None,
    header_row: int | None = None,
    spec_paths: Sequence[str | Path] = (),
    specs: Mapping[str, TableSpec] | None = None,
    batch_size: int = 1000,
    on_conflict: str = "reject",
    broker: str | None = None,
    spool: str | Path | None = None,
    max_cells: int = DEFAULT_MAX_CELLS,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> Submission:
    """Enqueue files for the cluster: read on any worker, loaded by the writer in load order.

    ``spool``: the spool folder as this machine sees it; the files are copied into it for workers
    that cannot see them where they are. Without it the workers read the given paths (made
    absolute), which must be on a share every worker sees at the same path. Spec files are read
    here and travel with the tasks, so a bad spec fails now and workers need no copy of it;
    ``specs`` (specs already loaded, as the notebook app holds them) travel the same way.
    ``max_cells`` and ``max_uncompressed_bytes``: the read workers' caps, as for ``ingest``.
    """
    url = broker or settings("broker")
    if specs is not None and spec_paths:
        raise ValueError("give specs or spec_paths, not both")
    chosen = specs if specs is not None else load_specs(spec_paths) if spec_paths else None
    encoded = encode(chosen) if chosen is not None else None
    staging = Spool(spool) if spool is not None else None
    files: list[str] = []
    sent: list[tuple[str, bool]] = []
    failed: dict[int, ToolkitError] = {}
    for index, path in enumerate(paths):
        files.append(str(path))
        try:
            sent.append((staging.stage(path), True) if staging else (str(Path(path).resolve()), False))
        except ToolkitError as exc:
            failed[index] = exc
    # What the read workers need; the batch size and the conflict policy are the writer's (the body).
    read = {
        "table": table,
        "sheet": sheet,
        "header_row": header_row,
        "max_cells": max_cells,
        "max_uncompressed_bytes": max_uncompressed_bytes,
    }
    result = None
    if sent:
        client = _client(url)
        ticket = redis_time(url)
        header = [
            client.signature("toolkit.ingest_file", args=(path,), kwargs={**read, "specs": encoded, "staged": staged})
            for path, staged in sent
        ]
        body = client.signature(
            "toolkit.load_batch", kwargs={"ticket": ticket, "batch_size": batch_size, "on_conflict": on_conflict}
        )
        result = _publish(lambda: chord(header, body).apply_async(), url)
    return Submission(result, files, failed)


class PollingRedisBackend(RedisBackend):
    """The submitter's result backend: it polls, never subscribes. (Celery subscribes to a task's
    result when sending it; a subscription still open when Python exits is torn down noisily.)"""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        pass

    def add_pending_result(self, result: Any, weak: bool = False, start_drainer: bool = True) -> Any:
        return result  # no waiting by subscription here: Submission polls the stored state


@lru_cache(maxsize=8)
def _client(broker: str) -> Celery:
    """A Celery app for submitting to ``broker`` (tasks are sent by name: no worker code needed)."""
    client = Celery("toolkit-client")
    client.conf.update(celery_config(broker), result_backend=f"{__name__}:PollingRedisBackend+{broker}")
    return client


def _publish(send: Callable[[], Any], url: str) -> Any:
    try:
        return send()
    except (kombu.exceptions.OperationalError, OSError) as exc:
        raise ClusterError(f"{maybe_sanitize_url(url)}: cannot enqueue the files ({exc}); is Redis running?") from exc


def _outcome(data: dict[str, Any]) -> IngestSummary | ToolkitError:
    if "summary" in data:
        return IngestSummary.from_dict(data["summary"])
    kind = getattr(errors, str(data.get("kind")), None)
    if not (isinstance(kind, type) and issubclass(kind, ToolkitError)):
        kind = errors.BadInputError
    return kind(data["error"])
