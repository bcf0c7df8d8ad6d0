"""A real cluster: redis-server, two read workers and the writer, each a process of its own.

Every process runs in its own process group, killed at the end of the module; every wait has a
deadline. Killing a worker at a known point uses tests/cluster_hooks/sitecustomize.py, put into
the workers through PYTHONPATH: it pauses ``prepare`` of a ``pause-read*`` file, or the load of a
``pause-load*`` file after its first committed batch, and says so in a flag file holding the pid.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tomllib
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from benchmarks import local_cluster
from benchmarks.local_cluster import free_port, wait_for
from tests.conftest import CUSTOMER_HEADERS, DATA, LOAN_HEADERS, NOTES_SPEC, ROOT, customer, loan, write_workbook
from toolkit.errors import ClusterError
from toolkit.ingest import ingest, ingest_many, prepare
from toolkit.specs import load_specs, parse_spec
from toolkit.spool import Spool
from toolkit.summary import IngestSummary

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="the cluster tests start a real Redis: apt-get install redis-server (.ci/run does)",
)
tasks = pytest.importorskip("toolkit.tasks", reason="the cluster extra is not installed: pip install -e '.[test]'")
cluster_client = pytest.importorskip("toolkit.cluster")

VISIBILITY = 3  # seconds after which a dead worker's task is delivered again
WAIT = 90.0  # deadline for one submission
HOOKS = ROOT / "tests" / "cluster_hooks"
COUNTS = ("total", "success", "failed", "inserted", "skipped", "duplicates", "updated", "errors", "unmapped_columns")


class Cluster:
    """Redis and the workers of one test module, in a temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.broker = f"redis://127.0.0.1:{free_port()}/0"
        self.spool, self.db, self.flags = root / "spool", root / "warehouse.duckdb", root / "flags"
        self.flags.mkdir()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.starts: Counter[str] = Counter()
        self.submitted: list[Path] = []  # every file loaded, in order, for the final comparison

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HOOKS), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "TOOLKIT_TEST_HOOKS": str(self.flags),
            "TOOLKIT_VISIBILITY_TIMEOUT": str(VISIBILITY),
        }

    def spawn(self, name: str, command: Sequence[str]) -> None:
        self.starts[name] += 1
        self.logs[name] = self.root / f"{name}-{self.starts[name]}.log"
        self.processes[name] = local_cluster.spawn(command, self.logs[name], cwd=self.root, env=self.env())

    def start_redis(self) -> None:
        self.spawn("redis", local_cluster.redis_command(self.broker))
        wait_for(lambda: local_cluster.redis_up(self.broker), 15, lambda: f"redis-server did not start:\n{self.tail('redis')}")

    def start_workers(self, *names: str) -> None:
        for name in names:
            role = ["--warehouse", "--db", str(self.db)] if name == "writer" else ["--concurrency", "1"]
            self.spawn(
                name, [sys.executable, "-m", "toolkit", "worker", "--spool", str(self.spool), "--broker", self.broker, *role]
            )
        for name in names:
            wait_for(lambda n=name: local_cluster.worker_ready(self.logs[n]), 60, lambda n=name: self.tail(n))

    def kill(self, name: str) -> None:
        local_cluster.kill(self.processes.pop(name))

    def owner(self, pid: int) -> str:
        group = os.getpgid(pid)
        return next(name for name, process in self.processes.items() if process.pid == group)

    def tail(self, name: str, lines: int = 40) -> str:
        text = self.logs[name].read_text(errors="replace") if name in self.logs else "(no log)"
        return f"--- {name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def submit(self, paths: Sequence[Path], **options: Any) -> Any:
        self.submitted += paths
        return cluster_client.submit(paths, broker=self.broker, **options)

    def outcome(self, submission: Any) -> list[IngestSummary]:
        try:
            outcomes = submission.summaries(timeout=WAIT)
        except ClusterError as exc:
            raise AssertionError(f"{exc}\n" + "\n".join(self.tail(n) for n in self.processes)) from exc
        for summary in outcomes:
            assert isinstance(summary, IngestSummary), summary
            assert_invariants(summary.to_dict())
        return outcomes

    def paused(self, name: str) -> int:
        """Wait until a hook paused on ``name``; the pid of the paused process."""
        flag = self.flags / f"{name}.paused"
        return int(wait_for(lambda: flag.exists() and flag.read_text(), 60, lambda: f"{name} never paused"))

    def query(self, sql: str, db: Path | None = None) -> list[tuple[Any, ...]]:
        """Read the warehouse between the writer's batches (it holds the file only while loading)."""

        def attempt() -> list[tuple[Any, ...]] | None:
            try:
                with duckdb.connect(str(db or self.db), read_only=True) as con:
                    return con.execute(sql).fetchall() or [()]
            except duckdb.IOException:
                return None

        return wait_for(attempt, 30, lambda: f"{db or self.db} stayed locked")

    def stop(self) -> None:
        for name in sorted(self.processes, key=lambda n: n == "redis"):  # Redis last: workers die quietly
            self.kill(name)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start_redis()
        cluster.start_workers("writer", "reader-a", "reader-b")
        yield cluster
    finally:
        cluster.stop()


def assert_invariants(summary: dict[str, Any]) -> None:
    assert summary["total"] == summary["success"] + summary["failed"], summary
    assert summary["success"] == summary["inserted"] + summary["skipped"] + summary["duplicates"] + summary["updated"], summary


def customers_book(path: Path, ids: range, *, defects: bool = False) -> Path:
    rows = [
        customer(i, Age="abc" if defects and i % 25 == 0 else 30, First_Name=None if defects and i % 31 == 0 else "Asha")
        for i in ids
    ]
    if defects:
        rows.append(rows[3])  # an identical row: a duplicate
    return write_workbook(path, [CUSTOMER_HEADERS, *rows])


def loans_book(path: Path, part: int, customers: range) -> Path:
    rng = random.Random(part)
    rows = []
    for i in range(150):
        cid = rng.choice(customers) if i % 40 else 999_999  # a few orphans
        rows.append(loan(cid, 900_000 + 1000 * part + i, Tenure=None if i % 33 == 0 else 12))
    return write_workbook(path, [LOAN_HEADERS, *rows])


def generated_batch(folder: Path) -> tuple[list[Path], list[Path]]:
    customers = [
        customers_book(folder / "gen-customers-a.xlsx", range(100_000, 100_200), defects=True),
        customers_book(folder / "gen-customers-b.xlsx", range(100_200, 100_400), defects=True),
    ]
    loans = [loans_book(folder / f"gen-loans-{part}.xlsx", part, range(100_000, 100_400)) for part in range(3)]
    return customers, loans


# --- no cluster needed --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["submit", str(DATA / "loan_data.xlsx"), "--wait"],
        ["worker"],
        ["worker", "--warehouse", "--db", "w.duckdb"],
    ],
)
def test_redis_down_is_one_line_and_exit_2(command: list[str], tmp_path: Path) -> None:
    broker = f"redis://:secret@127.0.0.1:{free_port()}/0"
    run = subprocess.run(
        [sys.executable, "-m", "toolkit", *command, "--broker", broker], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines() == [run.stderr.strip()]
    assert "cannot reach the task queue" in run.stderr and "start Redis or pass --broker URL" in run.stderr
    assert "secret" not in run.stderr  # the URL's password is masked


def test_the_writer_is_one_process(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "toolkit", "worker", "--warehouse", "--concurrency", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert run.stderr.strip() == "error: the warehouse writer runs one process (DuckDB has one writer), not 2"


def test_the_read_workers_apply_the_size_caps_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLKIT_SPOOL", str(tmp_path / "spool"))
    book = customers_book(tmp_path / "c.xlsx", range(1, 11))
    assert "spool_id" in tasks.ingest_file(str(book))
    refused = tasks.ingest_file(str(book), max_cells=10)
    assert refused["kind"] == "UnreadableFileError" and "--max-cells" in refused["error"], refused



def test_a_read_worker_reads_each_sheet_on_one_core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A cluster runs as many read workers as it has cores to spare: none starts a helper process.
    monkeypatch.setenv("TOOLKIT_SPOOL", str(tmp_path / "spool"))
    seen: list[int] = []
    prepare = tasks.prepare

    def spy(path: Path, **options: Any) -> Any:
        seen.append(options["read_processes"])
        return prepare(path, **options)

    monkeypatch.setattr(tasks, "prepare", spy)

    assert "spool_id" in tasks.ingest_file(str(customers_book(tmp_path / "c.xlsx", range(1, 11))))
    assert seen == [1]

# --- the cluster --------------------------------------------------------------------------------


def test_submit_wait_prints_the_summaries_ingest_prints(cluster: Cluster, tmp_path: Path) -> None:
    customers, loans = generated_batch(tmp_path)
    bad = tmp_path / "broken.xlsx"
    bad.write_text("not a workbook")
    # Children first on the command line: the writer still loads parents first.
    files = [DATA / "loan_data.xlsx", *loans, bad, DATA / "customer_data.xlsx", *customers]
    command = [sys.executable, "-m", "toolkit", "submit", *map(str, files), "--wait", "--json", "--broker", cluster.broker]
    run = subprocess.run(command, capture_output=True, text=True, timeout=WAIT + 30)
    cluster.submitted += files
    assert run.returncode == 2, run.stderr + cluster.tail("writer")
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {bad.name}: not a readable workbook"), run.stderr
    assert any(line.startswith("read ") for line in run.stderr.splitlines()) and "done: 8 file(s)" in run.stderr

    summaries = [json.loads(line) for line in run.stdout.splitlines()]
    local = [o.to_dict() for o in ingest_many(files, db=tmp_path / "local.duckdb") if isinstance(o, IngestSummary)]
    assert [s["file"] for s in summaries] == [s["file"] for s in local]
    assert [s["table"] for s in summaries] == ["customers"] * 3 + ["loans"] * 4
    for ours, theirs in zip(summaries, local, strict=True):
        assert_invariants(ours)
        assert {k: ours[k] for k in COUNTS} == {k: theirs[k] for k in COUNTS}, ours["file"]
        assert set(ours) == set(theirs)
    assert sum(s["failed"] for s in summaries) > 50  # the comparison covers every kind of rejection


def test_the_same_file_submitted_twice_at_once_loads_once(cluster: Cluster, tmp_path: Path) -> None:
    book = customers_book(tmp_path / "twice.xlsx", range(101_000, 101_400))
    first, second = cluster.submit([book]), cluster.submit([book])
    both_sent = datetime.now()
    (one,), (two,) = cluster.outcome(first), cluster.outcome(second)
    assert one.started_at is not None and one.started_at > both_sent  # both were waiting when it loaded
    assert one.run_id == two.run_id and one.inserted == 400
    entries = [e for e in (cluster.spool / "entries").iterdir() if Spool(cluster.spool).source(e.name) == str(book)]
    assert len(entries) == 1
    # Submitted again once loaded, it is a re-run, as with `ingest`: a new run that skips every row.
    (again,) = cluster.outcome(cluster.submit([book]))
    assert again.run_id != one.run_id and (again.inserted, again.skipped) == (0, 400)
    runs = cluster.query(f"SELECT run_id, status FROM _runs WHERE file_sha256 = '{one.file_sha256}' ORDER BY started_at")
    assert runs == [(one.run_id, "completed"), (again.run_id, "completed")]


def test_a_resubmission_with_another_batch_size_reuses_the_spool_entry(cluster: Cluster, tmp_path: Path) -> None:
    book = customers_book(tmp_path / "batches.xlsx", range(101_450, 101_480))
    (first,) = cluster.outcome(cluster.submit([book], batch_size=7))
    (again,) = cluster.outcome(cluster.submit([book], batch_size=11, on_conflict="update"))
    entries = [e for e in (cluster.spool / "entries").iterdir() if Spool(cluster.spool).source(e.name) == str(book)]
    assert len(entries) == 1
    assert (first.batch_size, again.batch_size) == (7, 11) and (again.inserted, again.skipped) == (0, 30)


def test_load_one_spool_entry_again(cluster: Cluster, tmp_path: Path) -> None:
    book = customers_book(tmp_path / "entry.xlsx", range(101_500, 101_520))
    (first,) = cluster.outcome(cluster.submit([book]))
    spool = Spool(cluster.spool)
    (entry,) = [e.name for e in (spool.root / "entries").iterdir() if spool.source(e.name) == str(book)]
    result = cluster_client._client(cluster.broker).send_task("toolkit.load", args=(entry,))
    wait_for(result.ready, WAIT, lambda: cluster.tail("writer"))
    again = result.result["summary"]
    assert again["run_id"] != first.run_id and (again["inserted"], again["skipped"]) == (0, 20)
    assert spool.loaded(entry)["summary"]["run_id"] == again["run_id"]


def test_files_staged_into_the_spool_need_no_share(cluster: Cluster, tmp_path: Path) -> None:
    book = customers_book(tmp_path / "laptop.xlsx", range(102_000, 102_050))
    (summary,) = cluster.outcome(cluster.submit([book], spool=cluster.spool))
    assert summary.inserted == 50
    assert Path(summary.file).is_relative_to(cluster.spool / "inbox") and Path(summary.file).name == "laptop.xlsx"


@pytest.mark.parametrize("victim", ["pool process", "whole worker"])
def test_a_read_worker_killed_mid_task_is_redelivered(cluster: Cluster, tmp_path: Path, victim: str) -> None:
    first = 103_000 if victim == "pool process" else 103_500
    book = customers_book(tmp_path / f"pause-read-{victim.replace(' ', '-')}.xlsx", range(first, first + 300), defects=True)
    submission = cluster.submit([book])
    pid = cluster.paused(book.name)
    name = cluster.owner(pid)
    if victim == "pool process":
        os.kill(pid, signal.SIGKILL)  # its worker requeues the task at once (task_reject_on_worker_lost)
    else:
        cluster.kill(name)  # nobody acknowledges: Redis delivers it again after the visibility timeout
    (summary,) = cluster.outcome(submission)
    expected = ingest(book, db=tmp_path / "local.duckdb").to_dict()
    assert {k: summary.to_dict()[k] for k in COUNTS} == {k: expected[k] for k in COUNTS}
    if victim == "whole worker":
        cluster.start_workers(name)


def test_the_writer_killed_mid_load_resumes_from_the_spool(cluster: Cluster, tmp_path: Path) -> None:
    book = customers_book(tmp_path / "pause-load-customers.xlsx", range(104_000, 107_000))
    submission = cluster.submit([book], batch_size=500)
    cluster.paused(book.name)  # the first batch of 500 rows has committed
    cluster.kill("writer")
    assert len(list((cluster.spool / "batches").iterdir())) == 1  # the batch it had started
    cluster.start_workers("writer")
    (summary,) = cluster.outcome(submission)
    assert (summary.status, summary.total, summary.inserted, summary.skipped) == ("completed", 3000, 2500, 500)
    runs = cluster.query(f"SELECT status FROM _runs WHERE file_sha256 = '{summary.file_sha256}' ORDER BY started_at")
    assert runs == [("interrupted",), ("completed",)]
    wait_for(lambda: not list((cluster.spool / "batches").iterdir()), 30, lambda: "a batch stayed claimed")


def test_resume_finishes_a_claimed_batch_and_answers_its_submitter(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer's start-up step, run here in-process on a warehouse of its own.
    settings = {"TOOLKIT_SPOOL": tmp_path / "spool", "TOOLKIT_DB": tmp_path / "w.duckdb", "TOOLKIT_BROKER_URL": cluster.broker}
    for name, value in settings.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setattr(tasks.app.conf, "result_backend", cluster.broker)
    spool = Spool(tmp_path / "spool")
    book = customers_book(tmp_path / "claimed.xlsx", range(1, 41))
    spool.write("e1", prepare(book))
    task_id = str(uuid.uuid4())
    outcome = {"file": str(book), "spool_id": "e1"}
    spool.claim(task_id, {"task_id": task_id, "ticket": 0.0, "batch_size": 10, "on_conflict": "reject", "outcomes": [outcome]})
    assert tasks.resume() == 1
    stored = cluster_client._client(cluster.broker).AsyncResult(task_id)
    assert stored.state == "SUCCESS" and stored.result[0]["summary"]["inserted"] == 40
    assert spool.claimed() == [] and spool.loaded("e1")["summary"]["run_id"] == stored.result[0]["summary"]["run_id"]


def test_the_notebook_app_runs_on_the_cluster_and_shows_the_rejected_rows(cluster: Cluster, tmp_path: Path) -> None:
    from toolkit.widgets import CLUSTER, IngestApp

    book = customers_book(tmp_path / "from_the_app.xlsx", range(730_000, 730_100), defects=True)
    cluster.submitted.append(book)
    app = IngestApp(db=tmp_path / "unused.duckdb")
    app.select(book)
    app.where.value = CLUSTER
    app.broker.value = cluster.broker
    assert app.broker.layout.display is None  # the cluster's settings show once it is chosen

    app.start_run()
    app.wait(timeout=WAIT)

    local = ingest(book, db=tmp_path / "local.duckdb")
    (summary,) = app.summaries
    assert {k: summary.to_dict()[k] for k in COUNTS} == {k: local.to_dict()[k] for k in COUNTS}
    assert app.status.value.startswith("done on the cluster: 1 run(s)")
    assert not (tmp_path / "unused.duckdb").exists()  # the writer loaded its own warehouse
    # Summaries from the cluster carry no row frames: the rejected rows are rebuilt from the errors.
    failing = sorted({e["row"] for e in local.errors})
    assert summary.rejected["__row"].to_list() == failing
    assert f"<td>{failing[0]}</td>" in app.rejects_view.value


def test_the_notebook_app_sends_its_own_specs_to_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    # The app offers its custom tables: workers that knew only the built-in specs would refuse them.
    from toolkit.widgets import CLUSTER, IngestApp

    specs = {**load_specs(), "notes": parse_spec(tomllib.loads(NOTES_SPEC))}
    book = write_workbook(tmp_path / "notes.xlsx", [["ID", "Body"], [1, "one"], [2, "two"], [3, "three"]])
    app = IngestApp(db=tmp_path / "unused.duckdb", specs=specs)
    app.select(book)
    app.where.value = CLUSTER
    app.broker.value = cluster.broker
    app.table.value = "notes"

    app.start_run()
    app.wait(timeout=WAIT)

    (summary,) = app.summaries
    assert (summary.table, summary.inserted, summary.failed) == ("notes", 3, 0)
    assert cluster.query("SELECT id, body FROM notes ORDER BY id") == [(1, "one"), (2, "two"), (3, "three")]


def test_the_warehouse_equals_a_local_ingest_of_the_same_files(cluster: Cluster, tmp_path: Path) -> None:
    files = list(dict.fromkeys(cluster.submitted))
    local = tmp_path / "local.duckdb"
    ingest_many(files, db=local)
    for table in ("customers", "loans"):
        sql = f'SELECT * EXCLUDE (_run_id, _source_row) FROM "{table}" ORDER BY ALL'
        assert cluster.query(sql) == cluster.query(sql, local), table
    # Rejects of completed runs (the interrupted run of the writer test re-ran as a completed one).
    rejects = (
        "SELECT DISTINCT u.file_sha256, r.table_name, r.source_row, r.stage, r.reasons, r.errors, r.raw::VARCHAR "
        "FROM _rejects r JOIN _runs u USING (run_id) WHERE u.status = 'completed' ORDER BY ALL"
    )
    ours = cluster.query(rejects)
    assert ours == cluster.query(rejects, local)
    assert len(ours) > 100
