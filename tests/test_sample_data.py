"""The shipped sample workbooks give exactly the summary documented in data/README.md."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

import toolkit
from tests.conftest import DATA

COUNTS = ("total", "success", "failed", "inserted", "skipped", "duplicates")


def test_sample_workbooks_give_the_documented_summary_then_skip_everything_on_rerun(db: Path) -> None:
    expected = json.loads((DATA / "expected_summary.json").read_text())
    paths = [DATA / "loan_data.xlsx", DATA / "customer_data.xlsx"]  # given in the wrong order on purpose

    first = toolkit.ingest_many(paths, db=db)
    assert [s.table for s in first] == ["customers", "loans"]
    for summary in first:
        assert isinstance(summary, toolkit.IngestSummary)
        got = {k: summary.to_dict()[k] for k in COUNTS}
        assert got == expected[Path(summary.file).name]

    second = toolkit.ingest_many(paths, db=db)
    for before, after in zip(first, second, strict=True):
        assert isinstance(before, toolkit.IngestSummary) and isinstance(after, toolkit.IngestSummary)
        assert (after.inserted, after.skipped) == (0, before.inserted)
        assert (after.duplicates, after.failed, after.total) == (before.duplicates, before.failed, before.total)

    with duckdb.connect(str(db), read_only=True) as con:
        counts = con.execute("SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM loans)").fetchall()[0]
    assert counts == (expected["customer_data.xlsx"]["inserted"], expected["loan_data.xlsx"]["inserted"])
