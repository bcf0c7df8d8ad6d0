"""Worker processes that read and validate workbooks for ``ingest_many``.

Each worker is ``python -m toolkit._worker``: a fresh interpreter that imports the toolkit and
nothing of the caller. ``multiprocessing`` would re-run the caller's script in every worker
(``spawn``; a script without an ``if __name__ == "__main__"`` guard then starts again) or copy
the caller's thread pools half-alive (``fork``; polars and DuckDB deadlock in the child). Jobs
and results travel as pickles over the worker's stdin and stdout, one length-prefixed frame
each. A worker that dies (a reader crash takes the process down) costs only its file, which
gets an error of its own; the other workers carry on.
"""

from __future__ import annotations

import os
import pickle
import queue
import selectors
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from toolkit.errors import ToolkitError, UnreadableFileError

_LENGTH = struct.Struct("!Q")

#: The ``nice`` increment of a worker reading for ``ingest_many`` (why: ``toolkit._worker``).
READER_NICENESS = 10


def _write_frame(stream: IO[bytes], payload: object) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> Any:
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError
    (size,) = _LENGTH.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 - frames come from our own child process


@dataclass(frozen=True)
class _Failure:
    """A job that raised something other than a ToolkitError: a bug, reported as one."""

    kind: str
    message: str
    traceback: str


class WorkerError(RuntimeError):
    """A job raised an unexpected error in a worker process (its traceback is in the message)."""


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    job: tuple[int, str] | None = None  # (index, file name) of the job it runs


class Pool:
    """``size`` worker processes running ``function(*args)`` jobs; results come back as ready."""

    def __init__(self, size: int, function: Callable[..., object], *, niced: bool = True) -> None:
        """``niced``: workers run at a lower priority than the caller (see ``toolkit._worker``)."""
        self.function = f"{function.__module__}:{function.__qualname__}"
        self.niced = niced
        self.workers = [self._start() for _ in range(size)]

    def _start(self) -> _Worker:
        command = [sys.executable, "-m", "toolkit._worker", *([] if self.niced else ["--keep-priority"])]
        # A reader does no linear algebra, but numpy (pyarrow imports it) starts OpenBLAS's thread
        # pool, whose threads spin for ~0.1 CPU-second after the import (one-off timing): CPU the
        # writer and the other readers need. With one BLAS thread there is no pool. A value the
        # caller set is kept.
        env = os.environ.copy()
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        return _Worker(subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env))

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for worker in self.workers:
            if worker.process.stdin and not worker.process.stdin.closed:
                try:
                    worker.process.stdin.close()  # EOF: the worker exits after its job
                except BrokenPipeError:
                    pass
        for worker in self.workers:
            try:
                worker.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            if worker.process.stdout:
                worker.process.stdout.close()

    def run(self, jobs: list[tuple[str, tuple[object, ...]]]) -> Iterator[tuple[int, object]]:
        """(index, result) for each job, in the order they finish; ``jobs`` are (label, args).

        A job whose worker died yields an :class:`UnreadableFileError` naming its label. Results
        are collected on a thread, so workers go on to their next job while the caller is busy
        with a result (loading it, say); at most ``2 × size`` results wait to be taken.
        """
        ready: queue.Queue[tuple[int, object] | BaseException | None] = queue.Queue(maxsize=2 * len(self.workers))
        stop = threading.Event()

        def drive() -> None:
            try:
                for item in self._results(jobs):
                    while not stop.is_set():
                        try:
                            ready.put(item, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                ready.put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread and raised there
                ready.put(exc)

        thread = threading.Thread(target=drive, name="toolkit-workers", daemon=True)
        thread.start()
        try:
            while (item := ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join(timeout=5)

    def _results(self, jobs: list[tuple[str, tuple[object, ...]]]) -> Iterator[tuple[int, object]]:
        pending = list(enumerate(jobs))[::-1]
        selector = selectors.DefaultSelector()
        busy = 0

        def give(worker: _Worker, *, fresh: bool = False) -> None:
            nonlocal busy
            if not pending:
                return
            item = pending.pop()
            if self._give(worker, item):
                selector.register(worker.process.stdout, selectors.EVENT_READ, worker)  # type: ignore[arg-type]
                busy += 1
                return
            # The worker died while idle: its job goes back and a fresh worker takes its place.
            pending.append(item)
            if fresh:  # a worker that cannot take even its first job: another would not either
                raise WorkerError(f"{item[1][0]}: a new worker process ended before its first job")
            give(self._replace(worker)[0], fresh=True)

        try:
            for worker in self.workers:
                give(worker)
            while busy:
                for key, _ in selector.select():
                    worker = key.data
                    assert worker.job is not None and worker.process.stdout is not None
                    index, label = worker.job
                    worker.job = None
                    selector.unregister(worker.process.stdout)
                    busy -= 1
                    try:
                        result = _read_frame(worker.process.stdout)
                    except (EOFError, OSError, pickle.UnpicklingError):
                        worker, code = self._replace(worker)
                        give(worker, fresh=True)
                        yield index, UnreadableFileError(
                            f"{label}: the reader crashed on this file (its worker process ended with status {code}); "
                            "it is probably corrupt"
                        )
                        continue
                    give(worker)  # before handing the result on: the worker starts its next job now
                    if isinstance(result, _Failure):
                        raise WorkerError(f"{label}: unexpected {result.kind}: {result.message}\n{result.traceback}")
                    yield index, result
        finally:
            selector.close()

    def _replace(self, worker: _Worker) -> tuple[_Worker, int]:
        """(a fresh worker in the dead one's place, the dead one's exit status): the other jobs still run."""
        code = worker.process.wait()
        for pipe in (worker.process.stdin, worker.process.stdout):
            try:
                if pipe:
                    pipe.close()
            except OSError:
                pass  # the dead worker's end is gone already
        fresh = self._start()
        self.workers[self.workers.index(worker)] = fresh
        return fresh, code

    def _give(self, worker: _Worker, item: tuple[int, tuple[str, tuple[object, ...]]]) -> bool:
        index, (label, args) = item
        assert worker.process.stdin is not None
        try:
            _write_frame(worker.process.stdin, (self.function, args))
        except (BrokenPipeError, OSError):
            return False
        worker.job = (index, label)
        return True


def serve() -> None:
    """The worker's loop: read a job, run it, write its result; until stdin closes."""
    import importlib

    source, sink = sys.stdin.buffer, sys.stdout.buffer
    # Anything a job prints goes to stderr, never into the result stream.
    sys.stdout = sys.stderr
    while True:
        try:
            target, args = _read_frame(source)
        except EOFError:
            return
        module, name = target.split(":")
        function = getattr(importlib.import_module(module), name)
        try:
            result = function(*args)
        except ToolkitError as exc:
            result = exc
        except Exception as exc:  # noqa: BLE001 - a bug: sent back whole, raised in the caller
            result = _Failure(type(exc).__name__, str(exc), traceback.format_exc())
        _write_frame(sink, result)
