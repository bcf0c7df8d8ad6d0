"""What each benchmark method does, run inside a fresh child process.

    python -m benchmarks.methods METHOD '{"paths": [...], "db": "...", ...}'

prints one JSON line: ``seconds`` (the work alone: after imports, before exit), ``cpu_seconds``
(the CPU time of that work, worker processes included) and method details. Imports happen
before the clock starts, so start-up is not counted against anyone; the parent measures the
whole process (wall time and peak RSS) as well.
"""

from __future__ import annotations

import io
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

Args = dict[str, Any]


def bare_typed(args: Args) -> Args:
    """The floor: fastexcel's default typed read into polars."""
    import fastexcel
    import polars  # noqa: F401 - imported before the clock starts: fastexcel imports it lazily
    import pyarrow  # noqa: F401

    clock = _Clock()
    frame = fastexcel.read_excel(args["paths"][0]).load_sheet(0).to_polars()
    return {**clock.read(), "rows": frame.height}


def bare_text(args: Args) -> Args:
    """fastexcel reading every cell as text, as the toolkit needs to quote cells as found."""
    import fastexcel
    import polars  # noqa: F401
    import pyarrow  # noqa: F401

    clock = _Clock()
    frame = fastexcel.read_excel(args["paths"][0]).load_sheet(0, dtypes="string").to_polars()
    return {**clock.read(), "rows": frame.height}


def pandas_openpyxl(args: Args) -> Args:
    import openpyxl  # noqa: F401 - imported before the clock starts: pandas imports it lazily
    import pandas as pd

    clock = _Clock()
    frame = pd.read_excel(args["paths"][0], engine="openpyxl")
    return {**clock.read(), "rows": len(frame)}


def original(args: Args) -> Args:
    import openpyxl  # noqa: F401
    import pandas  # noqa: F401

    from benchmarks import original as design

    clock = _Clock()
    counts = design.ingest(Path(args["paths"][0]), Path(args["db"]))
    return {**clock.read(), **counts}


def toolkit_prepare(args: Args) -> Args:
    """``toolkit.prepare`` of one file: read and validate, no warehouse (the load's input)."""
    import toolkit

    clock = _Clock()
    prepared = toolkit.prepare(args["paths"][0])
    timed = clock.read()
    validated = prepared.validated
    return {**timed, "total": validated.raw.height, "failed": validated.rejected.height}


def toolkit_one(args: Args) -> Args:
    """``toolkit.ingest`` of one file, with the CLI's progress bar drawn into a buffer and timed."""
    import toolkit
    from toolkit.cli import _progress_bar

    meter = _ProgressMeter(_progress_bar)
    clock = _Clock()
    summary = toolkit.ingest(args["paths"][0], db=args["db"], batch_size=args["batch_size"], on_progress=meter)
    timed = clock.read()
    counts = {k: summary.to_dict()[k] for k in ("total", "failed", "inserted", "skipped")}
    return {**timed, "progress_seconds": meter.seconds, "progress_calls": meter.calls, **counts}


def toolkit_many(args: Args) -> Args:
    """``toolkit.ingest_many``: every file in one command."""
    import toolkit

    clock = _Clock()
    outcomes = toolkit.ingest_many(args["paths"], db=args["db"], batch_size=args["batch_size"])
    timed = clock.read()
    return {**timed, **_totals(outcomes)}


def toolkit_sequential(args: Args) -> Args:
    """``toolkit.ingest`` once per file, one after another, in the same process."""
    import toolkit

    clock = _Clock()
    outcomes = [toolkit.ingest(path, db=args["db"], batch_size=args["batch_size"]) for path in args["paths"]]
    timed = clock.read()
    return {**timed, **_totals(outcomes)}


def toolkit_threads(args: Args) -> Args:
    """Every file in one command as ``ingest_many`` does it, but read and validated in threads of
    this process instead of worker processes: no worker start-up, no pickled results, and no
    isolation (a reader that exhausts memory or aborts takes every file down). Not a way the
    toolkit works: the bound against which the worker processes' overhead is measured."""
    import toolkit
    from toolkit.ingest import _worker_count, load_prepared
    from toolkit.load import Warehouse

    paths = [Path(p) for p in args["paths"]]
    clock = _Clock()
    # As many readers as ingest_many starts workers, at the workers' lower priority (a thread's own
    # niceness, on Linux); the files are all loans, so they load in the order given, as there.
    with (
        ThreadPoolExecutor(_worker_count(None, paths), initializer=_lower_priority) as readers,
        Warehouse(args["db"]) as warehouse,
    ):
        reading = [readers.submit(toolkit.prepare, path, read_processes=1) for path in paths]
        outcomes = [load_prepared(read.result(), warehouse, batch_size=args["batch_size"]) for read in reading]
    timed = clock.read()
    return {**timed, **_totals(outcomes)}


def _lower_priority() -> None:
    from toolkit.workers import READER_NICENESS

    if sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), READER_NICENESS)


def _totals(outcomes: list[Any]) -> Args:
    import toolkit

    summaries = [o for o in outcomes if isinstance(o, toolkit.IngestSummary)]
    if len(summaries) != len(outcomes):
        raise RuntimeError(f"a file failed: {outcomes}")
    return {k: sum(s.to_dict()[k] for s in summaries) for k in ("total", "failed", "inserted", "skipped")}


class _Clock:
    """Wall and CPU time of the work from here to ``read()``."""

    def __init__(self) -> None:
        self.started, self.cpu_started = time.perf_counter(), _cpu_seconds()

    def read(self) -> Args:
        seconds = time.perf_counter() - self.started
        # The helper process that read half of a large sheet exits on its own once its work is
        # done, nothing waiting for it (toolkit.read): its CPU counts once it has been waited for.
        reader = sys.modules.get("toolkit.read")  # not imported by the methods that are not the toolkit
        for thread in threading.enumerate() if reader is not None else []:
            if thread.name == reader.HELPER_EXIT_THREAD:
                thread.join()
        return {"seconds": seconds, "cpu_seconds": _cpu_seconds() - self.cpu_started}


class _ProgressMeter:
    """Calls the progress renderer (writing to a buffer, not a terminal) and adds up its cost."""

    def __init__(self, render: Callable[[Any], None]) -> None:
        self.render = render
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, progress: Any) -> None:
        start = time.perf_counter()
        saved, sys.stderr = sys.stderr, io.StringIO()
        try:
            self.render(progress)
        finally:
            sys.stderr = saved
        self.seconds += time.perf_counter() - start
        self.calls += 1


METHODS: dict[str, Callable[[Args], Args]] = {
    "bare_typed": bare_typed,
    "bare_text": bare_text,
    "pandas_openpyxl": pandas_openpyxl,
    "original": original,
    "toolkit_prepare": toolkit_prepare,
    "toolkit_one": toolkit_one,
    "toolkit_many": toolkit_many,
    "toolkit_sequential": toolkit_sequential,
    "toolkit_threads": toolkit_threads,
}


def _cpu_seconds() -> float:
    """User + system CPU of this process and of the children it has waited for (ingest_many's
    workers are waited for before it returns)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    name, raw = sys.argv[1], sys.argv[2]
    result = METHODS[name](json.loads(raw))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
