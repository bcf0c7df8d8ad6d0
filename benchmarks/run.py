"""Benchmark the toolkit against the bare fastexcel read and its peers, each run in a fresh process.

    pip install -e ".[bench]"
    python -m benchmarks.run --quick     # 10k and 100k rows, fewer repeats (about 3 minutes on 2 cores)
    python -m benchmarks.run             # 10k, 100k and 1M rows (about 9 minutes on 2 cores)

Workbooks are generated once (deterministic) and cached in ``benchmarks/.cache/``. Every run of a
method is a new Python process; runs alternate between methods (the order rotates each round) so
that drift in the machine's speed spreads over all of them. Reported per method: the median time
of the work itself (imports excluded), its ratio to the bare typed fastexcel read measured in the
same run, and the peak RSS: the larger of the largest single process's peak (``wait4``) and the
largest sum over the processes running at once (the one-file runs' helper reading half of a large
sheet, the multi-file run's workers), sampled every 20 ms. The Markdown table printed at the end is the one in
the README's Performance section; the raw numbers go to ``benchmarks/.cache/results-{quick,full}.json``
(``--table-from`` prints a saved run's table again).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import workbooks
from benchmarks.processes import descendants

ROOT = Path(__file__).resolve().parent.parent
WORK = workbooks.CACHE / "run"
SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}
MULTI_FILES, MULTI_ROWS = 8, 100_000
# The start-up: the whole ingest of a file this small is the cost every run pays whatever its rows.
STARTUP_SIZE, STARTUP_ROWS = "10 rows", 10
WHOLE = 0  # batch size meaning "the whole file in one batch"


@dataclass
class Job:
    label: str
    method: str
    size: str
    rows: int
    paths: tuple[Path, ...]
    repeats: int
    batch_size: int | None = None
    warehouse: str = "none"  # none | fresh | loaded (the file already ingested)
    results: list[dict[str, Any]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.results)


def plan(quick: bool, default_batch: int) -> list[Job]:
    sizes = ["10k", "100k"] if quick else ["10k", "100k", "1M"]
    jobs: list[Job] = [
        Job(
            "toolkit fresh, default batch: the start-up",
            "toolkit_one",
            STARTUP_SIZE,
            STARTUP_ROWS,
            (workbooks.workbook(STARTUP_ROWS),),
            3 if quick else 11,
            default_batch,
            "fresh",
        )
    ]
    for size in sizes:
        rows = SIZES[size]
        path = (workbooks.workbook(rows),)
        # 10k runs take ~0.2 s and swing most with the machine's noise: more of them, for a steady median.
        repeats = {"10k": 3 if quick else 11, "100k": 3 if quick else 5, "1M": 3}[size]
        jobs += [
            Job("fastexcel typed read (the floor)", "bare_typed", size, rows, path, repeats),
            Job('fastexcel read as text (dtypes="string")', "bare_text", size, rows, path, repeats),
            Job("toolkit prepare (read + validate, no warehouse)", "toolkit_prepare", size, rows, path, repeats),
        ]
        batches = [1000, 10_000, 100_000, WHOLE]
        for batch in sorted({*batches, default_batch}, key=lambda b: b or sys.maxsize):
            if batch and batch >= rows and batch != default_batch:
                continue  # same as the whole file
            name = "whole file" if batch == WHOLE else f"{batch:,}"
            mark = " (default)" if batch == default_batch else ""
            jobs.append(Job(f"toolkit fresh, batch {name}{mark}", "toolkit_one", size, rows, path, repeats, batch, "fresh"))
        jobs.append(
            Job(
                f"toolkit re-run (all present), batch {default_batch:,}",
                "toolkit_one",
                size,
                rows,
                path,
                repeats,
                default_batch,
                "loaded",
            )
        )
        if default_batch != 1000:
            jobs.append(
                Job("toolkit re-run (all present), batch 1,000", "toolkit_one", size, rows, path, repeats, 1000, "loaded")
            )
        jobs.append(
            Job("pandas.read_excel, openpyxl (read only)", "pandas_openpyxl", size, rows, path, 1 if size == "1M" else repeats)
        )
        # The original design needs ~1.7 ms a row: once at 100k in the full mode, only 10k in the quick one.
        if size == "10k" or (size == "100k" and not quick):
            original_repeats = 1 if size == "100k" else (2 if quick else 3)
            jobs.append(
                Job("original design (pandas+openpyxl, row-wise)", "original", size, rows, path, original_repeats, None, "fresh")
            )
    parts = tuple(workbooks.workbook(MULTI_ROWS, part) for part in range(MULTI_FILES))
    multi = f"{MULTI_FILES}×100k"
    multi_repeats = 2 if quick else 3
    ways = {
        "toolkit_sequential": f"toolkit, {MULTI_FILES} files one after another",
        "toolkit_many": f"toolkit, {MULTI_FILES} files in one command",
        "toolkit_threads": f"bound: {MULTI_FILES} files in one command, read in threads (no worker processes, not offered)",
    }
    jobs += [
        Job(label, method, multi, MULTI_FILES * MULTI_ROWS, parts, multi_repeats, default_batch, "fresh")
        for method, label in ways.items()
    ]
    return jobs


def run_job(job: Job, loaded: dict[str, Path]) -> dict[str, Any]:
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "warehouse.duckdb"
    for leftover in (db, db.with_suffix(".duckdb.wal")):
        leftover.unlink(missing_ok=True)
    if job.warehouse == "fresh":
        workbooks.fresh_warehouse(db)
    elif job.warehouse == "loaded":
        shutil.copyfile(loaded[job.size], db)
    batch_size = job.batch_size if job.batch_size != WHOLE else job.rows + 1
    args = {"paths": [str(p) for p in job.paths], "db": str(db), "batch_size": batch_size}
    return _child(job.method, args)


def _child(method: str, args: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.methods", method, json.dumps(args)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    tree = _TreeMemory(proc.pid)
    tree.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    tree.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed with exit status {proc.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    # wait4 gives the largest single process's peak; processes running at once (the helper reading
    # half of a large sheet, ingest_many's workers) add up: their sampled sum is the peak when larger.
    result["peak_rss_mb"] = max(usage.ru_maxrss / 1024, tree.peak_mb)  # ru_maxrss: kB on Linux
    return result


class _TreeMemory(threading.Thread):
    """The largest sum of the resident memory of a process and its descendants, sampled every
    20 ms (descendants looked for every 100 ms); Linux's /proc, else nothing (0)."""

    def __init__(self, root: int) -> None:
        super().__init__(name="benchmark-memory", daemon=True)
        self.root, self.peak_mb = root, 0.0
        self._stop_event = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def run(self) -> None:
        if not Path("/proc/self/statm").exists():
            return
        pids, looked = {self.root}, 0.0
        while not self._stop_event.is_set():
            if time.monotonic() - looked > 0.1:
                pids, looked = pids | descendants(self.root), time.monotonic()
            self.peak_mb = max(self.peak_mb, sum(self._resident(pid) for pid in pids) / 1024**2)
            self._stop_event.wait(0.02)

    def _resident(self, pid: int) -> int:
        try:
            return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * self._page
        except (OSError, IndexError, ValueError):
            return 0  # ended


def prepare_loaded(jobs: list[Job]) -> dict[str, Path]:
    """Warehouses that already hold each re-run job's file (loaded once, untimed)."""
    loaded: dict[str, Path] = {}
    for job in jobs:
        if job.warehouse != "loaded" or job.size in loaded:
            continue
        WORK.mkdir(parents=True, exist_ok=True)
        target = workbooks.fresh_warehouse(WORK / f"loaded_{job.rows}.duckdb")
        _child("toolkit_one", {"paths": [str(job.paths[0])], "db": str(target), "batch_size": job.rows + 1})
        loaded[job.size] = target
    return loaded


def measure(jobs: list[Job]) -> None:
    loaded = prepare_loaded(jobs)
    rounds = max(job.repeats for job in jobs)
    for round_ in range(rounds):
        todo = [job for job in jobs if job.repeats > round_]
        shift = round_ % len(todo)
        for job in todo[shift:] + todo[:shift]:
            result = run_job(job, loaded)
            job.results.append(result)
            print(f"  [{round_ + 1}/{rounds}] {job.size:>7} {job.label}: {result['seconds']:.2f} s", file=sys.stderr, flush=True)


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout.splitlines()
    total = memory[1].split()[1] if len(memory) > 1 else "?"
    versions = {}
    for package in ("toolkit", "polars", "fastexcel", "duckdb", "pyarrow", "pandas", "openpyxl"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "-"
    return {
        "cpu": cpu,
        "cores (nproc)": str(os.cpu_count()),
        "memory (free -h)": total,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        **versions,
    }


def report(jobs: list[Job], info: dict[str, str], mode: str) -> str:
    floor = {j.size: j for j in jobs if j.method == "bare_typed"}
    lines = [
        f"Machine: {info['cpu']}, {info['cores (nproc)']} cores, {info['memory (free -h)']} RAM; Python {info['python']}; "
        + ", ".join(f"{k} {info[k]}" for k in ("toolkit", "polars", "fastexcel", "duckdb", "pyarrow", "pandas", "openpyxl"))
        + f". Mode: {mode}.",
        "",
        "| rows | method | runs | median s | × bare read | peak RSS MB | × bare RSS | CPU s | process s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for job in jobs:
        scale = MULTI_FILES if job.size.startswith(f"{MULTI_FILES}×") else 1
        base = floor.get(job.size) or (floor.get("100k") if scale > 1 else None)
        ratio = f"{job.median('seconds') / (scale * base.median('seconds')):.2f}×" if base else "–"
        rss = f"{job.median('peak_rss_mb') / base.median('peak_rss_mb'):.2f}×" if base else "–"
        cpu = f"{job.median('cpu_seconds'):.2f}" if all("cpu_seconds" in r for r in job.results) else "–"
        lines.append(
            f"| {job.size} | {job.label} | {len(job.results)} | {job.median('seconds'):.2f} | {ratio} | "
            f"{job.median('peak_rss_mb'):,.0f} | {rss} | {cpu} | {job.median('process_seconds'):.2f} |"
        )
    lines += ["", *_findings(jobs, cores=int(info["cores (nproc)"]) if info["cores (nproc)"].isdigit() else 1)]
    return "\n".join(lines)


def _findings(jobs: list[Job], *, cores: int) -> list[str]:
    """``cores``: of the machine the jobs ran on (a saved run's table may be printed on another)."""
    found = []
    default = [j for j in jobs if j.method == "toolkit_one" and "(default)" in j.label]
    per_row = {j.size: j.median("seconds") / j.rows * 1e6 for j in default}
    if per_row:
        spread = max(per_row.values()) / min(per_row.values()) - 1
        shown = ", ".join(f"{size} {us:.2f} µs" for size, us in per_row.items())
        found.append(f"- Per-row cost of the default fresh ingest, start-up included: {shown} (spread {spread:.0%}).")
    startup = next((j for j in jobs if j.size == STARTUP_SIZE), None)
    if startup and default:
        # What every run pays whatever its rows (opening and closing the warehouse, setting up its
        # tables, recording the run): timed, not fitted, so no size's rows are charged with it.
        start = startup.median("seconds")
        after = {j.size: (j.median("seconds") - start) / (j.rows - STARTUP_ROWS) * 1e6 for j in default}
        spread = max(after.values()) / min(after.values()) - 1
        shown = ", ".join(f"{size} {us:.2f} µs" for size, us in after.items())
        said = f"a {STARTUP_ROWS}-row file's whole ingest, {start:.2f} s"
        found.append(f"- After the start-up ({said}): {shown} a row (spread {spread:.0%}).")
        if all("cpu_seconds" in r for j in [startup, *default] for r in j.results):
            # The work itself: a large sheet's read uses a second process (toolkit.halves), which
            # makes the time per row fall at that size while the CPU per row need not.
            start_cpu = startup.median("cpu_seconds")
            cpu = {j.size: (j.median("cpu_seconds") - start_cpu) / (j.rows - STARTUP_ROWS) * 1e6 for j in default}
            spread = max(cpu.values()) / min(cpu.values()) - 1
            shown = ", ".join(f"{size} {us:.2f} µs" for size, us in cpu.items())
            found.append(f"- CPU after the start-up's ({start_cpu:.2f} s): {shown} a row (spread {spread:.0%}).")
    found += _stages(jobs)
    for size in SIZES:
        original = next((j for j in jobs if j.method == "original" and j.size == size), None)
        ours = next((j for j in default if j.size == size), None)
        if original and ours:
            times = original.median("seconds") / ours.median("seconds")
            found.append(f"- {size}: the original design takes {times:.0f}× the toolkit's time.")
    sequential = next((j for j in jobs if j.method == "toolkit_sequential"), None)
    many = next((j for j in jobs if j.method == "toolkit_many"), None)
    if sequential and many:
        speedup, same = _against(sequential, many)
        found.append(
            f"- {MULTI_FILES} files in one command: {speedup:.2f}× the throughput of one after another (same result: {same})."
        )
        if all("cpu_seconds" in r for r in sequential.results + many.results):
            # Work that needs C CPU-seconds cannot take less than C / cores on that machine.
            busy = sequential.median("cpu_seconds") / sequential.median("seconds")
            least = many.median("cpu_seconds") / cores
            found.append(
                f"- One after another already keeps {busy:.2f} cores busy; the one-command run needs "
                f"{many.median('cpu_seconds'):.1f} CPU s, so on {cores} cores it cannot take less than {least:.2f} s: "
                f"at most {sequential.median('seconds') / least:.2f}× the throughput of one after another."
            )
    threads = next((j for j in jobs if j.method == "toolkit_threads"), None)
    if sequential and threads:
        # The same command without the worker processes' start-ups and pickles (and without their
        # isolation): what the worker design could reach at best on this machine.
        speedup, same = _against(sequential, threads)
        found.append(
            f"- Read in threads of one process instead of worker processes (a bound, not offered): {speedup:.2f}× the "
            f"throughput of one after another, {threads.median('cpu_seconds'):.1f} CPU s (same result: {same})."
        )
    shares = [r["progress_seconds"] / r["seconds"] for j in jobs if j.method == "toolkit_one" for r in j.results]
    if shares:
        found.append(f"- Progress callback (the CLI's bar, rendered every batch): at most {max(shares):.2%} of run time.")
    return found


def _against(sequential: Job, together: Job) -> tuple[float, bool]:
    """(the throughput of ``together`` over one file after another, whether both stored the same rows)."""
    same = sequential.results[0]["inserted"] == together.results[0]["inserted"]
    return sequential.median("seconds") / together.median("seconds"), same


def _stages(jobs: list[Job]) -> list[str]:
    """Where the time goes, derived from the rows of the table (each a median of its own runs)."""

    def seconds(method: str, size: str, label: str = "") -> float | None:
        found = next((j for j in jobs if j.method == method and j.size == size and label in j.label), None)
        return found.median("seconds") if found else None

    lines = []
    for size, rows in SIZES.items():
        bare, prepared = seconds("bare_typed", size), seconds("toolkit_prepare", size)
        batched = seconds("toolkit_one", size, "fresh, batch 1,000")
        whole = seconds("toolkit_one", size, "fresh, batch whole file")
        if bare and prepared:
            line = f"- {size}: read + validate (`prepare`) {prepared:.2f} s, {prepared / bare:.2f}× the bare read"
            if whole:
                line += f"; the load in one commit (whole file − prepare) {whole - prepared:.2f} s"
            lines.append(line + ".")
        if batched and whole and rows >= 100_000:  # below, the few extra commits drown in the runs' spread
            extra = -(-rows // 1000) - 1  # commits of 1000 rows, less the whole file's one
            cost = (batched - whole) / extra * 1e3
            # Commits overlap the next batch's insert, so this is what a commit adds to the run, not its own cost.
            lines.append(
                f"- {size}: each extra commit adds {cost:.1f} ms (batch 1,000 − whole file, over {extra:,} more commits)."
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10k and 100k rows only, fewer repeats")
    parser.add_argument("--only", nargs="+", metavar="METHOD", help="run only these methods (e.g. bare_typed toolkit_one)")
    parser.add_argument("--table-from", type=Path, metavar="RESULTS.json", help="print the table of a saved run, run nothing")
    args = parser.parse_args(argv)
    if args.table_from:
        saved = json.loads(args.table_from.read_text(encoding="utf-8"))
        fields = {f for f in Job.__dataclass_fields__}
        jobs = [Job(**{k: v for k, v in job.items() if k in fields}) for job in saved["jobs"]]
        print(report(jobs, saved["machine"], saved["mode"]))
        return
    import toolkit

    default_batch = inspect.signature(toolkit.ingest).parameters["batch_size"].default
    jobs = plan(args.quick, default_batch)
    if args.only:
        jobs = [j for j in jobs if j.method in args.only or j.method == "bare_typed"]
    started = time.perf_counter()
    print(f"{len(jobs)} methods × sizes, {sum(j.repeats for j in jobs)} runs", file=sys.stderr)
    workbooks.template_warehouse()
    measure(jobs)
    info = machine()
    mode = "quick" if args.quick else "full"
    table = report(jobs, info, mode)
    print(table)
    print(f"\n(benchmark took {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    results = {"mode": mode, "machine": info, "jobs": [{**vars(j), "paths": [str(p) for p in j.paths]} for j in jobs]}
    (workbooks.CACHE / f"results-{mode}.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
