"""Faults during a load, for real: a full disk, and SIGKILL at several points (issue 6).

Each runs ``python -m toolkit ingest`` in a child process, then checks that the warehouse opens,
holds exactly the committed batches, and that a re-run gives exactly what a clean run gives.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import toolkit
from tests.conftest import CUSTOMER_HEADERS, customer, query, warehouse_rows, write_workbook

HOOKS = Path(__file__).parent / "hooks"  # sitecustomize.py: SIGKILL at a chosen point


def ingest(
    *args: str | Path, cwd: Path, kill_at: str | None = None, preexec: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    root = str(Path(toolkit.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HOOKS), root] if kill_at else [root])}
    env.pop("TOOLKIT_DEBUG", None)
    env.pop("TOOLKIT_TEST_KILL", None)
    if kill_at:
        env["TOOLKIT_TEST_KILL"] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "toolkit", "ingest", *map(str, args), "--quiet"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec,
    )


def rejects(db: Path, run_id: str) -> list[tuple[Any, ...]]:
    return query(db, f"SELECT source_row, stage, reasons FROM _rejects WHERE run_id = '{run_id}' ORDER BY ALL")


def last_run(db: Path) -> str:
    return str(query(db, "SELECT run_id FROM _runs ORDER BY started_at DESC LIMIT 1")[0][0])


# --- a full disk -------------------------------------------------------------------------------

FAT = 3000  # customers with 2 KB names: about 6 MB of rows, twice what the small disk holds


def fat_customers(folder: Path) -> Path:
    rows = [customer(i, First_Name=f"{i:05d}" + "x" * 2000) for i in range(1, FAT + 1)]
    return write_workbook(folder / "fat.xlsx", [CUSTOMER_HEADERS, *rows])


class SmallDisk:
    """A 3 MiB tmpfs mounted for the test (needs root); freeing space grows it to 64 MiB."""

    reason = "the disk is full (No space left on device)"

    def __init__(self, tmp_path: Path) -> None:
        self.folder = tmp_path / "disk"
        self.folder.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root; the file-size-limit variant covers this")
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(self.folder)], capture_output=True, text=True
        )
        if mounted.returncode:
            pytest.skip(f"mount is not permitted here ({mounted.stderr.strip()}); the file-size-limit variant covers this")
        self.db = self.folder / "w.duckdb"

    def run_full(self, book: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
        return ingest(book, "--db", self.db, "--batch-size", "100", cwd=cwd)

    def free(self) -> None:
        subprocess.run(["mount", "-o", "remount,size=64m", str(self.folder)], check=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.folder)], check=False)


class FileSizeLimit:
    """RLIMIT_FSIZE of 3 MiB in the child, SIGXFSZ ignored so writes fail with EFBIG."""

    reason = "the file size limit is reached (File too large)"

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "w.duckdb"

    def run_full(self, book: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
        def limit() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (3 * 1024**2, 3 * 1024**2))

        return ingest(book, "--db", self.db, "--batch-size", "100", cwd=cwd, preexec=limit)

    def free(self) -> None:
        pass  # the next run has no limit

    def close(self) -> None:
        pass


@pytest.fixture(params=[SmallDisk, FileSizeLimit], ids=["small tmpfs", "RLIMIT_FSIZE"])
def full_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SmallDisk | FileSizeLimit]:
    disk = request.param(tmp_path)
    try:
        yield disk
    finally:
        disk.close()


@pytest.mark.slow
def test_a_full_disk_fails_with_one_line_and_keeps_the_warehouse_consistent(
    full_disk: SmallDisk | FileSizeLimit, tmp_path: Path
) -> None:
    book, db = fat_customers(tmp_path), full_disk.db

    result = full_disk.run_full(book, tmp_path)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    found = re.fullmatch(
        rf"error: {re.escape(str(db))}: {re.escape(full_disk.reason)} after ([\d,]+) rows; "
        "committed batches are kept, free space and re-run",
        line,
    )
    assert found, line
    committed = int(found[1].replace(",", ""))
    assert 0 < committed < FAT and committed % 100 == 0
    # The warehouse opens and holds exactly the committed batches; the run is not completed.
    assert query(db, "SELECT count(*), max(customer_id) FROM customers") == [(committed, committed)]
    assert query(db, "SELECT status, finished_at FROM _runs") == [("running", None)]

    full_disk.free()
    rerun = ingest(book, "--db", db, "--json", cwd=tmp_path)

    assert rerun.returncode == 0, rerun.stderr
    [summary] = [json.loads(line) for line in rerun.stdout.splitlines()]
    assert (summary["inserted"], summary["skipped"], summary["failed"]) == (FAT - committed, committed, 0)
    assert query(db, "SELECT status FROM _runs ORDER BY started_at") == [("interrupted",), ("completed",)]
    clean = tmp_path / "clean.duckdb"
    toolkit.ingest(book, db=clean)
    assert warehouse_rows(db, "customers") == warehouse_rows(clean, "customers")


# --- SIGKILL at several points -----------------------------------------------------------------

ROWS, BATCH = 300, 50
BAD = {7, 120, 299}  # rows rejected by validation (recorded when the run starts)
ACCEPTED = ROWS - len(BAD)
BATCHES = -(-ACCEPTED // BATCH)

# point -> (TOOLKIT_TEST_KILL, accepted rows committed when killed, status of the killed run after the re-run)
KILL_POINTS = {
    "before the first batch commits": ("batch:1", 0, "interrupted"),
    "mid-load": ("batch:4", 3 * BATCH, "interrupted"),
    "during the last batch": (f"batch:{BATCHES}", (BATCHES - 1) * BATCH, "interrupted"),
    "in finish_run": ("finish_run:1", ACCEPTED, "interrupted"),
    "right after completion": ("completed:1", ACCEPTED, "completed"),
}


@pytest.fixture(scope="module")
def kill_book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The workbook, and a warehouse loaded from it by a clean run."""
    folder = tmp_path_factory.mktemp("kill")
    rows = [customer(i, Age="old") if i in BAD else customer(i) for i in range(1, ROWS + 1)]
    book = write_workbook(folder / "customers.xlsx", [CUSTOMER_HEADERS, *rows])
    clean = folder / "clean.duckdb"
    toolkit.ingest(book, db=clean, batch_size=BATCH)
    return book, clean


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_run_killed_at_any_point_is_completed_by_a_rerun_with_exactly_the_rows_of_a_clean_run(
    kill_book: tuple[Path, Path], tmp_path: Path, point: str
) -> None:
    book, clean = kill_book
    kill_at, committed, status = KILL_POINTS[point]
    db = tmp_path / "w.duckdb"

    killed = ingest(book, "--db", db, "--batch-size", str(BATCH), cwd=tmp_path, kill_at=kill_at)

    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    assert query(db, "SELECT count(*) FROM customers") == [(committed,)]
    assert query(db, "SELECT status FROM _runs") == [("completed" if status == "completed" else "running",)]

    rerun = ingest(book, "--db", db, "--json", cwd=tmp_path)

    assert rerun.returncode == 0, rerun.stderr
    [summary] = [json.loads(line) for line in rerun.stdout.splitlines()]
    assert summary["total"] == summary["success"] + summary["failed"]
    assert summary["success"] == summary["inserted"] + summary["skipped"] + summary["duplicates"] + summary["updated"]
    assert (summary["inserted"], summary["skipped"], summary["failed"]) == (ACCEPTED - committed, committed, len(BAD))
    runs = query(db, "SELECT status, finished_at IS NULL FROM _runs ORDER BY started_at")
    assert runs == [(status, status != "completed"), ("completed", False)]
    assert warehouse_rows(db, "customers") == warehouse_rows(clean, "customers")
    assert rejects(db, last_run(db)) == rejects(clean, last_run(clean))
