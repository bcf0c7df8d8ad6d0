"""toolkit.cli: the command-line contract, run as a real ``python -m toolkit`` subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

import toolkit
from tests.conftest import (
    CUSTOMER_HEADERS,
    DATA,
    LOAN_HEADERS,
    ODDFILES,
    customer,
    loan,
    rewrite_member,
    warehouse_held,
    write_workbook,
)
from toolkit.cli import _progress_bar, main
from toolkit.load import Progress
from toolkit.summary import CONTRACT_KEYS

Book = Callable[..., Path]


def cli(*args: str | Path, cwd: Path, pythonpath: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``python -m toolkit ingest ARGS`` in ``cwd``, as a script would run it (``pythonpath`` goes first)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (*pythonpath, Path(toolkit.__file__).parent.parent)))}
    env.pop("TOOLKIT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "toolkit", "ingest", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def runs(db: Path) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    with duckdb.connect(str(db), read_only=True) as con:
        if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = '_runs'").fetchall()[0][0]:
            return []
        return con.execute("SELECT file, status, total, inserted FROM _runs ORDER BY started_at").fetchall()


def assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


# --- the JSON Lines contract -------------------------------------------------------------------


def test_json_prints_one_object_per_sheet_with_the_contract_keys_and_exits_0_despite_rejects(
    workbook: Book, tmp_path: Path
) -> None:
    customers = workbook([CUSTOMER_HEADERS, customer(1), customer(2, Monthly_Salary=None)], name="customers.xlsx")
    loans = workbook([LOAN_HEADERS, loan(1, 100), loan(9, 101)], name="loans.xlsx")

    result = cli(loans, customers, "--db", "w.duckdb", "--json", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    objects = json_lines(result)
    assert [(o["table"], o["file"]) for o in objects] == [("customers", str(customers)), ("loans", str(loans))]
    for data in objects:
        assert set(CONTRACT_KEYS) <= set(data)
        assert data["total"] == data["success"] + data["failed"]
        assert data["success"] == data["inserted"] + data["skipped"] + data["duplicates"] + data["updated"]
        for error in data["errors"]:
            assert list(error) == ["row", "column", "rule", "message", "value"]
    assert [(o["inserted"], o["failed"]) for o in objects] == [(1, 1), (1, 1)]
    assert objects[0]["errors"][0] == {
        "row": 3,
        "column": "Monthly Salary",
        "rule": "monthly_salary|required",
        "message": "Missing Monthly Salary",
        "value": None,
    }


def test_without_json_a_readable_summary_is_printed(workbook: Book, tmp_path: Path) -> None:
    result = cli(workbook([CUSTOMER_HEADERS, customer(1)], name="c.xlsx"), "--db", "w.duckdb", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "-> customers (completed)" in result.stdout
    assert "1 rows: 1 ok (1 inserted" in result.stdout


@pytest.mark.parametrize("as_json", [True, False])
def test_a_reader_that_closes_stdout_early_ends_the_cli_quietly_after_the_load_and_the_report(
    workbook: Book, tmp_path: Path, as_json: bool
) -> None:
    # `ingest ... --json | head -0`: the pipe's reader is gone before the first line is printed.
    book = workbook([CUSTOMER_HEADERS, customer(1), customer(2)], name="c.xlsx")
    env = {**os.environ, "PYTHONPATH": str(Path(toolkit.__file__).parent.parent)}
    env.pop("TOOLKIT_DEBUG", None)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "toolkit", "ingest", str(book), "--db", "w.duckdb", "--report", "r.html"]
            + (["--json"] if as_json else []),
            cwd=tmp_path,
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (141, "")
    assert runs(tmp_path / "w.duckdb") == [(str(book), "completed", 2, 2)]
    assert "c.xlsx" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_the_sample_workbooks_load_and_a_rerun_inserts_nothing(tmp_path: Path) -> None:
    paths = (DATA / "customer_data.xlsx", DATA / "loan_data.xlsx")
    first = cli(*paths, "--db", "w.duckdb", "--json", cwd=tmp_path)
    second = cli(*paths, "--db", "w.duckdb", "--json", cwd=tmp_path)
    assert (first.returncode, second.returncode) == (0, 0)
    before, after = json_lines(first), json_lines(second)
    assert [a["inserted"] for a in after] == [0, 0]
    assert [a["skipped"] for a in after] == [b["inserted"] for b in before]


# --- bad input: exit 2, one line, nothing written -----------------------------------------------


def _empty_file(folder: Path) -> Path:
    path = folder / "empty.xlsx"
    path.write_bytes(b"")
    return path


def _text_file(folder: Path) -> Path:
    path = folder / "notes.xlsx"
    path.write_text("Customer ID,First Name\n1,Asha\n")
    return path


def _truncated_zip(folder: Path) -> Path:
    whole = (DATA / "customer_data.xlsx").read_bytes()
    path = folder / "truncated.xlsx"
    path.write_bytes(whole[: len(whole) // 2])
    return path


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "0-byte file": (_empty_file, "the file is empty"),
    "text renamed .xlsx": (_text_file, "not a readable workbook"),
    "truncated zip": (_truncated_zip, "not a readable workbook"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_an_unreadable_file_exits_2_with_one_line_naming_it_and_writes_nothing(tmp_path: Path, kind: str) -> None:
    make, problem = BAD_FILES[kind]
    path = make(tmp_path)
    result = cli(path, "--db", "w.duckdb", "--json", cwd=tmp_path)
    assert_one_error_line(result, path.name, problem)
    assert result.stdout == ""
    assert not (tmp_path / "w.duckdb").exists()


def _sheet_xml(change: Callable[[bytes], bytes]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = write_workbook(folder / "bomb.xlsx", [CUSTOMER_HEADERS, *(customer(i) for i in range(1, 101))])
        return rewrite_member(path, "xl/worksheets/sheet1.xml", change)

    return make


BOMBS: dict[str, tuple[Callable[[Path], Path], list[str], str]] = {
    "a billion cells declared": (
        _sheet_xml(lambda xml: re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:CV10000000"/>', xml)),
        [],
        "bomb.xlsx, sheet 'Sheet1': 1,000,000,000 cells (dimension A1:CV10000000), over the limit of 50,000,000 cells; "
        "if the file is trusted, raise it with --max-cells N",
    ),
    "more cells than --max-cells": (_sheet_xml(lambda xml: xml), ["--max-cells", "500"], "707 cells (dimension A1:G101)"),
    "64 MiB of padding": (
        _sheet_xml(lambda xml: xml.replace(b"</worksheet>", b" " * 64 * 1024**2 + b"</worksheet>")),
        ["--max-unpacked-mb", "16"],
        "bomb.xlsx: unpacks to 64 MiB, over the limit of 16 MiB; if the file is trusted, raise it with --max-unpacked-mb N",
    ),
}


@pytest.mark.parametrize("kind", list(BOMBS))
def test_a_bomb_exits_2_with_one_line_naming_the_size_the_cap_and_the_flag(tmp_path: Path, kind: str) -> None:
    make, options, problem = BOMBS[kind]
    result = cli(make(tmp_path), "--db", "w.duckdb", "--json", *options, cwd=tmp_path)
    assert_one_error_line(result, problem)
    assert result.stdout == ""
    assert not (tmp_path / "w.duckdb").exists()


def test_raising_the_caps_lets_a_trusted_big_file_in(tmp_path: Path) -> None:
    path = _sheet_xml(lambda xml: xml.replace(b"</worksheet>", b" " * 1024**2 + b"</worksheet>"))(tmp_path)
    assert_one_error_line(cli(path, "--db", "w.duckdb", "--max-cells", "500", cwd=tmp_path), "707 cells")
    assert_one_error_line(cli(path, "--db", "w.duckdb", "--max-unpacked-mb", "1", cwd=tmp_path), "unpacks to 1 MiB")
    result = cli(path, "--db", "w.duckdb", "--json", "--max-cells", "100000", "--max-unpacked-mb", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [o["inserted"] for o in json_lines(result)] == [100]


@pytest.mark.parametrize("suffix", ["xlsx", "xls", "xlsb", "ods"])
def test_a_password_protected_workbook_exits_2_saying_so(tmp_path: Path, suffix: str) -> None:
    path = ODDFILES / f"python-calamine__password.{suffix}"
    if not path.exists():
        pytest.skip(f"corpus file {path} is not available (../shared/data/oddfiles)")
    result = cli(path, "--db", "w.duckdb", cwd=tmp_path)
    assert_one_error_line(result, path.name, "password-protected")
    assert not (tmp_path / "w.duckdb").exists()


STRUCTURAL: dict[str, tuple[list[list[Any]], list[str], str]] = {
    "missing sheet": ([CUSTOMER_HEADERS, customer(1)], ["--sheet", "nope"], "no sheet named 'nope'"),
    "missing required columns": (
        [CUSTOMER_HEADERS[:3], customer(1)[:3]],
        ["--table", "customers"],
        "3 required columns missing for table 'customers': 'Phone Number', 'Monthly Salary', 'Approved Limit'",
    ),
    "no matching table": ([["Shoe Size", "Colour"], [42, "red"]], [], "no table spec matches the headers"),
    "two headers for one column": (
        [[*CUSTOMER_HEADERS, "customer_id"], [*customer(1), 1]],
        [],
        "'Customer ID'",
    ),
    "empty sheet": ([], [], "empty"),
}


@pytest.mark.parametrize("kind", list(STRUCTURAL))
def test_a_structural_problem_exits_2_with_one_line_and_writes_nothing(workbook: Book, tmp_path: Path, kind: str) -> None:
    rows, options, problem = STRUCTURAL[kind]
    path = workbook(rows, name="book.xlsx")
    result = cli(path, "--db", "w.duckdb", "--json", *options, cwd=tmp_path)
    assert_one_error_line(result, "book.xlsx", problem)
    assert result.stdout == ""
    assert runs(tmp_path / "w.duckdb") == []


def test_a_file_that_does_not_exist_exits_2(tmp_path: Path) -> None:
    result = cli("nowhere.xlsx", "--db", "w.duckdb", cwd=tmp_path)
    assert_one_error_line(result, "nowhere.xlsx", "no such file")


def test_a_header_only_sheet_exits_0_with_total_0_and_a_warning(workbook: Book, tmp_path: Path) -> None:
    result = cli(workbook([CUSTOMER_HEADERS]), "--db", "w.duckdb", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [data] = json_lines(result)
    assert (data["total"], data["success"], data["failed"]) == (0, 0, 0)
    assert "the sheet has a header row but no data rows" in data["warnings"]


def test_one_bad_file_among_several_gets_its_line_the_others_load_and_the_exit_is_2(workbook: Book, tmp_path: Path) -> None:
    customers = workbook([CUSTOMER_HEADERS, customer(1)], name="customers.xlsx")
    bad = _text_file(tmp_path)
    loans = workbook([LOAN_HEADERS, loan(1, 100)], name="loans.xlsx")

    result = cli(loans, bad, customers, "--db", "w.duckdb", "--json", cwd=tmp_path)

    assert_one_error_line(result, "notes.xlsx")
    assert [(o["table"], o["inserted"]) for o in json_lines(result)] == [("customers", 1), ("loans", 1)]
    assert [r[0] for r in runs(tmp_path / "w.duckdb")] == [str(customers), str(loans)]  # no run for the bad file


def test_the_whole_corpus_of_odd_files_never_crashes_the_cli(tmp_path: Path) -> None:
    if not ODDFILES.is_dir():
        pytest.skip(f"corpus {ODDFILES} is not available")
    files = sorted(ODDFILES.iterdir())
    result = cli(*files, "--db", "w.duckdb", "--json", cwd=tmp_path)
    assert result.returncode in (0, 2), result.stderr
    assert "Traceback" not in result.stderr and "panicked" not in result.stderr.split("error: ", 1)[0]
    loaded = {o["file"] for o in json_lines(result)}
    complaints = result.stderr.splitlines()
    assert all(line.startswith("error: ") for line in complaints), complaints
    # every file is either loaded or has exactly one line naming it
    for path in files:
        named = [line for line in complaints if line.startswith((f"error: {path.name}:", f"error: {path.name},"))]
        assert (str(path) in loaded) != (len(named) == 1), (path.name, named)
    assert len(complaints) == len(files) - len(loaded)


# A Rust panic in the reader, injected into the child process: sitecustomize runs at start-up,
# before the CLI, and makes the reader of bad.xlsx behave as a pyo3 panic does (issue 8.10).
_PANICKING_READER = """
import os

import toolkit.read


class PanicException(BaseException):  # pyo3's PanicException derives from BaseException
    pass


_real_open = toolkit.read._open


def _open(path):
    if path.name == "bad.xlsx":
        os.write(2, (
            "thread '<unnamed>' panicked at calamine-0.26.1/src/xlsx/cells_reader.rs:347:39:\\n"
            "index out of bounds: the len is 3 but the index is 7\\n"
            "stack backtrace:\\n"
            "   0: rust_begin_unwind\\n"
            "   1: core::panicking::panic_bounds_check\\n"
            "   2: calamine::xlsx::cells_reader::XlsxCellReader::next_cell\\n"
            "note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.\\n"
        ).encode())
        raise PanicException("index out of bounds: the len is 3 but the index is 7")
    return _real_open(path)


toolkit.read._open = _open
"""


def test_a_reader_panic_is_one_stderr_line_folding_the_report_and_the_other_files_still_load(
    workbook: Book, tmp_path: Path
) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_PANICKING_READER)
    bad = workbook([CUSTOMER_HEADERS, customer(1)], name="bad.xlsx")  # a fine workbook: only the reader fails
    good = workbook([CUSTOMER_HEADERS, customer(2)], name="good.xlsx")

    result = cli(bad, good, "--db", "w.duckdb", "--json", cwd=tmp_path, pythonpath=(hooks,))

    line = assert_one_error_line(result, "bad.xlsx", "the reader crashed on this file")
    assert line == (
        "error: bad.xlsx: the reader crashed on this file; it is probably corrupt (index out of bounds: the len is 3 "
        "but the index is 7; thread '<unnamed>' panicked at calamine-0.26.1/src/xlsx/cells_reader.rs:347:39)"
    )
    assert [(Path(o["file"]).name, o["inserted"]) for o in json_lines(result)] == [("good.xlsx", 1)]
    assert runs(tmp_path / "w.duckdb") == [(str(good), "completed", 1, 1)]


# --- the progress bar on stderr ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("progress", "drawn"),
    [
        (Progress(0, 10, 0, 0.0), "\r[                              ] 0/10 rows, 0 rows/s"),
        (Progress(4, 10, 1, 2.0), "\r[############                  ] 4/10 rows, 2 rows/s"),
        (Progress(2500, 2500, 3, 0.5), "\r[##############################] 2,500/2,500 rows, 5,000 rows/s\n"),
        (Progress(0, 0, 0, 0.0), "\r[##############################] 0/0 rows, 0 rows/s\n"),
    ],
)
def test_the_progress_bar_redraws_one_line_and_ends_it_when_done(
    progress: Progress, drawn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _progress_bar(progress)
    assert capsys.readouterr() == ("", drawn)


@pytest.mark.parametrize(
    ("tty", "options", "bars"),
    [(True, [], 3), (True, ["--json"], 3), (True, ["--quiet"], 0), (False, [], 0), (False, ["--json"], 0)],
)
def test_ingest_draws_the_bar_only_on_a_terminal_and_not_when_quiet(
    workbook: Book,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tty: bool,
    options: list[str],
    bars: int,
) -> None:
    book = workbook([CUSTOMER_HEADERS, *(customer(i) for i in range(1, 11))])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)

    code = main(["ingest", str(book), "--db", str(tmp_path / "w.duckdb"), "--batch-size", "4", *options])

    out, err = capsys.readouterr()
    assert code == 0
    assert err.count("\r[") == bars
    assert ("10/10 rows" in err) == bool(bars) and (err.endswith(" rows/s\n") if bars else err == "")
    assert "\r" not in out  # the bar never mixes with the summary or the JSON on stdout
    if "--json" in options:
        assert json.loads(out)["inserted"] == 10


# --- the warehouse lock ------------------------------------------------------------------------


def test_a_warehouse_in_use_by_another_process_exits_2_with_one_line(workbook: Book, tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    customers = workbook([CUSTOMER_HEADERS, customer(1)])
    loans = workbook([LOAN_HEADERS, loan(1, 100)])
    with warehouse_held(db):
        result = cli(customers, loans, "--db", db, "--json", cwd=tmp_path)
    # one problem, one line: not one copy of it per file
    assert_one_error_line(result, "warehouse is in use by another process")
    assert runs(db) == []


def test_wait_lets_the_cli_succeed_once_the_other_process_exits(workbook: Book, tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with warehouse_held(db, seconds=1.0):
        result = cli(workbook([CUSTOMER_HEADERS, customer(1)]), "--db", db, "--json", "--wait", "60", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [o["inserted"] for o in json_lines(result)] == [1]


# A crash mid-run (SIGKILL at several points) and a full disk: tests/test_faults.py.


# --- submit ------------------------------------------------------------------------------------


def test_submit_wait_says_a_busy_warehouse_once_as_ingest_does(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The cluster rebuilds an error per file from its message: equal messages, distinct objects.
    from toolkit import cli as cli_module
    from toolkit.errors import WarehouseError

    busy = "w.duckdb: the warehouse is in use by another process"

    class Submission:
        def summaries(self, **_: Any) -> list[Any]:
            return [WarehouseError(busy), WarehouseError(busy)]

    class Cluster:
        def submit(self, *_: Any, **__: Any) -> Submission:
            return Submission()

    monkeypatch.setattr(cli_module, "_cluster", lambda module: Cluster())
    assert main(["submit", "a.xlsx", "b.xlsx", "--wait", "--quiet"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {busy}"]
