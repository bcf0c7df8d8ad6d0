"""Worker processes for ingest_many: results, a worker that dies, a bug, the caller's script."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CUSTOMER_HEADERS, ROOT, customer, write_workbook
from toolkit.errors import HeaderError, UnreadableFileError
from toolkit.workers import Pool, WorkerError, _Worker


def square(value: int) -> int:
    return value * value


def die_on(value: int) -> int:
    if value == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # as a reader crash would take the process down
    return value


def refuse(value: int) -> int:
    if value == 2:
        raise HeaderError(f"file {value}: no table spec matches the headers")
    if value == 4:
        raise ZeroDivisionError("a bug")
    return value


def niceness() -> int:
    return os.nice(0)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="process priorities are POSIX")
@pytest.mark.parametrize(("niced", "added"), [(True, 10), (False, 0)], ids=["readers: lower", "a helper: the same"])
def test_workers_read_at_a_lower_priority_than_the_writer_unless_told_not_to(niced: bool, added: int) -> None:
    with Pool(1, niceness, niced=niced) as pool:
        [(_, found)] = pool.run([("job", ())])

    assert found == min(os.nice(0) + added, 19)


def blas_threads() -> str | None:
    return os.environ.get("OPENBLAS_NUM_THREADS")


@pytest.mark.parametrize(("ours", "theirs"), [(None, "1"), ("4", "4")], ids=["unset: one", "set: kept"])
def test_workers_start_no_blas_thread_pool_unless_told_to(monkeypatch: pytest.MonkeyPatch, ours: str | None, theirs: str) -> None:
    if ours is None:
        monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", ours)

    with Pool(1, blas_threads) as pool:
        [(_, found)] = pool.run([("job", ())])

    assert found == theirs


def test_every_job_comes_back_with_its_index() -> None:
    with Pool(2, square) as pool:
        results = dict(pool.run([(f"job {n}", (n,)) for n in range(10)]))

    assert results == {n: n * n for n in range(10)}


def test_a_worker_that_dies_costs_only_its_job() -> None:
    with Pool(2, die_on) as pool:
        results = dict(pool.run([(f"file{n}.xlsx", (n,)) for n in range(6)]))

    crashed = results.pop(3)
    assert isinstance(crashed, UnreadableFileError)
    assert str(crashed).startswith("file3.xlsx: the reader crashed on this file")
    assert results == {0: 0, 1: 1, 2: 2, 4: 4, 5: 5}


def test_a_worker_that_died_while_idle_is_replaced_and_its_job_still_runs() -> None:
    with Pool(2, square) as pool:
        dead = pool.workers[0]
        dead.process.kill()
        dead.process.wait()
        results = dict(pool.run([(f"job {n}", (n,)) for n in range(5)]))
        workers = list(pool.workers)

    assert results == {n: n * n for n in range(5)}
    assert dead not in workers and all(w.process.returncode == 0 for w in workers)


def test_workers_that_end_as_they_start_raise_instead_of_being_replaced_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    def stillborn() -> _Worker:
        process = subprocess.Popen([sys.executable, "-c", ""], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        process.wait()
        return _Worker(process)

    monkeypatch.setattr(Pool, "_start", staticmethod(stillborn))
    with Pool(1, square) as pool, pytest.raises(WorkerError, match="job 0: a new worker process ended before its first job"):
        list(pool.run([("job 0", (0,))]))


def test_toolkit_errors_come_back_as_results_and_a_bug_raises_with_its_traceback() -> None:
    with Pool(1, refuse) as pool:
        results = pool.run([(f"file{n}", (n,)) for n in range(6)])
        assert next(results) == (0, 0)
        assert next(results) == (1, 1)
        index, error = next(results)
        assert index == 2 and isinstance(error, HeaderError)
        assert next(results) == (3, 3)
        with pytest.raises(WorkerError, match=r"(?s)file4: unexpected ZeroDivisionError: a bug.*Traceback"):
            next(results)


def test_a_script_without_a_main_guard_is_not_run_again_by_the_workers(tmp_path: Path) -> None:
    # multiprocessing's spawn would import the caller's script in every worker and start it over.
    books = [write_workbook(tmp_path / f"c{n}.xlsx", [CUSTOMER_HEADERS, customer(n)]) for n in (1, 2, 3)]
    script = tmp_path / "load.py"
    script.write_text(
        "import toolkit\n"
        "print('started', flush=True)\n"
        f"outcomes = toolkit.ingest_many({[str(b) for b in books]!r}, db={str(tmp_path / 'w.duckdb')!r}, workers=2)\n"
        "print(sum(o.inserted for o in outcomes))\n",
        encoding="utf-8",
    )

    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["started", "3"]
