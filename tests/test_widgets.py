from __future__ import annotations

import datetime as dt
import json
import math
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest

import toolkit
from tests.conftest import CUSTOMER_HEADERS, DATA, LOAN_HEADERS, customer, loan
from toolkit.widgets import IngestApp, rejects_table

EXPECTED = json.loads((DATA / "expected_summary.json").read_text())


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


@pytest.mark.parametrize(("raw", "shown"), [(None, "∅"), ("  ", "␣␣"), ("<b>", "&lt;b&gt;")])
def test_a_failing_blank_cell_is_visible_and_every_value_escaped(raw: str | None, shown: str) -> None:
    rows = pl.DataFrame(
        {"__row": [2], "last_name": [raw], "reasons": [["Missing Last Name"]]}, schema_overrides={"last_name": pl.String}
    )
    errors = pl.DataFrame({"row": [2], "column": ["Last Name"], "rule": ["r"], "message": ["m"], "value": [raw]})

    assert f'<td class="tk-cell-bad" title="m">{shown}</td>' in rejects_table(rows, errors, None)
