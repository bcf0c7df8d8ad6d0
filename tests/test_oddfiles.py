"""Every odd or broken spreadsheet in the shared corpus ingests or fails cleanly (issue 6).

Each file goes through the CLI with the built-in specs (no match is the usual, clean, outcome) and
through the Python API with a spec inferred from the file itself, so the reader, validation and
loader see every odd file for real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import toolkit
from tests.conftest import ODDFILES, ROOT
from toolkit.infer import infer_spec
from toolkit.specs import parse_spec

CORPUS = sorted(ODDFILES.glob("*")) if ODDFILES.is_dir() else []
pytestmark = pytest.mark.skipif(not CORPUS, reason="../shared/data/oddfiles is not beside this clone")


def test_the_cli_gives_each_corpus_file_one_outcome_and_never_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", "ingest", *map(str, CORPUS), "--db", str(tmp_path / "w.duckdb"), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in done.stderr
    summaries = [json.loads(line) for line in done.stdout.splitlines()]
    errors = done.stderr.splitlines()
    assert len(summaries) + len(errors) == len(CORPUS)
    assert all(line.startswith("error: ") for line in errors)
    named = {Path(s["file"]).name for s in summaries}
    named |= {f.name for f in CORPUS for line in errors if line.startswith((f"error: {f.name}:", f"error: {f.name},"))}
    assert named == {f.name for f in CORPUS}
    for summary in summaries:
        assert summary["total"] == summary["success"] + summary["failed"]
        assert summary["success"] == summary["inserted"] + summary["skipped"] + summary["duplicates"] + summary["updated"]
    assert done.returncode == (2 if errors else 0)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_each_corpus_file_ingests_with_its_own_inferred_spec_or_fails_with_one_line(path: Path, db: Path) -> None:
    try:
        spec = parse_spec(tomllib.loads(infer_spec(path, table="odd")), source=path.name)
        summary = toolkit.ingest(path, db=db, specs={"odd": spec}, table="odd")
    except toolkit.ToolkitError as exc:
        message = str(exc)
        assert "\n" not in message and path.name in message
        return
    assert summary.total == summary.success + summary.failed
    assert summary.success == summary.inserted + summary.skipped + summary.duplicates + summary.updated
    # the inferred spec fits its own file: only Excel error cells are ever rejected
    assert {e["rule"].split("|")[-1] for e in summary.errors} <= {"excel_error"}
    again = toolkit.ingest(path, db=db, specs={"odd": spec}, table="odd")
    assert again.inserted == 0
