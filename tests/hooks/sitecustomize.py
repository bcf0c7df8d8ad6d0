"""Test-only: SIGKILL this process at a chosen point of a load (see tests/test_faults.py).

Put on PYTHONPATH of a child process only; Python imports ``sitecustomize`` at startup. The point
comes from ``TOOLKIT_TEST_KILL``, read here and never by the toolkit:

    batch:N        just before the Nth batch of Warehouse.load commits (batch N)
    finish_run:1   just before finish_run's transaction commits (every batch committed)
    completed:1    right after finish_run returns (the run is recorded as completed)
"""

from __future__ import annotations

import functools
import os
import signal
from typing import Any

_POINT = os.environ.get("TOOLKIT_TEST_KILL")


def _install(point: str) -> None:
    from toolkit import load

    where, _, nth = point.partition(":")
    state: dict[str, Any] = {"inside": None, "commits": 0}

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def inside(name: str, method: Any) -> Any:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            state["inside"] = name
            try:
                result = method(self, *args, **kwargs)
            finally:
                state["inside"] = None
            if where == "completed" and name == "finish_run":
                die()
            return result

        return wrapper

    class Killing:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __enter__(self) -> Any:
            return self.inner.__enter__()

        def __exit__(self, kind: Any, value: Any, traceback: Any) -> Any:
            if kind is None and state["inside"] == where:
                state["commits"] += 1
                if state["commits"] == int(nth):
                    die()
            return self.inner.__exit__(kind, value, traceback)

    transaction = load.Warehouse.transaction

    @functools.wraps(transaction)
    def killing_transaction(self: Any, *args: Any, **kwargs: Any) -> Any:
        return Killing(transaction(self, *args, **kwargs))

    commit_batch = load.Warehouse._commit_batch

    @functools.wraps(commit_batch)
    def killing_commit_batch(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Batches judged up front commit here, on the load's committer thread.
        if where == "batch":
            state["commits"] += 1
            if state["commits"] == int(nth):
                die()
        return commit_batch(self, *args, **kwargs)

    load.Warehouse.transaction = killing_transaction
    load.Warehouse._commit_batch = killing_commit_batch
    load.Warehouse.load = inside("batch", load.Warehouse.load)
    load.Warehouse.finish_run = inside("finish_run", load.Warehouse.finish_run)


if _POINT:
    _install(_POINT)
