"""--on-conflict update: stored rows with other values are replaced, counted and recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import toolkit
from tests.conftest import CUSTOMER_HEADERS, ROOT, customer, write_workbook


def _rows(db: Path, query: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query).fetchall()


@pytest.fixture
def loaded(tmp_path: Path, db: Path) -> Path:
    toolkit.ingest(
        write_workbook(tmp_path / "v1.xlsx", [CUSTOMER_HEADERS, customer(1), customer(2), customer(3), customer(5)]), db=db
    )
    return db


def _v2(tmp_path: Path) -> Path:
    return write_workbook(
        tmp_path / "v2.xlsx",
        [
            CUSTOMER_HEADERS,
            customer(1),  # unchanged: skipped
            customer(2, **{"Monthly Salary": 61000, "Age": 35}),  # changed: updated
            customer(3, **{"Phone Number": "9800000005"}),  # changed to customer 5's phone: rejected
            customer(4),  # new: inserted
            customer(2, **{"Monthly Salary": 61000, "Age": 35}),  # repeat of the update: duplicate
        ],
    )


def test_update_mode_replaces_changed_rows_and_records_old_and_new_values(tmp_path: Path, loaded: Path) -> None:
    summary = toolkit.ingest(_v2(tmp_path), db=loaded, on_conflict="update")

    counts = {k: summary.to_dict()[k] for k in ("total", "success", "failed", "inserted", "skipped", "duplicates", "updated")}
    assert counts == {"total": 5, "success": 4, "failed": 1, "inserted": 1, "skipped": 1, "duplicates": 1, "updated": 1}
    assert summary.success == summary.inserted + summary.skipped + summary.duplicates + summary.updated
    # the update cannot apply, so the row is rejected with every reason, the conflict included
    assert sorted((e["row"], e["rule"]) for e in summary.errors) == [(4, "customer_id|conflict"), (4, "phone_number|unique")]
    assert _rows(loaded, "SELECT customer_id, monthly_salary, age, _source_row FROM customers ORDER BY 1") == [
        (1, 50000, 34, 2),
        (2, 61000, 35, 3),
        (3, 50000, 34, 4),
        (4, 50000, 34, 5),
        (5, 50000, 34, 5),
    ]
    changes = _rows(loaded, 'SELECT source_row, "column", old_value, new_value FROM _changes ORDER BY 2')
    assert changes == [(3, "Age", "34", "35"), (3, "Monthly Salary", "50000", "61000")]
    assert sorted(summary.changes.rows()) == changes  # the summary carries what the load recorded
    assert _rows(loaded, "SELECT updated, on_conflict FROM _runs WHERE run_id = ?".replace("?", f"'{summary.run_id}'")) == [
        (1, "update")
    ]


def test_the_summary_collects_the_changes_of_every_batch(tmp_path: Path, loaded: Path) -> None:
    book = write_workbook(tmp_path / "v2.xlsx", [CUSTOMER_HEADERS, customer(1, Age=40), customer(2), customer(3, Age=41)])
    summary = toolkit.ingest(book, db=loaded, on_conflict="update", batch_size=1)
    assert summary.changes.rows() == [(2, "Age", "34", "40"), (4, "Age", "34", "41")]
    assert summary.changes.rows() == _rows(loaded, 'SELECT source_row, "column", old_value, new_value FROM _changes ORDER BY 1')


def test_reject_mode_stays_the_default(tmp_path: Path, loaded: Path) -> None:
    summary = toolkit.ingest(_v2(tmp_path), db=loaded)
    assert (summary.updated, summary.failed) == (0, 3)
    assert "Monthly Salary (warehouse 50000, file 61000)" in summary.errors[0]["message"]
    assert _rows(loaded, "SELECT count(*) FROM _changes") == [(0,)]


def test_update_mode_from_the_cli(tmp_path: Path, loaded: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", "ingest", str(_v2(tmp_path)), "--db", str(loaded), "--on-conflict", "update", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["updated"] == 1


def test_an_unknown_conflict_mode_is_refused(tmp_path: Path, loaded: Path) -> None:
    with pytest.raises(ValueError, match="on_conflict must be one of reject, update"):
        toolkit.ingest(_v2(tmp_path), db=loaded, on_conflict="merge")
