"""Throughput of the cluster (toolkit.tasks) with 1, 2 and 4 read processes, against a local ingest_many.

    pip install -e ".[bench,cluster]"     # and Debian's redis-server
    python -m benchmarks.cluster          # 8 × 100k-row workbooks, 3 runs of each (about 8 minutes on 2 cores)

Every run starts its own cluster — a Redis on a free loopback port, one read worker with
``--concurrency N`` (N pool processes) and the writer, each in a process group of its own — with a
fresh spool and a fresh warehouse holding the workbooks' customers (benchmarks/workbooks.py). The
clock starts at ``submit``, once every process is ready, and stops when the last summary is in;
"read" is when the last file was in the spool. The spool's entries are then measured (bytes on
disk), the warehouse is replaced by a fresh one and the same files are submitted again: their
spool entries exist, so the readers only hash the files and the run measures the writer on its own.
A last setup submits each file on its own (no order between them), so reads overlap loads. The
local baseline is ``ingest_many`` of the same files in a fresh process (benchmarks.methods).
Medians; ratios to the local run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import local_cluster, workbooks
from benchmarks.run import MULTI_FILES, MULTI_ROWS, ROOT, _child, machine

WORK = workbooks.CACHE / "cluster"
READERS = (1, 2, 4)
STREAM = "readers-2-separately"


def cluster_run(readers: int, paths: list[Path], *, separately: bool = False) -> dict[str, float]:
    from toolkit.cluster import submit

    root = WORK / f"readers-{readers}-{time.time_ns()}"
    root.mkdir(parents=True)
    db, spool = workbooks.fresh_warehouse(root / "warehouse.duckdb"), root / "spool"
    broker = f"redis://127.0.0.1:{local_cluster.free_port()}/0"
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, command: list[str]) -> Path:
        log = root / f"{name}.log"
        processes.append(local_cluster.spawn(command, log, cwd=root))
        return log

    try:
        spawn("redis", local_cluster.redis_command(broker))
        local_cluster.wait_for(lambda: local_cluster.redis_up(broker), 15, lambda: "redis-server did not start")
        worker = [sys.executable, "-m", "toolkit", "worker", "--spool", str(spool), "--broker", broker]
        logs = [
            spawn("writer", [*worker, "--warehouse", "--db", str(db)]),
            spawn("reader", [*worker, "--concurrency", str(readers)]),
        ]
        for log in logs:
            local_cluster.wait_for(lambda log=log: local_cluster.worker_ready(log), 120, lambda log=log: f"{log.stem} not ready")

        started = time.perf_counter()
        read_at: list[float] = []

        def progress(p: Any) -> None:
            if not read_at and p.read == p.files:
                read_at.append(time.perf_counter() - started)

        if separately:  # one submission per file: no order between them, reads overlap loads
            submissions = [submit([path], broker=broker) for path in paths]
            outcomes = [o for s in submissions for o in s.summaries(timeout=900)]
            return {"seconds": time.perf_counter() - started, "rows": sum(o.total for o in outcomes),
                    "inserted": sum(o.inserted for o in outcomes)}  # fmt: skip
        outcomes = submit(paths, broker=broker).summaries(timeout=900, on_progress=progress, poll=0.05)
        seconds = time.perf_counter() - started
        rows = sum(o.total for o in outcomes)
        entries = [f for f in (spool / "entries").rglob("*") if f.is_file()]

        for leftover in (db, db.with_suffix(".duckdb.wal")):  # the writer holds the file only while loading
            leftover.unlink(missing_ok=True)
        workbooks.fresh_warehouse(db)
        started = time.perf_counter()
        again = submit(paths, broker=broker).summaries(timeout=900)
        writer_seconds = time.perf_counter() - started
        if [o.inserted for o in again] != [o.inserted for o in outcomes]:
            raise RuntimeError("the writer-alone run did not load the same rows")
        load_seconds = sum((o.finished_at - o.started_at).total_seconds() for o in again if o.finished_at and o.started_at)
        return {
            "seconds": seconds,
            "read_seconds": read_at[0] if read_at else float("nan"),
            "rows": rows,
            "inserted": sum(o.inserted for o in outcomes),
            "writer_seconds": writer_seconds,
            "load_seconds": load_seconds,
            "spool_mb": sum(f.stat().st_size for f in entries) / 1e6,
            "workbooks_mb": sum(p.stat().st_size for p in paths) / 1e6,
        }
    finally:
        for process in reversed(processes):  # Redis last
            local_cluster.kill(process)
        shutil.rmtree(root, ignore_errors=True)


def local_run(paths: list[Path]) -> dict[str, float]:
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "local.duckdb"
    for leftover in (db, db.with_suffix(".duckdb.wal")):
        leftover.unlink(missing_ok=True)
    workbooks.fresh_warehouse(db)
    result = _child("toolkit_many", {"paths": [str(p) for p in paths], "db": str(db), "batch_size": 1000})
    return {"seconds": result["seconds"], "rows": result["total"], "inserted": result["inserted"]}


def report(results: dict[str, list[dict[str, float]]], info: dict[str, str], repeats: int) -> str:
    def median(label: str, key: str) -> float:
        return statistics.median(r[key] for r in results[label])

    local = median("local", "seconds")
    rows = results["local"][0]["rows"]
    lines = [
        f"Machine: {info['cpu']}, {info['cores (nproc)']} cores; Python {info['python']}; toolkit {info['toolkit']}, "
        f"polars {info['polars']}, duckdb {info['duckdb']}. {MULTI_FILES} workbooks × {MULTI_ROWS:,} rows, "
        f"{repeats} runs each, medians.",
        "",
        "| setup | median s | rows/s | × local | all files read at s |",
        "|---|---|---|---|---|",
        f"| local `ingest_many` (one process) | {local:.1f} | {rows / local:,.0f} | 1.00× | – |",
    ]
    for readers in READERS:
        label = f"readers-{readers}"
        seconds = median(label, "seconds")
        lines.append(
            f"| cluster: {readers} read process{'es' if readers > 1 else ''} + writer | {seconds:.1f} | {rows / seconds:,.0f} | "
            f"{local / seconds:.2f}× | {median(label, 'read_seconds'):.1f} |"
        )
    seconds = median(STREAM, "seconds")
    lines.append(
        f"| cluster: 2 read processes + writer, one submission per file | {seconds:.1f} | {rows / seconds:,.0f} | "
        f"{local / seconds:.2f}× | – |"
    )
    timed = [r for runs in results.values() for r in runs if "writer_seconds" in r]
    writer = statistics.median(r["writer_seconds"] for r in timed)
    load = statistics.median(r["load_seconds"] for r in timed)
    lines += [
        f"| writer alone (files already in the spool) | {writer:.1f} | {rows / writer:,.0f} | {local / writer:.2f}× | – |",
        "",
        f"- The writer on its own: {rows / writer:,.0f} rows/s end to end, {rows / load:,.0f} rows/s inside `load_prepared`.",
    ]
    spool, books = (statistics.median(r[key] for r in timed) for key in ("spool_mb", "workbooks_mb"))
    lines.append(
        f"- The spool holds {spool:,.0f} MB of entries for the {books:,.0f} MB of workbooks ({spool / books:.1f}×): "
        f"{spool / MULTI_FILES:.1f} MB per {MULTI_ROWS:,}-row workbook, {spool / rows * 10_000:.2f} MB per 10,000 rows."
    )
    same = {r["inserted"] for runs in results.values() for r in runs}
    lines.append(f"- Every run inserted the same rows: {len(same) == 1} ({same.pop():,} rows).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    description = __doc__.splitlines()[0] if __doc__ else None
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=description)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    os.chdir(ROOT)
    paths = [workbooks.workbook(MULTI_ROWS, part) for part in range(MULTI_FILES)]
    workbooks.template_warehouse()
    labels = ["local", *(f"readers-{n}" for n in READERS), STREAM]
    results: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
    for round_ in range(args.repeats):
        shift = round_ % len(labels)  # rotate the order so drift in the machine's speed spreads out
        for label in labels[shift:] + labels[:shift]:
            if label == "local":
                result = local_run(paths)
            else:
                result = cluster_run(int(label.split("-")[1]), paths, separately=label == STREAM)
            results[label].append(result)
            print(f"  [{round_ + 1}/{args.repeats}] {label}: {result['seconds']:.1f} s", file=sys.stderr, flush=True)
    print(report(results, machine(), args.repeats))


if __name__ == "__main__":
    main()
