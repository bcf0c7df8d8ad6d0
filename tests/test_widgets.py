from __future__ import annotations

import ast
import datetime as dt
import json
import math
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import nbformat
import openpyxl
import polars as pl
import pytest

import toolkit
from tests.conftest import CUSTOMER_HEADERS, DATA, LOAN_HEADERS, ROOT, STOCK_SPEC, customer, loan
from toolkit.report import escape
from toolkit.widgets import IngestApp, rejects_table

EXPECTED = json.loads((DATA / "expected_summary.json").read_text())
#: Seconds any wait on the worker may take: a bound, never a pause (the waits return as soon as it answers).
BOUND = 60


def counts(summary: toolkit.IngestSummary) -> dict[str, int]:
    return {k: summary.to_dict()[k] for k in EXPECTED["customer_data.xlsx"]}


def run(app: IngestApp, *paths: Path) -> None:
    if paths:
        app.select(*paths)
    app.run_button.click()
    app.wait()


@pytest.fixture
def customers(workbook: Callable[..., Path]) -> Path:
    """Ten customers: rows 3 (age 'abc') and 6 (phone missing, salary '-5') are rejected."""
    rows = [customer(i) for i in range(1, 11)]
    rows[1] = customer(2, Age="abc")
    rows[4] = customer(5, Phone_Number=None, Monthly_Salary="-5")
    return workbook([CUSTOMER_HEADERS, *rows], name="customers.xlsx")


@pytest.fixture
def app(tmp_path: Path, customers: Path) -> IngestApp:
    return IngestApp(data_dir=customers.parent, db=tmp_path / "warehouse.duckdb", upload_dir=tmp_path / "uploads")


class Gate:
    """Holds the app's worker at a point the test chooses, until the test lets it go on.

    The worker calls ``hold(what)``; the test waits for it with ``reached()`` and lets it go with
    ``release()``. Every wait is bounded. Called on the main thread (a job run inline, not in the
    background), ``hold`` does not block: the test's checks fail instead of the test hanging.
    """

    def __init__(self) -> None:
        self._reached: queue.Queue[object] = queue.Queue()
        self._go = threading.Semaphore(0)
        self._open = threading.Event()
        self.threads: list[threading.Thread] = []

    def hold(self, what: object) -> None:
        self.threads.append(threading.current_thread())
        self._reached.put(what)
        if threading.current_thread() is threading.main_thread() or self._open.is_set():
            return
        self._go.acquire(timeout=BOUND)

    def reached(self) -> object:
        return self._reached.get(timeout=BOUND)

    def release(self) -> None:
        self._go.release()

    def open(self) -> None:
        self._open.set()
        self._go.release(100)


@pytest.fixture
def gate(app: IngestApp) -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.open()  # a failed check must not leave the worker held
    app.wait(BOUND)


def test_the_form_lists_the_folders_workbooks_and_the_chosen_workbooks_sheets(
    tmp_path: Path, workbook: Callable[..., Path]
) -> None:
    book = workbook([CUSTOMER_HEADERS, customer(1)], name="two.xlsx", sheet="People", extra_sheets={"Notes": [["x"]]})
    (tmp_path / "notes.txt").write_text("not a workbook")
    app = IngestApp(data_dir=tmp_path, db=tmp_path / "w.duckdb")

    assert app.files.options == (("two.xlsx", str(book)),)
    assert app.files.value == (str(book),)
    assert app.sheet.options == (("first visible sheet", ""), ("People", "People"), ("Notes", "Notes"))
    assert [label for label, _ in app.table.options] == ["auto (from the headers)", "customers", "loans"]


def test_several_workbooks_use_each_ones_first_visible_sheet(app: IngestApp, customers: Path) -> None:
    app.select(customers, DATA / "loan_data.xlsx")

    assert (app.sheet.options, app.sheet.disabled) == ((("first visible sheet of each", ""),), True)


def test_preview_predicts_the_counts_and_rejects_without_writing(app: IngestApp, tmp_path: Path) -> None:
    app.preview_button.click()
    app.wait()

    [summary] = app.summaries
    assert (summary.status, summary.inserted, summary.failed) == ("preview", 8, 2)
    assert not (tmp_path / "warehouse.duckdb").exists()
    assert "nothing was written" in app.summary_view.value
    assert "Age: &#x27;abc&#x27; is not a whole number" in app.rejects_view.value


def test_run_loads_the_sample_workbooks_parents_first_and_a_rerun_skips_everything(tmp_path: Path) -> None:
    app = IngestApp(data_dir=DATA, db=tmp_path / "w.duckdb")

    run(app, DATA / "loan_data.xlsx", DATA / "customer_data.xlsx")
    assert [(Path(s.file).name, counts(s)) for s in app.summaries] == list(EXPECTED.items())
    assert app.message.value == ""
    customers, loans = EXPECTED["customer_data.xlsx"], EXPECTED["loan_data.xlsx"]
    assert app.status.value == f"done: 2 run(s), {customers['inserted'] + loans['inserted']} rows inserted"
    assert [label for label, _ in app.run_choice.options] == [
        f"customer_data.xlsx → customers ({customers['failed']} rejected)",
        f"loan_data.xlsx → loans ({loans['failed']} rejected)",
    ]
    assert app.progress.value == app.progress.max  # the last workbook's bar ends full

    run(app)
    assert [(s.inserted, s.skipped) for s in app.summaries] == [(0, customers["inserted"]), (0, loans["inserted"])]


def test_cancel_stops_after_the_current_batch_and_records_a_cancelled_run(app: IngestApp, tmp_path: Path) -> None:
    app.batch_size.value = 3
    seen = []
    on_progress = app._on_progress

    def cancel_after_first_batch(progress: toolkit.Progress, **where: int) -> None:
        seen.append(progress.rows_done)
        on_progress(progress, **where)
        app.cancel_button.click()

    app._on_progress = cancel_after_first_batch  # type: ignore[method-assign]
    run(app)

    [summary] = app.summaries
    assert seen == [3]
    assert (summary.status, summary.inserted) == ("cancelled", 3)
    assert app.status.value.startswith("cancelled")
    assert (app.run_button.disabled, app.cancel_button.disabled) == (False, True)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT status, inserted FROM _runs").fetchall() == [("cancelled", 3)]


def test_run_happens_in_the_background_and_cancel_from_the_kernel_leaves_a_consistent_warehouse(
    app: IngestApp, tmp_path: Path, gate: Gate
) -> None:
    app.batch_size.value = 3  # the 8 accepted rows load in batches of 3, 3 and 2
    on_progress = app._on_progress

    def held(progress: toolkit.Progress, **where: int) -> None:
        on_progress(progress, **where)
        gate.hold(progress.rows_done)

    app._on_progress = held  # type: ignore[method-assign]
    app.run_button.click()

    # The click has returned while the worker is held after its first batch: the run is in the background.
    assert app.busy
    assert gate.reached() == 3
    assert gate.threads[0] is not threading.current_thread()
    assert (app.run_button.disabled, app.preview_button.disabled, app.cancel_button.disabled) == (True, True, False)
    assert (app.progress.value, app.progress.max) == (3, 8)
    assert "3 / 8 rows, 1 batch(es)" in app.status.value
    gate.release()
    assert gate.reached() == 6
    assert app.progress.value == 6 and "6 / 8 rows, 2 batch(es)" in app.status.value

    app.cancel_button.click()  # from the main thread, as the kernel handles a click
    assert app.cancel_button.disabled and app.status.value == "cancelling after the current batch…"
    gate.release()
    app.wait(BOUND)

    [summary] = app.summaries
    assert not app.busy and (summary.status, summary.inserted) == ("cancelled", 6)
    assert app.status.value == "cancelled: 1 run(s), 6 rows inserted"
    db = str(tmp_path / "warehouse.duckdb")
    with duckdb.connect(db, read_only=True) as con:
        assert con.sql("SELECT count(*) FROM customers").fetchall() == [(6,)]
        assert con.sql("SELECT status, inserted FROM _runs").fetchall() == [("cancelled", 6)]

    app._on_progress = on_progress  # type: ignore[method-assign]
    run(app)
    [again] = app.summaries
    assert (again.status, again.inserted, again.skipped) == ("completed", 2, 6)
    with duckdb.connect(db, read_only=True) as con:
        assert con.sql("SELECT count(*), count(DISTINCT customer_id) FROM customers").fetchall() == [(8, 8)]
        assert con.sql("SELECT status, inserted FROM _runs ORDER BY started_at").fetchall() == [
            ("cancelled", 6),
            ("completed", 2),
        ]


@pytest.mark.parametrize(
    ("step", "button", "waits_for", "status", "summaries", "notes"),
    [
        (
            "prepare",
            "run_button",
            "reading the current workbook",
            "cancelled: 0 run(s), 0 rows inserted",
            [],
            ["customers.xlsx: not started (cancelled)", "loan_data.xlsx: not read (cancelled)"],
        ),
        (
            "preview",
            "preview_button",
            "the current workbook",
            "preview cancelled: 1 of 2 workbook(s) previewed",
            [("customers.xlsx", "preview")],
            ["loan_data.xlsx: not previewed (cancelled)"],
        ),
    ],
    ids=["while reading", "during preview"],
)
def test_cancel_stops_before_the_next_workbook_and_writes_nothing(
    app: IngestApp,
    customers: Path,
    tmp_path: Path,
    gate: Gate,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    button: str,
    waits_for: str,
    status: str,
    summaries: list[tuple[str, str]],
    notes: list[str],
) -> None:
    real = getattr(toolkit.widgets, step)

    def held(path: Path, **options: Any) -> Any:
        gate.hold(path.name)
        return real(path, **options)

    monkeypatch.setattr(f"toolkit.widgets.{step}", held)
    app.select(customers, DATA / "loan_data.xlsx")
    getattr(app, button).click()
    assert gate.reached() == "customers.xlsx"
    assert not app.cancel_button.disabled

    app.cancel_button.click()
    assert app.status.value == f"cancelling after {waits_for}…"
    gate.release()
    app.wait(BOUND)

    assert app.status.value == status
    assert all(note in app.summary_view.value for note in notes)
    assert [(Path(s.file).name, s.status) for s in app.summaries] == summaries
    assert not (tmp_path / "warehouse.duckdb").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"this is not a spreadsheet", "not a readable workbook"),
    ],
)
def test_a_bad_file_is_a_one_line_message_not_a_traceback(app: IngestApp, tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(content)

    run(app, bad)

    assert message in app.summary_view.value
    assert "Traceback" not in app.summary_view.value + app.message.value
    assert app.summaries == []


def test_a_missing_required_column_names_it(app: IngestApp, workbook: Callable[..., Path]) -> None:
    headers = [h for h in LOAN_HEADERS if h != "Tenure"]
    book = workbook([headers, [v for h, v in zip(LOAN_HEADERS, loan(), strict=True) if h != "Tenure"]])

    app.table.value = "loans"
    run(app, book)

    assert "&#x27;Tenure&#x27;" in app.summary_view.value and "missing" in app.summary_view.value


def test_a_warehouse_locked_by_another_process_is_a_message(app: IngestApp, tmp_path: Path) -> None:
    holder = "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()"
    with subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path / "warehouse.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        try:
            run(app)
        finally:
            process.communicate("")

    assert "in use by another process" in app.summary_view.value
    assert app.summaries == [] and not app.busy


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda app: setattr(app.files, "value", ()), "Pick a workbook"),
        (lambda app: setattr(app.db, "value", " "), "Give a warehouse path"),
    ],
)
def test_an_incomplete_form_says_what_is_missing(app: IngestApp, setup: Callable[[IngestApp], None], message: str) -> None:
    setup(app)
    app.run_button.click()

    assert app._thread is None
    assert message in app.message.value


def test_an_unexpected_failure_is_one_line_too(app: IngestApp, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("toolkit.widgets.load_prepared", broken)
    run(app)

    assert app.message.value == '<div class="tk-error">unexpected RuntimeError: boom</div>'


def test_an_upload_is_saved_selected_and_ingested(app: IngestApp, customers: Path, tmp_path: Path) -> None:
    upload = {
        "name": "../from browser.xlsx",
        "type": "",
        "size": 0,
        "content": memoryview(customers.read_bytes()),
        "last_modified": dt.datetime(2024, 5, 1),
    }
    app.upload.value = (upload,)

    saved = tmp_path / "uploads" / "from browser.xlsx"
    assert saved.read_bytes() == customers.read_bytes()
    assert app.files.value == (str(saved),)
    assert app.files.options[-1] == ("from browser.xlsx (uploaded)", str(saved))
    assert app.upload.value == ()
    run(app)
    assert [counts(s)["inserted"] for s in app.summaries] == [8]
    # The summary names the upload as uploaded, not by its temporary copy (which the warehouse records).
    assert app.summaries[0].file == str(saved)
    assert "<h2>from browser.xlsx (uploaded) → customers</h2>" in app.summary_view.value
    assert str(saved.parent) not in app.summary_view.value
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT file FROM _runs").fetchall() == [(str(saved),)]


def test_a_picked_file_is_named_by_its_path(app: IngestApp, customers: Path) -> None:
    run(app)

    assert f"<h2>{customers} → customers</h2>" in app.summary_view.value


@pytest.mark.parametrize(
    ("where", "name", "problem"),
    [
        (lambda tmp: (tmp / "taken").write_text("a file") and tmp / "taken" / "uploads", "book.xlsx", "Not a directory"),
        (lambda tmp: tmp / "uploads", "x" * 300 + ".xlsx", "File name too long"),
    ],
    ids=["a file where the folder should be", "a name too long"],
)
def test_an_upload_that_cannot_be_saved_is_a_one_line_message(
    tmp_path: Path, customers: Path, where: Callable[[Path], Path], name: str, problem: str
) -> None:
    app = IngestApp(data_dir=customers.parent, db=tmp_path / "w.duckdb", upload_dir=where(tmp_path))
    upload = {"name": name, "type": "", "size": 0, "content": memoryview(b"bytes"), "last_modified": dt.datetime(2024, 5, 1)}

    app.upload.value = (upload,)

    assert "cannot save the upload" in app.message.value and problem in app.message.value
    assert "\n" not in app.message.value and "Traceback" not in app.message.value
    assert app.files.value == (str(customers),) and app.upload.value == ()


def test_rejected_rows_filter_by_rule_and_column(app: IngestApp) -> None:
    run(app)

    assert app.filtered_rows()["__row"].to_list() == [3, 6]
    assert [v for _, v in app.rule_filter.options][1:] == ["age|integer", "phone_number|required", "monthly_salary|min"]
    app.rule_filter.value = "monthly_salary|min"
    assert app.filtered_rows()["__row"].to_list() == [6]
    app.rule_filter.value = ""
    app.column_filter.value = "Age"
    assert app.filtered_rows()["__row"].to_list() == [3]
    assert "rows 1–1 of 1" in app.page_label.value


@pytest.mark.parametrize("page_size", [1, 4, 23, 50])
def test_paging_shows_every_rejected_row_once(tmp_path: Path, page_size: int) -> None:
    app = IngestApp(data_dir=DATA, db=tmp_path / "w.duckdb", page_size=page_size)
    app.preview_button.click()
    app.wait()

    seen = []
    while True:
        seen += [int(r) for r in re.findall(r"<tr><td>(\d+)</td>", app.rejects_view.value)]
        if app.next_button.disabled:
            break
        app.next_button.click()
    assert seen == app.summaries[0].failed_rows
    app.prev_button.click()
    assert app._page == max(0, math.ceil(len(seen) / page_size) - 2)


def test_failing_cells_are_highlighted_under_the_header_as_found() -> None:
    rows = pl.DataFrame({"__row": [4], "age": ["abc"], "tenure": ["12"], "reasons": [["Age: 'abc' is not a whole number"]]})
    errors = pl.DataFrame(
        {"row": [4], "column": ["AGE "], "rule": ["age|integer"], "message": ["Age: 'abc' <no>"], "value": ["abc"]}
    )

    table = rejects_table(rows, errors, toolkit.builtin_specs()["customers"])

    assert '<td class="tk-cell-bad" title="Age: &#x27;abc&#x27; &lt;no&gt;">abc</td><td>12</td>' in table
    assert "<th>Age</th><th>tenure</th>" in table


def test_export_writes_the_toolkits_report_and_links_it(app: IngestApp, tmp_path: Path) -> None:
    assert app.export_button.disabled
    run(app)
    assert not app.export_button.disabled

    path = app.export_html()

    assert path is not None and path.parent == tmp_path
    assert path.read_text(encoding="utf-8") == app.summaries[0].to_html()
    assert str(path) in app.export_view.value and f'download="{path.name}"' in app.export_view.value


def test_the_app_displays_as_its_widget(app: IngestApp) -> None:
    bundle = app._repr_mimebundle_()

    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == app.widget.model_id


def test_the_summary_leaves_the_rejected_rows_to_the_browser_below_it(app: IngestApp) -> None:
    run(app)

    assert "<b>8</b>" in app.summary_view.value and "Failures by rule" in app.summary_view.value
    assert "Rejected rows" not in app.summary_view.value
    assert app.rejects_view.value.count("tk-cell-bad") == 3


def test_fixit_export_writes_the_runs_rejected_rows_as_a_workbook(app: IngestApp, tmp_path: Path) -> None:
    app.preview_button.click()
    app.wait()
    assert app.fixit_button.disabled  # a preview records no run to export
    run(app)

    [path] = app.export_fixit()

    assert path.parent == tmp_path and path.suffix == ".xlsx"
    assert toolkit.preview(path, table="customers").total == 2  # the two rejected rows, ready to fix
    assert f'download="{path.name}"' in app.export_view.value


def test_the_apps_report_and_fixit_workbook_mark_the_cells_a_rule_of_its_own_specs_uses(
    workbook: Callable[..., Path], tmp_path: Path
) -> None:
    spec_file = tmp_path / "stock.toml"
    spec_file.write_text(STOCK_SPEC, encoding="utf-8")
    book = workbook([["Price", "SKU", "Qty"], [50, "A", 100], [1, "B", 5]], name="stock.xlsx")
    app = IngestApp(specs=toolkit.load_specs([spec_file]), db=tmp_path / "warehouse.duckdb", upload_dir=tmp_path / "up")
    run(app, book)
    assert [(s.table, s.failed) for s in app.summaries] == [("stock", 1)]

    path = app.export_html()
    assert path is not None
    outlined = re.findall(r'<td class="tk-fail" title="([^"]*)">([^<]*)</td>', path.read_text(encoding="utf-8"))
    assert sorted(outlined) == [("Stock value above 1,000", "100"), ("Stock value above 1,000", "50")]
    [fix] = app.export_fixit()
    ws = openpyxl.load_workbook(fix)["stock"]
    marked = {(c.row, ws.cell(1, c.column).value) for row in ws.iter_rows(min_row=2) for c in row if c.comment}
    assert marked == {(2, "Price"), (2, "Qty")}


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (None, "∅"),
        ("  ", "␣␣"),
        ("<b>", "&lt;b&gt;"),
        ("a\x01b\x7f", "a␁b␡"),  # control characters shown as the report shows them
        ("invoice\u202efdp.exe", "invoice[U+202E]fdp.exe"),  # a right-to-left override, shown not applied
        ("\u2066x\u2069\u200e", "[U+2066]x[U+2069][U+200E]"),
    ],
)
def test_a_failing_blank_cell_is_visible_and_every_value_escaped(raw: str | None, shown: str) -> None:
    rows = pl.DataFrame(
        {"__row": [2], "last_name": [raw], "reasons": [["Missing Last Name"]]}, schema_overrides={"last_name": pl.String}
    )
    errors = pl.DataFrame({"row": [2], "column": ["Last Name"], "rule": ["r"], "message": ["m"], "value": [raw]})

    assert f'<td class="tk-cell-bad" title="m">{shown}</td>' in rejects_table(rows, errors, None)


def test_reasons_messages_and_headers_are_escaped_like_the_report() -> None:
    odd = "x\x07\u202e<y>"
    rows = pl.DataFrame({"__row": [2], odd: [odd], "reasons": [[f"bad {odd}"]]})
    errors = pl.DataFrame({"row": [2], "column": [odd], "rule": ["r"], "message": [f"m {odd}"], "value": [odd]})

    table = rejects_table(rows, errors, None)

    shown = escape(odd)
    assert shown == "x␇[U+202E]&lt;y&gt;"
    assert f"<th>{shown}</th>" in table and f"<li>bad {shown}</li>" in table
    assert f'<td class="tk-cell-bad" title="m {shown}">{shown}</td>' in table
    assert "\x07" not in table and "\u202e" not in table


# --- the Output-widget trap ---------------------------------------------------------------------------
# Writing into an ipywidgets Output widget from code that runs later than its cell (`with out:`,
# `out.clear_output()`, `@out.capture()`) makes nbclient, and so nbconvert, papermill, Voilà and nbval,
# hang forever in a few per cent of runs (an upstream nbclient issue: the kernel's output messages are
# routed to the widget while nbclient waits for the cell's idle message; measured in issue 3, "Known
# traps"), and nbval sees outputs that are not the cell's. The app writes widgets through their traits
# only (HTML.value...); an Output, if ever needed, is written with `out.outputs = ()` and
# `out.append_display_data(...)`, which hung 0 times in 95 runs. This scan keeps it that way.


def output_widget_writes(source: str) -> list[str]:
    """Uses of `with <Output>:`, `<Output>.capture(` and `clear_output(` in Python source."""
    tree = ast.parse(source)

    def makes_output(node: ast.expr | None) -> bool:
        func = node.func if isinstance(node, ast.Call) else None
        return (isinstance(func, ast.Name) and func.id == "Output") or (isinstance(func, ast.Attribute) and func.attr == "Output")

    outputs = set()  # the names (`out`, `self.log`) an Output widget is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and makes_output(node.value):
            outputs |= {ast.unparse(t) for t in node.targets}
        elif isinstance(node, ast.AnnAssign) and makes_output(node.value):
            outputs.add(ast.unparse(node.target))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.With | ast.AsyncWith):
            found += [
                f"line {node.lineno}: with {ast.unparse(item.context_expr)}:"
                for item in node.items
                if makes_output(item.context_expr) or ast.unparse(item.context_expr) in outputs
            ]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name == "clear_output" or (
                name == "capture" and isinstance(func, ast.Attribute) and ast.unparse(func.value) in outputs
            ):
                found.append(f"line {node.lineno}: {ast.unparse(func)}(...)")
    return found


def _python_of(path: Path) -> str:
    if path.suffix != ".ipynb":
        return path.read_text(encoding="utf-8")
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    # IPython's magics and shell escapes are not Python; they cannot write into a widget either.
    return "\n".join(line for cell in cells for line in cell.splitlines() if not line.lstrip().startswith(("%", "!")))


@pytest.mark.parametrize(
    "path", [ROOT / "toolkit" / "widgets.py", *sorted((ROOT / "notebooks").glob("*.ipynb"))], ids=lambda p: p.name
)
def test_no_code_writes_into_an_output_widget(path: Path) -> None:
    assert output_widget_writes(_python_of(path)) == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("out = w.Output()\nwith out:\n    print(1)", ["line 2: with out:"]),
        (
            "class A:\n    def __init__(self):\n        self.log = widgets.Output()\n"
            "    def f(self):\n        with self.log:\n            pass",
            ["line 5: with self.log:"],
        ),
        ("with Output():\n    pass", ["line 1: with Output():"]),
        ("out.clear_output(wait=True)", ["line 1: out.clear_output(...)"]),
        ("from IPython.display import clear_output\nclear_output()", ["line 2: clear_output(...)"]),
        ("out: w.Output = w.Output()\n@out.capture()\ndef f():\n    pass", ["line 2: out.capture(...)"]),
        ("with Warehouse(db) as wh, lock:\n    pass", []),
        ("out = w.Output()\nout.outputs = ()\nout.append_display_data(1)", []),
    ],
)
def test_the_scan_finds_each_way_of_writing_into_an_output_widget(source: str, found: list[str]) -> None:
    assert output_widget_writes(source) == found


def test_the_cluster_choice_says_what_to_install_when_celery_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from toolkit.widgets import CLUSTER

    monkeypatch.setitem(sys.modules, "toolkit.cluster", None)  # as without the cluster extra
    app = IngestApp(data_dir=DATA, db=tmp_path / "w.duckdb")
    app.where.value = CLUSTER
    app.start_run()
    app.wait()

    assert "running on the cluster needs Celery: pip install -e &#x27;.[cluster]&#x27;" in app.message.value
    assert not (tmp_path / "w.duckdb").exists()
