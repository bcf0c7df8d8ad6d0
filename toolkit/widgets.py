"""The notebook app: pick workbooks, preview, run in the background, browse rejected rows, export.

No pipeline logic lives here: the app calls :func:`toolkit.prepare`, :func:`toolkit.preview` and the
loader the CLI uses, and renders their summaries.

Two choices keep the app reliable in JupyterLab, Voilà, nbconvert and nbval alike:

* Widgets are written only through their traits (``HTML.value``, ``IntProgress.value``...). Writing
  into an ``Output`` widget from a callback (``with out:`` or ``out.clear_output()``) makes
  nbconvert, papermill and Voilà hang in a few per cent of runs (an nbclient issue) and shows nbval
  outputs that are not the cell's.
* Preview and Run happen in one background thread, so the kernel keeps answering (the Cancel
  button, the progress bar). A trait change is a comm message, which ipykernel hands to its IOPub
  thread, so setting a trait from the worker is safe; the worker never touches anything else.

Every value shown goes through :func:`toolkit.report.escape`, as in the HTML report: markup is
escaped, control and bidirectional characters are made visible.
"""

from __future__ import annotations

import base64
import functools
import logging
import math
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import ipywidgets as w
import polars as pl

from toolkit.errors import ToolkitError
from toolkit.fixit import write_fixit_workbook
from toolkit.ingest import Prepared, load_prepared, prepare, preview
from toolkit.load import Progress, Warehouse
from toolkit.match import label_lookup, normalize_header
from toolkit.read import ROW, sheet_names
from toolkit.report import escape, report_fragment, summary_html
from toolkit.runs import from_summary
from toolkit.specs import TableSpec, load_order, load_specs
from toolkit.summary import IngestSummary

__all__ = ["IngestApp", "rejects_table"]

log = logging.getLogger("toolkit")

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
#: Larger reports get no download link: the link carries the whole page inside the notebook.
MAX_DOWNLOAD_BYTES = 20 * 1024**2
_ERROR_SCHEMA = {"row": pl.Int64, "column": pl.String, "rule": pl.String, "message": pl.String, "value": pl.String}
#: The choice "any": a Dropdown shows an option whose value is None as no selection at all.
ANY = ""
_ROW_LEVEL = "(row)"  # the name summaries give failures that belong to no single column
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# The summaries bring the report's own (scoped) styles; these are for the app's parts, scoped to it.
_STYLE = """<style>
.tk-app table.tk{border-collapse:collapse;margin:.4rem 0;font-size:.85rem}
.tk-app table.tk th,.tk-app table.tk td{border:1px solid #d0d7de;padding:.15rem .45rem;text-align:left;vertical-align:top}
.tk-app table.tk th{background:#f6f8fa}
.tk-app .tk-meta{color:#57606a;font-size:.85rem}
.tk-app .tk-error{color:#cf222e;border-left:4px solid #cf222e;padding:.3rem .6rem;background:#fff5f5;margin:.3rem 0}
.tk-app td.tk-cell-bad{background:#ffebe9;color:#82071e;font-weight:600}
.tk-app ul.tk-reasons{margin:0;padding-left:1.1rem}
</style>"""


KERNEL, CLUSTER = "kernel", "cluster"


class IngestApp:
    """An ipywidgets app over the toolkit; display it in a notebook (``IngestApp(...)`` as a cell's last line).

    Args:
        data_dir: folder whose workbooks are offered in the list (uploads are added to it).
        db: the warehouse path shown in the form; the user may change it.
        specs: table specs (default: the built-in ones).
        batch_size: rows per commit shown in the form.
        upload_dir: where uploaded workbooks are saved (default: a new temporary folder).
        page_size: rejected rows per page.
    """

    def __init__(
        self,
        *,
        data_dir: str | Path | None = None,
        db: str | Path = "warehouse.duckdb",
        specs: Mapping[str, TableSpec] | None = None,
        batch_size: int = 1000,
        upload_dir: str | Path | None = None,
        page_size: int = 50,
    ) -> None:
        self.specs = dict(specs) if specs is not None else load_specs()
        self.upload_dir = Path(upload_dir) if upload_dir else Path(tempfile.mkdtemp(prefix="toolkit-uploads-"))
        self.page_size = page_size
        self.summaries: list[IngestSummary] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stop_note = "the current batch"  # what Cancel waits for: it depends on what the worker is doing
        self._uploaded: dict[str, str] = {}  # saved path -> the name the browser sent
        self._page = 0
        self._errors = pl.DataFrame(schema=_ERROR_SCHEMA)

        wide = {"description_width": "7rem"}
        found = sorted(p for p in Path(data_dir).iterdir() if p.suffix.lower() in WORKBOOK_SUFFIXES) if data_dir else []
        self.files = w.SelectMultiple(
            options=[(p.name, str(p)) for p in found],
            value=(str(found[0]),) if found else (),
            rows=_rows(len(found)),
            description="Workbooks",
            style=wide,
            layout=w.Layout(width="32rem"),
        )
        self.upload = w.FileUpload(accept=",".join(WORKBOOK_SUFFIXES), multiple=True, description="Upload")
        self.sheet = w.Dropdown(description="Sheet", style=wide)
        self.table = w.Dropdown(
            options=[("auto (from the headers)", ANY)] + [(name, name) for name in sorted(self.specs)],
            description="Table",
            style=wide,
        )
        self.batch_size = w.BoundedIntText(value=batch_size, min=1, max=10_000_000, description="Batch size", style=wide)
        self.db = w.Text(value=str(db), description="Warehouse", style=wide, layout=w.Layout(width="60%"))
        self.where = w.ToggleButtons(
            options=[("in this kernel", KERNEL), ("on the cluster", CLUSTER)],
            value=KERNEL,
            description="Run",
            style=wide,
            tooltips=["read and load here", "send the workbooks to the Celery workers; their writer loads its warehouse"],
        )
        cluster_row = w.Layout(width="60%", display="none")
        self.broker = w.Text(
            value=os.environ.get("TOOLKIT_BROKER_URL", "redis://127.0.0.1:6379/0"),
            description="Broker",
            style=wide,
            layout=cluster_row,
        )
        self.spool = w.Text(
            value=os.environ.get("TOOLKIT_SPOOL", ""),
            description="Spool",
            placeholder="empty: the workers read the workbooks where they are",
            style=wide,
            layout=w.Layout(width="60%", display="none"),
        )
        self.preview_button = w.Button(description="Preview", icon="eye", tooltip="Validate without writing")
        self.run_button = w.Button(description="Run", icon="play", button_style="primary", tooltip="Load into the warehouse")
        self.cancel_button = w.Button(
            description="Cancel", icon="stop", disabled=True, tooltip="Stop at the next batch (or workbook, in a preview)"
        )
        self.progress = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="40%"))
        self.status = w.HTML()
        self.message = w.HTML()
        self.summary_view = w.HTML()

        self.run_choice = w.Dropdown(description="Rejected rows of", style=wide, layout=w.Layout(display="none"))
        self.rule_filter = w.Dropdown(description="Rule", style=wide)
        self.column_filter = w.Dropdown(description="Column", style=wide)
        self.prev_button = w.Button(description="Previous", icon="arrow-left", disabled=True)
        self.next_button = w.Button(description="Next", icon="arrow-right", disabled=True)
        self.page_label = w.HTML()
        self.rejects_view = w.HTML()
        self.export_button = w.Button(description="HTML report", icon="download", disabled=True)
        self.fixit_button = w.Button(
            description="Fix-it workbook", icon="table", disabled=True, tooltip="The rejected rows as a workbook to correct"
        )
        self.export_view = w.HTML()

        self.files.observe(self._on_files, names="value")
        self.where.observe(self._on_where, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.preview_button.on_click(lambda _: self.start_preview())
        self.run_button.on_click(lambda _: self.start_run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.run_choice.observe(lambda _: self._select_summary(), names="value")
        self.rule_filter.observe(lambda _: self._turn_page(0), names="value")
        self.column_filter.observe(lambda _: self._turn_page(0), names="value")
        self.prev_button.on_click(lambda _: self._turn_page(self._page - 1))
        self.next_button.on_click(lambda _: self._turn_page(self._page + 1))
        self.export_button.on_click(lambda _: self.export_html())
        self.fixit_button.on_click(lambda _: self.export_fixit())

        # The rejected-rows controls show once there are rejected rows to browse.
        self._browser = w.VBox(
            [w.HBox([self.rule_filter, self.column_filter]), w.HBox([self.prev_button, self.next_button, self.page_label])],
            layout=w.Layout(display="none"),
        )
        self.widget = w.VBox(
            [
                w.HTML(_STYLE),
                w.HBox([self.files, self.upload]),
                self.sheet,
                self.table,
                self.batch_size,
                self.db,
                self.where,
                self.broker,
                self.spool,
                w.HBox([self.preview_button, self.run_button, self.cancel_button]),
                w.HBox([self.progress, self.status]),
                self.message,
                self.summary_view,
                self.run_choice,
                self._browser,
                self.rejects_view,
                w.HBox([self.export_button, self.fixit_button]),
                self.export_view,
            ]
        )
        self.widget.add_class("tk-app")
        self._on_files()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"<IngestApp {len(self.files.value)} workbook(s) -> {self.db.value}>"

    # --- the form -------------------------------------------------------------------------

    def select(self, *paths: str | Path, label: str = "") -> None:
        """Choose these workbooks, adding them to the list if they are not in it."""
        chosen = [str(p) for p in paths]
        kept = [(text, value) for text, value in self.files.options if value not in chosen]
        self.files.options = kept + [(f"{Path(p).name}{label}", p) for p in chosen]
        self.files.rows = _rows(len(self.files.options))
        self.files.value = tuple(chosen)

    def _on_files(self, _: object = None) -> None:
        self.message.value = ""
        if len(self.files.value) != 1:
            self.sheet.options = [("first visible sheet of each", ANY)]
            self.sheet.disabled = True
            return
        self.sheet.disabled = False
        try:
            names = sheet_names(self.files.value[0])
        except ToolkitError as exc:
            self.sheet.options = [("first visible sheet", ANY)]
            self._show_error(str(exc))
            return
        self.sheet.options = [("first visible sheet", ANY)] + [(name, name) for name in names]
        self.sheet.value = ANY  # options set on an empty Dropdown leave it showing nothing

    def _on_upload(self, change: Mapping[str, Any]) -> None:
        uploads = change["new"]
        if not uploads:
            return
        saved, problems = [], []
        for item in uploads:
            name = Path(str(item["name"])).name  # a name, never a path from the browser
            target = self.upload_dir / name
            try:
                self.upload_dir.mkdir(parents=True, exist_ok=True)
                target.write_bytes(bytes(item["content"]))
            except OSError as exc:
                problems.append(f"cannot save the upload {name!r} in {self.upload_dir} ({exc.strerror or exc})")
                continue
            saved.append(str(target))
            self._uploaded[str(target)] = name
        if saved:
            self.select(*saved, label=" (uploaded)")
        self.upload.value = ()  # the saved copies are what count; don't keep the bytes twice
        if problems:  # after select(), which clears the message
            self._show_error("; ".join(problems) + ": check that the upload folder is writable, or pick a file from the list")

    # --- actions ----------------------------------------------------------------------------

    def start_preview(self) -> None:
        """Validate the chosen workbooks against the warehouse without writing (in the background)."""
        self._start(self._preview_job)

    def start_run(self) -> None:
        """Ingest the chosen workbooks (in the background); parents load before children.

        With "on the cluster" chosen, the workbooks are submitted to the Celery workers
        (``toolkit.cluster.submit``) and the app waits for their summaries instead.
        """
        self._start(self._cluster_job if self.where.value == CLUSTER else self._run_job)

    def _on_where(self, _: object = None) -> None:
        shown = None if self.where.value == CLUSTER else "none"
        self.broker.layout.display = self.spool.layout.display = shown

    def cancel(self) -> None:
        """Stop after the current batch (or the workbook being read or previewed).

        Committed batches stay and the run is recorded as cancelled; workbooks not yet loaded are not.
        """
        self._stop.set()
        self.cancel_button.disabled = True
        self.status.value = f"cancelling after {self._stop_note}…"

    def wait(self, timeout: float | None = 120) -> None:
        """Block until the background job ends (for scripts and tests)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"the ingestion is still running after {timeout} s")

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self, job: Callable[[list[Path]], None]) -> None:
        if self.busy:
            return
        self.message.value = ""
        paths = [Path(p) for p in self.files.value]
        if not paths:
            self._show_error("Pick a workbook from the list, or upload one.")
            return
        if not self.db.value.strip():
            self._show_error("Give a warehouse path (a .duckdb file).")
            return
        self._stop.clear()
        self._set_busy(True)
        self._thread = threading.Thread(target=self._guarded, args=(job, paths), name="toolkit-app", daemon=True)
        self._thread.start()

    def _guarded(self, job: Callable[[list[Path]], None], paths: list[Path]) -> None:
        # Everything the worker can raise ends here, as a message in the app: never a traceback.
        try:
            job(paths)
        except ToolkitError as exc:
            self._show_error(str(exc))
        except duckdb.Error as exc:
            self._show_error(f"{self.db.value}: cannot read the warehouse ({_first_line(exc)})")
        except Exception as exc:  # a bug: say so in one line and keep the details in the log
            log.exception("the notebook app failed")
            self._show_error(f"unexpected {type(exc).__name__}: {_first_line(exc)}")
        finally:
            self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        for button in (self.preview_button, self.run_button, self.files, self.upload, self.db):
            button.disabled = busy
        self.cancel_button.disabled = not busy
        self.export_button.disabled = busy or not self.summaries
        self.fixit_button.disabled = busy or not any(s.failed and s.status != "preview" for s in self.summaries)

    def _options(self) -> dict[str, Any]:
        return {"specs": self.specs, "table": self.table.value or None, "sheet": self.sheet.value or None}

    def _preview_job(self, paths: list[Path]) -> None:
        # A preview cannot stop inside a workbook (nothing is batched), so Cancel stops between workbooks.
        self._stop_note = "the current workbook"
        summaries, failures = [], []
        not_started = 0
        for index, path in enumerate(paths):
            if self._stop.is_set():
                failures.append(f"{path.name}: not previewed (cancelled)")
                not_started += 1
                continue
            self.status.value = f"previewing {escape(path.name)} ({index + 1} of {len(paths)})…"
            try:
                summaries.append(preview(path, db=self.db.value, **self._options()))
            except ToolkitError as exc:
                failures.append(str(exc))
        note = "Preview: nothing was written. Counts are what a run would do now; a child table (loans) is judged "
        note += "against the parents already in the warehouse."
        self._show_results(summaries, failures, note=note)
        if not_started:
            self.status.value = f"preview cancelled: {len(paths) - not_started} of {len(paths)} workbook(s) previewed"
        else:
            self.status.value = f"previewed {len(summaries)} workbook(s)"

    def _run_job(self, paths: list[Path]) -> None:
        prepared: list[Prepared] = []
        failures: list[str] = []
        not_started = 0  # workbooks skipped because Cancel was clicked
        self._stop_note = "reading the current workbook"
        for path in paths:
            if self._stop.is_set():
                failures.append(f"{path.name}: not read (cancelled)")
                not_started += 1
                continue
            self.status.value = f"reading {escape(path.name)}…"
            try:
                prepared.append(prepare(path, **self._options()))
            except ToolkitError as exc:
                failures.append(str(exc))
        order = load_order([p.table for p in prepared], self.specs)
        prepared.sort(key=lambda p: order.index(p.table))
        summaries: list[IngestSummary] = []
        self._stop_note = "the current batch"
        if self._stop.is_set():  # cancelled while reading: the warehouse is not even opened
            failures += [f"{item.path.name}: not started (cancelled)" for item in prepared]
            not_started += len(prepared)
            prepared = []
        try:
            if prepared:
                with Warehouse(self.db.value) as warehouse:
                    for index, item in enumerate(prepared):
                        if self._stop.is_set():
                            failures.append(f"{item.path.name}: not started (cancelled)")
                            not_started += 1
                            continue
                        self.progress.value, self.progress.max = 0, max(1, item.validated.accepted.height)
                        summaries.append(
                            load_prepared(
                                item,
                                warehouse,
                                batch_size=self.batch_size.value,
                                on_progress=functools.partial(self._on_progress, index=index, count=len(prepared)),
                                should_stop=self._stop.is_set,
                            )
                        )
        except ToolkitError as exc:
            failures.append(str(exc))
        self._show_results(summaries, failures)
        inserted = sum(s.inserted for s in summaries)
        cancelled = not_started > 0 or any(s.status == "cancelled" for s in summaries)
        self.status.value = f"{'cancelled' if cancelled else 'done'}: {len(summaries)} run(s), {inserted:,} rows inserted"

    def _cluster_job(self, paths: list[Path]) -> None:
        try:
            from toolkit.cluster import submit
        except ImportError as exc:  # Celery is an extra: the app works without it
            raise ToolkitError(f"running on the cluster needs Celery: pip install -e '.[cluster]' ({exc})") from exc
        self._stop_note = "nothing: the cluster goes on, the app stops waiting"
        self.status.value = f"submitting {len(paths)} workbook(s)…"
        submission = submit(
            paths,
            **self._options(),  # the app's specs too: a custom table it offers is unknown to the workers
            batch_size=self.batch_size.value,
            broker=self.broker.value.strip() or None,
            spool=self.spool.value.strip() or None,
        )
        while not submission.ready():
            if self._stop.is_set():
                self.status.value = f"stopped waiting: submission {escape(submission.id)} goes on on the cluster"
                return
            self._on_cluster_progress(submission.progress())
            self._stop.wait(0.3)
        outcomes = submission.summaries(timeout=60)
        summaries = [o for o in outcomes if isinstance(o, IngestSummary)]
        failures = [str(o) for o in outcomes if not isinstance(o, IngestSummary)]
        note = f"Loaded on the cluster (submission {submission.id}), into the warehouse of its writer."
        self._show_results(summaries, failures, note=note)
        inserted = sum(s.inserted for s in summaries)
        self.progress.value = self.progress.max
        self.status.value = f"done on the cluster: {len(summaries)} run(s), {inserted:,} rows inserted"

    def _on_cluster_progress(self, progress: Any) -> None:
        if progress.rows_total:
            self.progress.max, self.progress.value = progress.rows_total, progress.rows_done
            self.status.value = (
                f"cluster: loading {escape(progress.loading or '')} ({progress.loaded + 1} of {progress.to_load}): "
                f"{progress.rows_done:,} / {progress.rows_total:,} rows"
            )
        else:
            self.progress.max, self.progress.value = max(1, progress.files), progress.read
            self.status.value = f"cluster: {progress.read} of {progress.files} workbook(s) read, {progress.state.lower()}"

    def _on_progress(self, progress: Progress, index: int, count: int) -> None:
        self.progress.max = max(1, progress.rows_total)
        self.progress.value = progress.rows_done
        self.status.value = (
            f"workbook {index + 1} of {count}: {progress.rows_done:,} / {progress.rows_total:,} rows, "
            f"{progress.batches_done} batch(es), {progress.rows_per_second:,.0f} rows/s"
        )

    # --- results ----------------------------------------------------------------------------

    def _show_error(self, text: str) -> None:
        self.message.value = f'<div class="tk-error">{escape(text)}</div>'

    def shown_file(self, summary: IngestSummary) -> str:
        """The file as the app names it: an upload by the name it was uploaded with, not its temporary copy."""
        name = self._uploaded.get(summary.file)
        return f"{name} (uploaded)" if name is not None else summary.file

    def _show_results(self, summaries: list[IngestSummary], failures: list[str], *, note: str = "") -> None:
        self.summaries = summaries
        parts = [f'<p class="tk-meta">{escape(note)}</p>'] if note else []
        parts += [f'<div class="tk-error">{escape(f)}</div>' for f in failures]
        # The summaries keep the real path (the warehouse records it); only their rendering is renamed.
        parts += [_summary_without_rejected_rows(replace(s, file=self.shown_file(s)), self.specs) for s in summaries]
        self.summary_view.value = "\n".join(parts)
        self.export_view.value = ""
        choices = [(f"{Path(s.file).name} → {s.table} ({s.failed:,} rejected)", i) for i, s in enumerate(summaries)]
        self.run_choice.options = choices
        self.run_choice.layout.display = None if len(choices) > 1 else "none"
        self.run_choice.value = 0 if choices else None
        self._select_summary()

    @property
    def current(self) -> IngestSummary | None:
        """The summary whose rejected rows are shown."""
        index = self.run_choice.value
        return self.summaries[index] if index is not None and index < len(self.summaries) else None

    def _select_summary(self) -> None:
        summary = self.current
        errors = list(summary.errors) if summary else []
        self._errors = pl.DataFrame(errors, schema=_ERROR_SCHEMA).with_columns(pl.col("column").fill_null(_ROW_LEVEL))
        rules = summary.failures_by_rule if summary else {}
        columns = summary.failures_by_column if summary else {}
        self.rule_filter.options = [(f"all rules ({sum(rules.values()):,})", ANY)] + [
            (f"{k} ({n:,})", k) for k, n in rules.items()
        ]
        self.column_filter.options = [("all columns", ANY)] + [(f"{k} ({n:,})", k) for k, n in columns.items()]
        self.rule_filter.value = self.column_filter.value = ANY
        self._turn_page(0)

    def filtered_rows(self) -> pl.DataFrame:
        """The current summary's rejected rows that pass the rule and column filters."""
        summary = self.current
        if summary is None or summary.rejected.is_empty():
            return pl.DataFrame()
        errors = self._errors
        if self.rule_filter.value:  # ANY, or None while the options change
            errors = errors.filter(pl.col("rule") == self.rule_filter.value)
        if self.column_filter.value:
            errors = errors.filter(pl.col("column") == self.column_filter.value)
        return summary.rejected.filter(pl.col(ROW).is_in(errors["row"].implode()))

    def _turn_page(self, page: int) -> None:
        rows = self.filtered_rows()
        pages = max(1, math.ceil(rows.height / self.page_size))
        self._page = min(max(page, 0), pages - 1)
        self.prev_button.disabled = self._page == 0
        self.next_button.disabled = self._page >= pages - 1
        summary = self.current
        has_rejects = summary is not None and not summary.rejected.is_empty()
        self._browser.layout.display = None if has_rejects else "none"
        if summary is None or rows.is_empty():
            self.page_label.value = ""
            self.rejects_view.value = "<p>No rejected rows.</p>" if summary is not None else ""
            return
        start = self._page * self.page_size
        shown = rows.slice(start, self.page_size)
        self.page_label.value = (
            f"rows {start + 1:,}–{start + shown.height:,} of {rows.height:,} · page {self._page + 1} of {pages}"
        )
        self.rejects_view.value = rejects_table(shown, self._errors, self.specs.get(summary.table))

    def export_html(self) -> Path | None:
        """Write the shown summaries as the toolkit's self-contained HTML report, next to the warehouse."""
        if not self.summaries:
            return None
        folder = Path(self.db.value).expanduser().resolve().parent
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = folder / f"report-{self.summaries[0].run_id[:8]}-{stamp}.html"
        page = summary_html(self.summaries, specs=self.specs)
        try:
            path.write_text(page, encoding="utf-8")
        except OSError as exc:
            self._show_error(f"cannot write the report to {path}: {exc.strerror or exc}")
            return None
        self.export_view.value = _file_link(path, page.encode("utf-8"), "text/html")
        return path

    def export_fixit(self) -> list[Path]:
        """Write each run's rejected rows as a fix-it workbook (see :mod:`toolkit.fixit`), next to the warehouse."""
        runs = [s for s in self.summaries if s.failed and s.status != "preview"]
        folder = Path(self.db.value).expanduser().resolve().parent
        written: list[Path] = []
        try:
            for s in runs:
                out = folder / f"fixit-{s.table}-{s.run_id[:8]}.xlsx"
                # The run's own warehouse: after a cluster run it is the writer's, not the app's.
                written.append(write_fixit_workbook(s.database or self.db.value, out, run_id=s.run_id, specs=self.specs))
        except (ToolkitError, OSError) as exc:
            self._show_error(f"cannot write the fix-it workbook: {exc}")
        self.export_view.value = "<br>".join(_file_link(p, p.read_bytes(), _XLSX) for p in written)
        return written


def _summary_without_rejected_rows(summary: IngestSummary, specs: Mapping[str, TableSpec]) -> str:
    # The report's fragment lists the first rejected rows; the app's own browser below filters and
    # pages through all of them, so the fragment is the report's with no rejected rows to list.
    return report_fragment(replace(from_summary(summary, limit=0, specs=specs), rejected_total=0))


def rejects_table(rows: pl.DataFrame, errors: pl.DataFrame, spec: TableSpec | None) -> str:
    """Rejected rows as an HTML table: Excel row, every reason, the raw cells; failing cells highlighted."""
    raw_columns = [c for c in rows.columns if c not in (ROW, "reasons", "rules")]
    header_of = {c: c for c in raw_columns} | ({c.name: c.header for c in spec.columns} if spec is not None else {})
    by_label = label_lookup(spec, names=raw_columns)  # without a spec (or for a column it lacks), the names still match
    page_errors = errors.filter(pl.col("row").is_in(rows[ROW].implode()))
    failing: dict[tuple[int, str], list[str]] = {}
    for error in page_errors.iter_rows(named=True):
        name = by_label.get(normalize_header(error["column"]), error["column"])
        failing.setdefault((error["row"], name), []).append(error["message"])
    head = "".join(f"<th>{escape(header_of[c])}</th>" for c in raw_columns)
    body = []
    for record in rows.iter_rows(named=True):
        row = record[ROW]
        reasons = "".join(f"<li>{escape(r)}</li>" for r in record["reasons"])
        cells = []
        for c in raw_columns:
            value = _shown(record[c])
            messages = failing.get((row, c))
            if messages:
                cells.append(f'<td class="tk-cell-bad" title="{escape("; ".join(messages))}">{value}</td>')
            else:
                cells.append(f"<td>{value}</td>")
        body.append(f'<tr><td>{row}</td><td><ul class="tk-reasons">{reasons}</ul></td>{"".join(cells)}</tr>')
    return f'<table class="tk"><tr><th>Excel row</th><th>reasons</th>{head}</tr>{"".join(body)}</table>'


def _shown(value: object) -> str:
    """A raw cell as HTML; an empty one as ∅ and spaces as ␣, so a failing blank cell is seen."""
    if value is None:
        return "∅"
    text = str(value)
    return escape(text) if text.strip() else "␣" * len(text) or "∅"


def _file_link(path: Path, content: bytes, mime: str) -> str:
    # A file:// link is blocked from an http page and the server's /files/ URL depends on its root,
    # so the link carries the file itself (a download that works in Lab and Voilà); the path is shown too.
    where = f"written to <code>{escape(str(path))}</code>"
    if len(content) > MAX_DOWNLOAD_BYTES:
        return where
    data = base64.b64encode(content).decode("ascii")
    return (
        f'{where} · <a download="{escape(path.name)}" href="data:{mime};base64,{data}">download {escape(path.name)}</a>'
    )


def _rows(options: int) -> int:
    """Height of the workbook list: every option visible, up to a point (an upload must not hide below)."""
    return min(8, max(3, options))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
