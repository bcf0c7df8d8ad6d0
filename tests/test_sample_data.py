"""The shipped sample workbooks give exactly the summary and the per-row failures documented in data/README.md,
fail every check the built-in specs define, and are what data/make_samples.py writes, byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

import toolkit
from tests.conftest import DATA
from toolkit.read import read_grid
from toolkit.rules import table_checks
from toolkit.specs import TableSpec, builtin_specs

COUNTS = ("total", "success", "failed", "inserted", "skipped", "duplicates")
CHANGES = DATA / "changes"
FIRST = [DATA / "loan_data.xlsx", DATA / "customer_data.xlsx"]  # given in the wrong order on purpose
THEN = [CHANGES / "loan_changes.xlsx", CHANGES / "customer_changes.xlsx"]
SCRIPT = DATA / "make_samples.py"


def expected(folder: Path, kind: str) -> dict[str, dict[str, Any]]:
    return json.loads((folder / f"expected_{kind}.json").read_text())


def count(summary: toolkit.IngestSummary | toolkit.ToolkitError) -> dict[str, int]:
    assert isinstance(summary, toolkit.IngestSummary), summary
    return {k: summary.to_dict()[k] for k in COUNTS}


def failed_checks(summary: toolkit.IngestSummary) -> dict[str, list[str]]:
    """{Excel row: the rules it failed, sorted} as JSON keys, like expected_rules.json."""
    rows: dict[str, list[str]] = {}
    for error in summary.errors:
        rows.setdefault(str(error["row"]), []).append(error["rule"])
    return {row: sorted(rules) for row, rules in rows.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[toolkit.IngestSummary]:
    """The documented sequence: both sample files on a fresh warehouse, then the later delivery in changes/."""
    db = tmp_path_factory.mktemp("samples") / "w.duckdb"
    outcomes = toolkit.ingest_many(FIRST, db=db) + toolkit.ingest_many(THEN, db=db)
    assert all(isinstance(o, toolkit.IngestSummary) for o in outcomes), outcomes
    return [o for o in outcomes if isinstance(o, toolkit.IngestSummary)]


def test_sample_workbooks_give_the_documented_summary_then_skip_everything_on_rerun(db: Path) -> None:
    summaries = expected(DATA, "summary")

    first = toolkit.ingest_many(FIRST, db=db)
    assert [s.table for s in first if isinstance(s, toolkit.IngestSummary)] == ["customers", "loans"]
    for summary in first:
        assert isinstance(summary, toolkit.IngestSummary)
        assert count(summary) == summaries[Path(summary.file).name]

    second = toolkit.ingest_many(FIRST, db=db)
    for before, after in zip(first, second, strict=True):
        assert isinstance(before, toolkit.IngestSummary) and isinstance(after, toolkit.IngestSummary)
        assert (after.inserted, after.skipped) == (0, before.inserted)
        assert (after.duplicates, after.failed, after.total) == (before.duplicates, before.failed, before.total)

    with duckdb.connect(str(db), read_only=True) as con:
        counts = con.execute("SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM loans)").fetchall()[0]
    assert counts == (summaries["customer_data.xlsx"]["inserted"], summaries["loan_data.xlsx"]["inserted"])


def test_the_later_delivery_gives_its_documented_summary(runs: list[toolkit.IngestSummary]) -> None:
    summaries = {**expected(DATA, "summary"), **expected(CHANGES, "summary")}
    assert [(Path(s.file).name, s.table) for s in runs] == [
        ("customer_data.xlsx", "customers"),
        ("loan_data.xlsx", "loans"),
        ("customer_changes.xlsx", "customers"),
        ("loan_changes.xlsx", "loans"),
    ]
    assert {Path(s.file).name: count(s) for s in runs} == summaries


def test_each_defective_row_fails_exactly_the_checks_documented_for_it(runs: list[toolkit.IngestSummary]) -> None:
    documented = {**expected(DATA, "rules"), **expected(CHANGES, "rules")}
    for summary in runs:
        name = Path(summary.file).name
        assert failed_checks(summary) == {row: sorted(rules) for row, rules in documented[name].items()}, name


def check_names(spec: TableSpec) -> set[str]:
    """Every check a spec can fail, derived from the spec: each column's checks (for a file with every column,
    each holding an Excel error somewhere), its cross-column rules, key, conflict, unique and foreign keys."""
    headers = {c.name: c.header for c in spec.columns}
    every_column_has_an_error_cell = pl.DataFrame({"__row": [2] * len(headers), "column": list(headers)})
    names = {check.name for check in table_checks(spec, headers, every_column_has_an_error_cell)}
    names |= {f"{'+'.join(spec.identity)}|key", f"{'+'.join(spec.identity)}|conflict"}
    names |= {f"{column}|unique" for column in spec.unique_columns}
    names |= {f"{'+'.join(fk.columns)}|foreign_key" for fk in spec.foreign_keys}
    return names


def test_the_derived_check_names_span_every_kind_of_check() -> None:
    # guards check_names itself: a derivation that found few names would make the next test vacuous
    specs = builtin_specs()
    kinds = {name.split("|")[-1] for spec in specs.values() for name in check_names(spec)}
    assert kinds >= {"required", "integer", "number", "date", "time_of_day", "phone", "excel_error"}
    assert kinds >= {"min", "max", "greater_than", "key", "conflict", "unique", "foreign_key"}
    assert kinds >= {rule.name for spec in specs.values() for rule in spec.rules}


def test_the_samples_fail_every_check_of_the_built_in_specs(runs: list[toolkit.IngestSummary]) -> None:
    failed: dict[str, set[str]] = {}
    for summary in runs:
        failed.setdefault(summary.table, set()).update(e["rule"] for e in summary.errors)
    for table, spec in builtin_specs().items():
        assert sorted(check_names(spec) - failed.get(table, set())) == [], f"no planted defect for these {table} checks"
        assert failed[table] <= check_names(spec)  # and nothing the derivation does not know of


def test_make_samples_writes_the_same_bytes_every_run_and_the_committed_files_are_its_output(tmp_path: Path) -> None:
    for out in ("one", "two"):
        subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / out)], check=True, capture_output=True, timeout=120)
    written = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert [str(p) for p in written] == [
        "README.md",
        "changes/customer_changes.xlsx",
        "changes/expected_rules.json",
        "changes/expected_summary.json",
        "changes/loan_changes.xlsx",
        "customer_data.xlsx",
        "expected_rules.json",
        "expected_summary.json",
        "loan_data.xlsx",
    ]
    for relative in written:
        assert (tmp_path / "one" / relative).read_bytes() == (tmp_path / "two" / relative).read_bytes(), relative
        # The committed copies are up to date: documents byte for byte, workbooks cell for cell (their bytes
        # may differ under another xlsxwriter version).
        generated, committed = tmp_path / "one" / relative, DATA / relative
        if relative.suffix == ".xlsx":
            assert read_grid(generated).cells.equals(read_grid(committed).cells), relative
        else:
            assert generated.read_text() == committed.read_text(), f"{relative}: run python data/make_samples.py"
