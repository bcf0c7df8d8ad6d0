"""Every odd or broken spreadsheet in the shared corpus ingests or fails cleanly (issue 6).

Each file goes through the CLI with the built-in specs (no match is the usual, clean, outcome) and
through the Python API with a spec inferred from the file itself, so the reader, validation and
loader see every odd file for real. ``OUTCOMES`` pins what each file does: a new corpus file, or a
file whose outcome changes, fails here until the table says what it should do.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

import duckdb
import pytest

import toolkit
from tests.conftest import ODDFILES, ROOT
from toolkit.infer import infer_spec
from toolkit.specs import parse_spec

CORPUS = sorted(ODDFILES.glob("*")) if ODDFILES.is_dir() else []
pytestmark = pytest.mark.skipif(not CORPUS, reason="../shared/data/oddfiles is not beside this clone")


class Loaded(NamedTuple):
    """The file ingests with its inferred spec: these counts and exactly these rejections."""

    total: int
    inserted: int
    duplicates: int
    errors: list[tuple[int, str, str | None]]  # (Excel row, rule, value)


NO_SPEC = "no table spec matches the headers"
EMPTY_SHEET = "the sheet is empty (no header row, no data)"
EMPTY_FILE = "the file is empty (0 bytes); it is not a workbook"
PASSWORD = "the workbook is password-protected; save an unprotected copy and ingest that"

# file -> (the CLI's error with the built-in specs, what the API does with the file's inferred spec)
OUTCOMES: dict[str, tuple[str, Loaded | str]] = {
    "fastexcel__dates.ods": (NO_SPEC, Loaded(1, 1, 0, [])),
    "fastexcel__decimal-numbers.xlsx": (NO_SPEC, Loaded(2, 2, 0, [])),
    "fastexcel__div0.xlsx": (NO_SPEC, Loaded(4, 3, 0, [(2, "quotient|excel_error", "#DIV/0!")])),
    "fastexcel__empty.ods": (EMPTY_SHEET, EMPTY_SHEET),
    "fastexcel__empty.xlsx": (EMPTY_SHEET, EMPTY_SHEET),
    "fastexcel__fixture-changing-header-location.xlsx": (NO_SPEC, Loaded(2, 2, 0, [])),  # the header is on row 2, under a title
    "fastexcel__fixture-invalid-cell-value-num.xlsx": (NO_SPEC, Loaded(2, 1, 0, [(3, "column|excel_error", "#NUM!")])),
    "fastexcel__fixture-invalid-cell-value.xlsx": (
        NO_SPEC,
        Loaded(4, 2, 0, [(2, "date|excel_error", "#N/A"), (3, "date|excel_error", "#VALUE!")]),
    ),
    "fastexcel__fixture-multi-dtypes-columns.xlsx": (NO_SPEC, Loaded(9, 7, 2, [])),
    "fastexcel__fixture-multi-sheet.xlsx": (NO_SPEC, Loaded(1, 1, 0, [])),
    "fastexcel__fixture-sheets-different-visibilities.xlsx": (NO_SPEC, Loaded(0, 0, 0, [])),
    "fastexcel__fixture-single-sheet-duplicated-columns.xlsx": (
        NO_SPEC,
        "headers 'col' (column A) and 'col' (column B) and 'col' (column C) both map to column 'col'",
    ),
    "fastexcel__fixture-single-sheet-with-types.xlsx": (NO_SPEC, Loaded(3, 3, 0, [])),
    "fastexcel__fixture-single-sheet.xlsx": (NO_SPEC, Loaded(2, 2, 0, [])),
    "fastexcel__fixture-type-errors.xlsx": (NO_SPEC, Loaded(21, 15, 6, [])),
    "fastexcel__infer-dtypes-fallback.xlsx": (NO_SPEC, Loaded(140150, 140049, 101, [])),
    "fastexcel__no-header.xlsx": (NO_SPEC, Loaded(5, 5, 0, [])),
    "fastexcel__null-bytes-in-columns-names.xls": (NO_SPEC, Loaded(8760, 8760, 0, [])),
    "fastexcel__null-column.xlsx": (NO_SPEC, Loaded(20, 20, 0, [])),
    "fastexcel__sheet-and-table-with-offset.xlsx": (NO_SPEC, Loaded(3, 3, 0, [])),
    "fastexcel__sheet-and-table-with-whitespace.xlsx": (NO_SPEC, Loaded(6, 6, 0, [])),
    "fastexcel__sheet-null-strings-empty.xlsx": (NO_SPEC, Loaded(10, 10, 0, [])),
    "fastexcel__sheet-null-strings.xlsx": (NO_SPEC, Loaded(10, 10, 0, [])),
    "fastexcel__sheet-with-defined-names.xlsx": (NO_SPEC, Loaded(3, 3, 0, [])),
    "fastexcel__sheet-with-na.xlsx": (NO_SPEC, Loaded(2, 1, 0, [(2, "amount|excel_error", "#N/A")])),
    "fastexcel__sheet-with-tables.xlsx": (NO_SPEC, Loaded(3, 3, 0, [])),
    "fastexcel__single-sheet-skip-rows-durations.xlsx": (NO_SPEC, Loaded(2, 2, 0, [])),
    "python-calamine__any_sheets.ods": (NO_SPEC, Loaded(3, 3, 0, [])),
    "python-calamine__any_sheets.xls": (NO_SPEC, Loaded(3, 3, 0, [])),
    "python-calamine__any_sheets.xlsb": (NO_SPEC, Loaded(3, 3, 0, [])),
    "python-calamine__any_sheets.xlsx": (NO_SPEC, Loaded(3, 3, 0, [])),
    "python-calamine__base.ods": (NO_SPEC, Loaded(0, 0, 0, [])),
    "python-calamine__base.xls": (NO_SPEC, Loaded(0, 0, 0, [])),
    "python-calamine__base.xlsb": (NO_SPEC, Loaded(0, 0, 0, [])),
    "python-calamine__base.xlsx": (NO_SPEC, Loaded(0, 0, 0, [])),
    "python-calamine__empty_file.ods": (EMPTY_FILE, EMPTY_FILE),
    "python-calamine__empty_file.xlsb": (EMPTY_FILE, EMPTY_FILE),
    "python-calamine__empty_file.xlsx": (EMPTY_FILE, EMPTY_FILE),
    "python-calamine__issue139.xlsx": (NO_SPEC, Loaded(1, 1, 0, [])),
    "python-calamine__password.ods": (PASSWORD, PASSWORD),
    "python-calamine__password.xls": (PASSWORD, PASSWORD),
    "python-calamine__password.xlsb": (PASSWORD, PASSWORD),
    "python-calamine__password.xlsx": (PASSWORD, PASSWORD),
    "python-calamine__table-multiple.xlsx": (NO_SPEC, Loaded(4, 4, 0, [])),
}


def test_the_table_covers_the_corpus() -> None:
    assert sorted(OUTCOMES) == [p.name for p in CORPUS], "a corpus file was added or removed: say what it should do"


def test_the_cli_gives_each_corpus_file_its_one_line_and_never_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", "ingest", *map(str, CORPUS), "--db", str(tmp_path / "w.duckdb"), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in done.stderr
    assert done.stdout == ""  # no corpus file matches a built-in spec
    lines = done.stderr.splitlines()
    assert len(lines) == len(CORPUS), lines
    for path, line in zip(CORPUS, lines, strict=True):  # bad files are reported in the order given
        assert line.startswith((f"error: {path.name}:", f"error: {path.name},")), line
        assert OUTCOMES[path.name][0] in line, line
    assert done.returncode == 2


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_each_corpus_file_does_what_the_table_says_with_its_own_inferred_spec(path: Path, db: Path) -> None:
    expected = OUTCOMES[path.name][1]
    try:
        spec = parse_spec(tomllib.loads(infer_spec(path, table="odd")), source=path.name)
        summary = toolkit.ingest(path, db=db, specs={"odd": spec}, table="odd")
    except toolkit.ToolkitError as exc:
        assert isinstance(expected, str), f"expected {expected}, got: {exc}"
        message = str(exc)
        assert "\n" not in message and message.startswith(path.name) and expected in message
        return
    assert isinstance(expected, Loaded), f"expected an error containing {expected!r}, got {summary!r}"
    errors = sorted((e["row"], e["rule"], e["value"]) for e in summary.errors)
    assert (summary.total, summary.inserted, summary.duplicates, errors) == tuple(expected)
    assert summary.total == summary.success + summary.failed
    assert summary.success == summary.inserted + summary.skipped + summary.duplicates + summary.updated
    again = toolkit.ingest(path, db=db, specs={"odd": spec}, table="odd")
    assert (again.inserted, again.skipped) == (0, expected.inserted)


def test_an_ods_duration_is_stored_as_hours_minutes_seconds(db: Path) -> None:
    path = ODDFILES / "fastexcel__dates.ods"
    spec = parse_spec(tomllib.loads(infer_spec(path, table="odd")), source=path.name)
    toolkit.ingest(path, db=db, specs={"odd": spec}, table="odd")
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute('SELECT "time" FROM odd').fetchall() == [("1:02:03",)]
