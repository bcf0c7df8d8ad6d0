from __future__ import annotations

import dataclasses
import itertools
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import xlsxwriter
from hypothesis import given
from hypothesis import strategies as st

import toolkit
from tests.conftest import CUSTOMER_HEADERS, LOAN_HEADERS, customer, loan
from toolkit.cli import main
from toolkit.report import MAX_BARS, bar_chart, escape, report_html, run_section, summary_html, warehouse_html
from toolkit.runs import connect_read_only, from_summary, read_run

Workbook = Callable[..., Path]
SNAPSHOTS = Path(__file__).parent / "snapshots"
XHTML = "{http://www.w3.org/1999/xhtml}"
SCRIPT = "<script>alert(1)</script>"


def ticking(start: datetime = datetime(2024, 5, 1, 9, 0)) -> Callable[[], datetime]:
    counter = itertools.count()
    return lambda: start + timedelta(seconds=0.75 * next(counter))


def parse(page: str) -> ET.Element:
    """The page as XML: fails on any unclosed tag, stray '&' or forbidden character."""
    return ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))


def text_of(element: ET.Element) -> str:
    return "".join(element.itertext())


@pytest.fixture
def customers(workbook: Workbook, db: Path) -> toolkit.IngestSummary:
    rows = [
        [*CUSTOMER_HEADERS, "Notes"],
        [*customer(1), None],
        [*customer(2, Age="abc"), "x"],
        [*customer(3, Monthly_Salary=None, Phone_Number="12"), None],
    ]
    return toolkit.ingest(workbook(rows, name="customers.xlsx"), db=db, clock=ticking(), run_id="run-1")


def test_page_is_well_formed_and_self_contained(customers: toolkit.IngestSummary) -> None:
    page = customers.to_html()
    root = parse(page)
    assert root.tag == "html"
    assert not re.search(r"<script|<link|<img|<iframe|src=|@import|url\(", page, re.IGNORECASE)
    assert all(a.get("href", "#").startswith("#") for a in root.iter("a"))
    # The only URL is the SVG namespace, which is a name, not a resource.
    assert set(re.findall(r"https?://[^\s\"'<]+", page)) == {"http://www.w3.org/2000/svg"}


def test_page_shows_metadata_counts_invariants_and_warnings(customers: toolkit.IngestSummary) -> None:
    text = text_of(parse(customers.to_html()))
    for expected in [
        "run-1",
        customers.file,
        customers.file_sha256,
        "Sheet1",
        "customers",
        "2024-05-01 09:00:00",
        "0.75 s",
        "1000",
        toolkit.__version__,
        "total = success + failed: 3 = 1 + 2",
        "success = inserted + skipped + duplicates + updated: 1 = 1 + 0 + 0 + 0",
        "Notes",
    ]:
        assert expected in text


def test_failures_appear_as_a_table_and_as_an_svg_chart(customers: toolkit.IngestSummary) -> None:
    root = parse(customers.to_html())
    charts = list(root.iter("{http://www.w3.org/2000/svg}svg"))
    assert [c.get("aria-label") for c in charts] == ["Failures by rule", "Failures by column"]
    bars = [text_of(t) for t in charts[1].iter("{http://www.w3.org/2000/svg}text")]
    assert bars == ["Age", "1", "Monthly Salary", "1", "Phone Number", "1"]
    tables = [t for t in root.iter("table") if t.find("tr/th") is not None and text_of(t.find("tr/th")) == "column"]
    assert [[text_of(td) for td in tr.iter("td")] for tr in tables[0].findall("tr")[1:]] == [
        ["Age", "1"],
        ["Monthly Salary", "1"],
        ["Phone Number", "1"],
    ]


def test_rejected_rows_show_excel_row_reasons_values_and_highlight_failing_cells(customers: toolkit.IngestSummary) -> None:
    root = parse(customers.to_html())
    table = next(t for t in root.iter("table") if "tk-rejected" in t.get("class", ""))
    header, *rows = table.findall("tr")
    assert [text_of(th) for th in header] == ["Excel row", "reasons", *CUSTOMER_HEADERS]
    cells = [[(text_of(td), td.get("class")) for td in tr] for tr in rows]
    assert [c[0][0] for c in cells] == ["3", "4"]
    assert cells[0][1][0] == "Age: 'abc' is not a whole number"
    failing = [
        [(name, text) for name, (text, cls) in zip(CUSTOMER_HEADERS, row[2:], strict=True) if cls == "tk-fail"] for row in cells
    ]
    assert failing == [[("Age", "abc")], [("Phone Number", "12"), ("Monthly Salary", "empty")]]


@pytest.mark.parametrize(("limit", "note"), [(1, "1 more in _rejects"), (2, None), (None, None)])
def test_rows_beyond_the_limit_are_counted_and_pointed_to(
    customers: toolkit.IngestSummary, limit: int | None, note: str | None
) -> None:
    text = text_of(parse(summary_html([customers], limit=limit)))
    assert ("more in _rejects" in text) == (note is not None)
    if note:
        assert note in text and "Rejected rows (2)" in text


def test_a_clean_run_has_no_failure_sections(workbook: Workbook, db: Path) -> None:
    summary = toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    text = text_of(parse(summary.to_html()))
    assert "Failures by rule" not in text and "Rejected rows" not in text


def test_repr_html_is_the_same_report_inline_with_its_styles(customers: toolkit.IngestSummary) -> None:
    fragment = customers._repr_html_()
    root = parse(fragment)
    assert root.tag == "div" and root.find("style") is not None
    assert run_section(from_summary(customers)) in fragment
    assert run_section(from_summary(customers)) in customers.to_html()


def test_to_html_writes_the_page(customers: toolkit.IngestSummary, tmp_path: Path) -> None:
    out = tmp_path / "run.html"
    assert customers.to_html(str(out)) == out.read_text(encoding="utf-8")


# --- every value that came from a workbook is escaped, whichever way the report is made -------------


@pytest.fixture
def hostile(workbook: Workbook, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    rows = [
        [*CUSTOMER_HEADERS, "<u>bold</u> & co"],
        [*customer(1, First_Name=SCRIPT, Age="\"'<x>"), "<img src=x onerror=alert(2)>"],
        [*customer(2), None],
    ]
    path = workbook(rows, name="<i>book<i>.xlsx", sheet="<s>")
    monkeypatch.chdir(tmp_path)
    return {"path": path, "db": db}


def _page_from_ingest_report(hostile: dict[str, Any], tmp_path: Path) -> str:
    out = tmp_path / "ingest.html"
    assert main(["ingest", str(hostile["path"]), "--db", str(hostile["db"]), "--report", str(out), "--quiet"]) == 0
    return out.read_text(encoding="utf-8")


def _page_from_report_command(hostile: dict[str, Any], tmp_path: Path) -> str:
    toolkit.ingest(hostile["path"], db=hostile["db"])
    out = tmp_path / "report.html"
    assert main(["report", "--db", str(hostile["db"]), "--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def _page_from_repr(hostile: dict[str, Any], tmp_path: Path) -> str:
    return toolkit.ingest(hostile["path"], db=hostile["db"])._repr_html_()


@pytest.mark.parametrize("render", [_page_from_ingest_report, _page_from_report_command, _page_from_repr])
def test_workbook_values_are_shown_as_text_never_as_markup(
    hostile: dict[str, Any], tmp_path: Path, render: Callable[[dict[str, Any], Path], str], capsys: pytest.CaptureFixture[str]
) -> None:
    page = render(hostile, tmp_path)
    for markup in ("<script", "<img", "<u>", "<i>", "<s>"):
        assert markup not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    text = text_of(parse(page))
    for shown in (SCRIPT, "<i>book<i>.xlsx", "<s>", "<u>bold</u> & co", "\"'<x>"):
        assert shown in text


BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@given(st.text() | st.lists(st.sampled_from(["a", "<", "\x01", *BIDI_CONTROLS])).map("".join))
def test_escaped_text_is_well_formed_and_reads_back_as_itself(value: str) -> None:
    shown = text_of(ET.fromstring(f'<p title="{escape(value)}">{escape(value)}</p>'))
    visible = "".join(
        chr(0x2400 + ord(c))
        if c < " " and c not in "\t\n\r"
        else "\u2421"
        if c == "\x7f"
        else "\ufffd"
        if c in "\ufffe\uffff"
        else f"[U+{ord(c):04X}]"
        if c in BIDI_CONTROLS
        else c
        for c in value
    )
    assert shown == visible.replace("\r\n", "\n").replace("\r", "\n")


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("invoice\u202efdp.exe", "invoice[U+202E]fdp.exe"),  # right-to-left override: would read "invoiceexe.pdf"
        ("\u202dabc\u202c", "[U+202D]abc[U+202C]"),
        ("\u2066x\u2067y\u2068z\u2069", "[U+2066]x[U+2067]y[U+2068]z[U+2069]"),
        ("a\u200eb\u200fc", "a[U+200E]b[U+200F]c"),
        ("\u05e9\u05dc\u05d5\u05dd", "\u05e9\u05dc\u05d5\u05dd"),  # right-to-left text itself is kept as it is
    ],
)
def test_bidirectional_controls_are_shown_not_applied(cell: str, shown: str) -> None:
    assert escape(cell) == shown


@given(st.dictionaries(st.text(min_size=1), st.integers(min_value=1, max_value=10**6), max_size=40))
def test_bar_chart_is_well_formed_and_draws_the_largest_counts(counts: dict[str, int]) -> None:
    ranked = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    svg = ET.fromstring(bar_chart(ranked, title="t"))
    drawn = list(svg.iter("{http://www.w3.org/2000/svg}rect"))
    assert len(drawn) == min(len(counts), MAX_BARS)
    widths = [int(r.get("width", "0")) for r in drawn]
    assert widths == sorted(widths, reverse=True)


# --- reports of past runs from the warehouse ----------------------------------------------------------


def test_a_past_run_reported_from_the_warehouse_matches_the_report_made_when_it_ran(
    customers: toolkit.IngestSummary, db: Path
) -> None:
    with connect_read_only(db) as con:
        assert run_section(read_run(con, "run-1")) == run_section(from_summary(customers))


def test_a_multi_run_report_shows_the_history_and_every_run(workbook: Workbook, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1), customer(2)]), db=db, run_id="c", clock=ticking())
    loans = [LOAN_HEADERS, loan(1, 10), loan(2, 11, Tenure="x"), loan(7, 12)]
    toolkit.ingest(workbook(loans), db=db, run_id="l", clock=ticking(datetime(2024, 5, 2)))
    root = parse(warehouse_html(db, last=5))
    history = next(t for t in root.iter("table"))
    rows = [[text_of(td) for td in tr] for tr in history.findall("tr")[1:]]
    assert [(r[1], r[4], r[5], r[7:10]) for r in rows] == [
        ("c", "customers", "completed", ["2", "2", "0"]),
        ("l", "loans", "completed", ["3", "1", "2"]),
    ]
    assert [s.get("id") for s in root.iter("section")] == ["run-c", "run-l"]
    assert [a.get("href") for a in history.iter("a")] == ["#run-c", "#run-l"]


def test_report_html_of_one_run_has_no_history_table(customers: toolkit.IngestSummary) -> None:
    assert "<h2>Runs</h2>" not in report_html([from_summary(customers)])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "{tmp}/missing.duckdb"], "error: {tmp}/missing.duckdb: no such warehouse\n"),
        (["--db", "{db}", "--run", "nope"], "error: {db}: no run 'nope' in _runs\n"),
    ],
)
def test_report_command_refuses_with_one_line_and_exit_2(
    customers: toolkit.IngestSummary,
    db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "r.html"
    filled = [a.format(tmp=tmp_path, db=db) for a in args]
    assert main(["report", *filled, "--out", str(out)]) == 2
    assert capsys.readouterr().err == message.format(tmp=tmp_path, db=db)
    assert not out.exists()


def test_report_command_writes_the_runs_asked_for(customers: toolkit.IngestSummary, db: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert main(["report", "--db", str(db), "--run", "run-1", "--out", str(out)]) == 0
    assert run_section(from_summary(customers)) in out.read_text(encoding="utf-8")


# --- determinism: the same run renders to the same bytes ----------------------------------------------


def _fixed_workbook(path: Path, rows: list[list[Any]]) -> Path:
    """Like conftest's write_workbook, with a fixed creation date so the file (and its sha256) never changes."""
    book = xlsxwriter.Workbook(str(path))
    book.set_properties({"created": datetime(2024, 1, 1)})
    dates = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet = book.add_worksheet("Sheet1")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, str):
                sheet.write_string(r, c, value)
            elif hasattr(value, "year"):
                sheet.write_datetime(r, c, datetime(value.year, value.month, value.day), dates)
            elif value is not None:
                sheet.write(r, c, value)
    book.close()
    return path


def test_report_matches_the_stored_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regenerate after an intended change with ``UPDATE_SNAPSHOTS=1 pytest tests/test_report.py``."""
    monkeypatch.chdir(tmp_path)
    rows = [
        [*LOAN_HEADERS, "Branch"],
        [*loan(1, 10), "north"],
        [*loan(1, 11, Tenure="12.5", **{"Interest Rate": 0}), "south"],
        [*loan(1, 12, **{"End Date": datetime(2019, 1, 1)}), None],
        [*loan(None, 13, **{"Loan Amount": "=SUM(A1:A9)"}), "<b>east</b>"],
        [*loan(1, 10), "north"],
    ]
    _fixed_workbook(Path("loans.xlsx"), rows)
    toolkit.ingest(_fixed_workbook(Path("customers.xlsx"), [CUSTOMER_HEADERS, customer(1)]), db="w.duckdb")
    summary = toolkit.ingest("loans.xlsx", db="w.duckdb", clock=ticking(), run_id="snapshot-run")
    page = summary.to_html()
    stored = SNAPSHOTS / "report.html"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        stored.write_text(page, encoding="utf-8")
    assert page == stored.read_text(encoding="utf-8")
    assert summary.to_html() == page
    parse(page)


# --- update runs: counted, checked and shown change by change -----------------------------------


@pytest.fixture
def updated(workbook: Workbook, db: Path) -> toolkit.IngestSummary:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1), customer(2), customer(3)]), db=db, run_id="v1", clock=ticking())
    rows = [
        CUSTOMER_HEADERS,
        customer(1, Age=40, Monthly_Salary=61000),  # updated: two columns
        customer(2),  # unchanged: skipped
        customer(3, **{"Last Name": SCRIPT}),  # updated: one column, a value to escape
        customer(4),  # inserted
        customer(5, Age="x"),  # rejected
    ]
    clock = ticking(datetime(2024, 5, 2))
    return toolkit.ingest(workbook(rows, name="v2.xlsx"), db=db, run_id="v2", clock=clock, on_conflict="update")


def _updates_table(root: ET.Element) -> list[list[str]]:
    table = next(t for t in root.iter("table") if "tk-updated" in t.get("class", ""))
    return [[text_of(td) for td in tr] for tr in table.findall("tr")]


def test_an_update_run_reports_updated_with_the_invariant_and_each_change(updated: toolkit.IngestSummary) -> None:
    page = updated.to_html()
    root = parse(page)
    text = text_of(root)
    assert "success = inserted + skipped + duplicates + updated: 4 = 1 + 1 + 0 + 2" in text
    assert [e.get("class") for e in root.iter("span") if "✓" in text_of(e) or "✗" in text_of(e)] == ["tk-pass"] * 2
    assert [text_of(b) for b in root.iter("div") if "tk-count" in b.get("class", "").split()][-1] == "2updated"
    assert "Updated rows (2)" in text
    assert _updates_table(root) == [
        ["Excel row", "column", "in the warehouse before", "from the file"],
        ["2", "Age", "34", "40"],
        ["Monthly Salary", "50000", "61000"],
        ["4", "Last Name", "Rao", SCRIPT],
    ]
    assert "<script" not in page


def test_an_update_run_reads_the_same_from_the_summary_and_from_the_warehouse(updated: toolkit.IngestSummary, db: Path) -> None:
    with connect_read_only(db) as con:
        from_warehouse = read_run(con, "v2")
    assert from_warehouse.updated == 2 and from_warehouse.updates_total == 2
    assert run_section(from_warehouse) == run_section(from_summary(updated))
    assert "Updated rows (2)" in text_of(parse(warehouse_html(db, run_ids=["v2"])))


def test_updated_rows_beyond_the_limit_are_counted_and_pointed_to(updated: toolkit.IngestSummary, db: Path) -> None:
    text = text_of(parse(summary_html([updated], limit=1)))
    assert "1 more in _changes (SELECT * FROM _changes WHERE run_id = 'v2')" in text
    assert "Updated rows (2)" in text


def test_the_history_counts_updates(updated: toolkit.IngestSummary, db: Path) -> None:
    root = parse(warehouse_html(db, last=2))
    history = next(t for t in root.iter("table"))
    header, *rows = [[text_of(c) for c in tr] for tr in history.findall("tr")]
    assert header[-1] == "updated"
    assert [(r[1], r[-1]) for r in rows] == [("v1", "0"), ("v2", "2")]


def test_a_summary_reports_the_changes_its_run_made_not_what_the_warehouse_holds_when_rendered(
    updated: toolkit.IngestSummary, db: Path, tmp_path: Path
) -> None:
    expected = _updates_table(parse(updated.to_html()))
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM _changes").fetchall()
    elsewhere = dataclasses.replace(updated, database=str(tmp_path / "gone.duckdb"))
    for summary in (updated, elsewhere):
        assert _updates_table(parse(summary.to_html())) == expected


def test_a_summary_without_its_changes_still_counts_its_updates(updated: toolkit.IngestSummary) -> None:
    # as one rebuilt from to_dict() (a summary back from the cluster) is
    rebuilt = dataclasses.replace(updated, changes=pl.DataFrame())
    text = text_of(parse(rebuilt.to_html()))
    assert "Updated rows (2)" in text and "2 more in _changes" in text


# --- failures naming no single cell mark every cell they are about ----------------------------------


def test_a_cross_column_rule_and_a_composite_key_clash_outline_their_columns(workbook: Workbook, db: Path) -> None:
    toolkit.ingest(workbook([CUSTOMER_HEADERS, customer(1)]), db=db)
    rows = [
        LOAN_HEADERS,
        loan(1, 10, **{"End Date": datetime(2019, 1, 1)}),  # end before start
        loan(1, 11, Tenure=12),
        loan(1, 11, Tenure=24),  # same (customer, loan) with other values
    ]
    root = parse(toolkit.ingest(workbook(rows), db=db).to_html())
    table = next(t for t in root.iter("table") if "tk-rejected" in t.get("class", ""))
    header, *body = table.findall("tr")
    names = [text_of(th) for th in header]
    outlined = {
        int(text_of(tr[0])): {names[i]: td.get("title") for i, td in enumerate(tr) if td.get("class") == "tk-fail"} for tr in body
    }
    clash = "Customer ID 1, Loan ID 11 is used by rows 3 and 4 with different values"
    assert outlined == {
        2: {"Date of Approval": "End Date is before Date of Approval", "End Date": "End Date is before Date of Approval"},
        3: {"Customer ID": clash, "Loan ID": clash},
        4: {"Customer ID": clash, "Loan ID": clash},
    }
