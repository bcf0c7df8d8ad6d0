"""The real reference workbooks (../shared/data/credit-approval) load clean, then re-run to nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import toolkit
from tests.conftest import REFERENCE

CUSTOMERS = REFERENCE / "customer_data.xlsx"
LOANS = REFERENCE / "loan_data.xlsx"
EXPECTED = {"customers": 300, "loans": 782}

pytestmark = pytest.mark.skipif(
    not (CUSTOMERS.is_file() and LOANS.is_file()),
    reason=f"reference workbooks not found in {REFERENCE} (they live outside the repo, in ../shared/data)",
)


def counts(summary: toolkit.IngestSummary | toolkit.ToolkitError) -> tuple[str, int, int, int, int]:
    assert isinstance(summary, toolkit.IngestSummary), summary
    return summary.table, summary.total, summary.inserted, summary.skipped, summary.failed


def test_api_loads_300_customers_and_782_loans_clean_then_a_rerun_inserts_nothing(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    first = toolkit.ingest_many([LOANS, CUSTOMERS], db=db)
    assert [counts(s) for s in first] == [("customers", 300, 300, 0, 0), ("loans", 782, 782, 0, 0)]

    second = toolkit.ingest_many([LOANS, CUSTOMERS], db=db)
    assert [counts(s) for s in second] == [("customers", 300, 0, 300, 0), ("loans", 782, 0, 782, 0)]

    with duckdb.connect(str(db), read_only=True) as con:
        stored = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in EXPECTED}
        # 29 Loan IDs are shared by two customers: the two-column key keeps both loans
        shared = con.execute("SELECT count(*) FROM (SELECT loan_id FROM loans GROUP BY 1 HAVING count(*) > 1)").fetchall()
    assert stored == EXPECTED
    assert shared == [(29,)]


def test_cli_loads_them_clean_then_a_rerun_inserts_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(toolkit.__file__).parent.parent)}
    command = [sys.executable, "-m", "toolkit", "ingest", str(LOANS), str(CUSTOMERS), "--db", "w.duckdb", "--json"]

    def run() -> list[tuple[str, int, int, int, int]]:
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        return [(r["table"], r["total"], r["inserted"], r["skipped"], r["failed"]) for r in rows]

    assert run() == [("customers", 300, 300, 0, 0), ("loans", 782, 782, 0, 0)]
    assert run() == [("customers", 300, 0, 300, 0), ("loans", 782, 0, 782, 0)]
