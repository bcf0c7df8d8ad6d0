"""Runs as self-contained HTML: no scripts, no external resources, every value escaped.

The markup is XHTML-compatible (every element closed, only XML's five entities) so a test can
parse a page as XML; charts are inline SVG. Nothing here reads a clock: the same run renders to
the same bytes, and the page shows the times the run recorded.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from toolkit.runs import COUNT_NAMES, MAX_ROWS_SHOWN, RejectedRow, RunReport, Specs, from_summary, read_runs
from toolkit.summary import IngestSummary

#: Bars drawn per chart; the table beside it lists every entry.
MAX_BARS = 20
# Characters XML forbids (and HTML calls parse errors); a cell can still hold them. Then the
# invisible bidirectional controls: a right-to-left override in a cell (``invoice\u202efdp.exe``)
# reorders the text around it, so what the page shows is not what the cell holds.
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# Scoped to .tk-report so the same rules can sit inside a notebook without touching its styles.
_STYLE = """
.tk-report{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;line-height:1.4}
.tk-report h1{font-size:1.5rem;margin:.5rem 0 1rem}
.tk-report h2{font-size:1.2rem;margin:.2rem 0 .4rem}
.tk-report h3{font-size:1rem;margin:1rem 0 .3rem}
.tk-report section.tk-run{margin-bottom:2.5rem;border-top:2px solid #d0d7de;padding-top:.6rem}
.tk-report .tk-counts{display:flex;gap:.6rem;flex-wrap:wrap;margin:.6rem 0}
.tk-report .tk-count{border:1px solid #d0d7de;border-radius:6px;padding:.4rem .8rem;min-width:6rem}
.tk-report .tk-count b{display:block;font-size:1.3rem}
.tk-report .tk-ok b{color:#1a7f37}
.tk-report .tk-bad b{color:#cf222e}
.tk-report table.tk{border-collapse:collapse;margin:.4rem 0;font-size:.85rem}
.tk-report table.tk th,.tk-report table.tk td{border:1px solid #d0d7de;padding:.2rem .5rem;text-align:left;vertical-align:top}
.tk-report table.tk th{background:#f6f8fa}
.tk-report table.tk td.tk-n{text-align:right;font-variant-numeric:tabular-nums}
.tk-report table.tk td.tk-fail{background:#ffebe9;outline:2px solid #cf222e;outline-offset:-2px}
.tk-report table.tk-rejected td{white-space:pre-wrap}
.tk-report .tk-empty{color:#8c959f;font-style:italic}
.tk-report .tk-breakdown{display:flex;gap:1.5rem;flex-wrap:wrap;align-items:flex-start}
.tk-report .tk-note{color:#57606a;font-size:.85rem}
.tk-report .tk-warn{color:#9a6700}
.tk-report .tk-pass{color:#1a7f37}
.tk-report .tk-broken{color:#cf222e;font-weight:bold}
.tk-report code{font-size:.85em}
.tk-report .tk-scroll{overflow-x:auto}
"""


def escape(value: object) -> str:
    """Text safe in HTML content and attributes: ``&``, ``<``, ``>`` and quotes escaped; control
    characters shown as their visible symbols (U+0001 as ␁) so a stray one is seen, not lost; and
    bidirectional controls (U+202E...) shown as their code point (``[U+202E]``) instead of applied."""
    return _INVISIBLE.sub(_visible, html.escape("" if value is None else str(value), quote=True))


def _visible(match: re.Match[str]) -> str:
    char = match[0]
    if char < "\x20":
        return chr(0x2400 + ord(char))
    if char == "\x7f":
        return "\u2421"
    if char in "\ufffe\uffff":
        return "\ufffd"
    return f"[U+{ord(char):04X}]"  # Unicode has no visible symbol for the bidi controls


def summary_fragment(summary: IngestSummary, *, limit: int | None = MAX_ROWS_SHOWN, specs: Specs | None = None) -> str:
    """One run as an HTML fragment with its styles: what Jupyter shows inline."""
    return report_fragment(from_summary(summary, limit=limit, specs=specs))


def report_fragment(report: RunReport) -> str:
    """A run's report data as an HTML fragment with its styles."""
    return _wrap(run_section(report))


def summary_html(
    summaries: Sequence[IngestSummary],
    *,
    title: str = "Ingestion report",
    limit: int | None = MAX_ROWS_SHOWN,
    specs: Specs | None = None,
) -> str:
    """A whole self-contained page for one or more runs just ingested.

    ``specs`` (default: the built-in ones) tell which cells a cross-column rule is about.
    """
    return report_html([from_summary(s, limit=limit, specs=specs) for s in summaries], title=title)


def warehouse_html(
    db: str | Path,
    *,
    run_ids: Sequence[str] = (),
    last: int | None = None,
    limit: int | None = MAX_ROWS_SHOWN,
    specs: Specs | None = None,
) -> str:
    """A page for past runs read from the warehouse: the runs named, else the ``last`` most recent (default 1).

    Raises:
        WarehouseError: the warehouse is missing, busy or not a toolkit warehouse, or a run id is unknown.
    """
    reports = read_runs(db, run_ids=run_ids, last=last, limit=limit, specs=specs)
    return report_html(reports, title=f"Ingestion report: {Path(db).name}")


def report_html(reports: Sequence[RunReport], *, title: str = "Ingestion report") -> str:
    """A page for runs, oldest first; several runs get a history table at the top."""
    parts = [f"<h1>{escape(title)}</h1>"]
    if len(reports) > 1:
        parts.append(history_table(reports))
    parts += [run_section(r) for r in reports]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8"/>\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f'<body>\n<div class="tk-report">\n' + "\n".join(parts) + "\n</div>\n</body>\n</html>\n"
    )


def _wrap(body: str) -> str:
    return f'<div class="tk-report">\n<style>{_STYLE}</style>\n{body}\n</div>'


def history_table(reports: Sequence[RunReport]) -> str:
    """One line per run, linking to its section."""
    head = ["started", "run", "file", "sheet", "table", "status", "seconds", *COUNT_NAMES]
    rows = []
    for r in reports:
        cells = [
            f"<td>{escape(_when(r.started_at))}</td>",
            f'<td><a href="#{escape(_anchor(r))}"><code>{escape(r.run_id)}</code></a></td>',
            f"<td>{escape(r.file)}</td>",
            f"<td>{escape(r.sheet)}</td>",
            f"<td>{escape(r.table)}</td>",
            f"<td>{escape(r.status)}</td>",
            f'<td class="tk-n">{escape(_seconds(r.seconds))}</td>',
            *(f'<td class="tk-n">{_count(getattr(r, name))}</td>' for name in COUNT_NAMES),
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f'<h2>Runs</h2>\n<table class="tk">\n<tr>{header}</tr>\n' + "\n".join(rows) + "\n</table>"



def run_section(report: RunReport) -> str:
    """Everything about one run: metadata, counts and invariants, failures, rejected rows, warnings."""
    r = report
    parts = [
        f'<section class="tk-run" id="{escape(_anchor(r))}">',
        f"<h2>{escape(r.file)} → {escape(r.table)}</h2>",
        _metadata(r),
        _counts(r),
    ]
    if r.unmapped_columns:
        listed = ", ".join(f"<code>{escape(c)}</code>" for c in r.unmapped_columns)
        parts.append(f'<p class="tk-warn">Columns not in the spec, ignored: {listed}</p>')
    if r.warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in r.warnings)
        parts.append(f'<h3>Warnings</h3>\n<ul class="tk-warn">{items}</ul>')
    if r.failures_by_rule:
        parts.append("<h3>Failures by rule</h3>")
        parts.append(_breakdown("rule", r.failures_by_rule))
        parts.append("<h3>Failures by column</h3>")
        parts.append(_breakdown("column", r.failures_by_column))
    if r.rejected_total:
        parts.append(_rejected_table(r))
    if r.updates_total:
        parts.append(_updates_table(r))
    parts.append("</section>")
    return "\n".join(parts)


def _metadata(r: RunReport) -> str:
    fields = [
        ("run", f"<code>{escape(r.run_id)}</code>"),
        ("file", escape(r.file)),
        ("sha256", f"<code>{escape(r.file_sha256)}</code>"),
        ("sheet", escape(r.sheet)),
        ("header row", escape(r.header_row)),
        ("table", escape(r.table)),
        ("status", escape(r.status)),
        ("started", escape(_when(r.started_at))),
        ("finished", escape(_when(r.finished_at))),
        ("duration", escape(f"{_seconds(r.seconds)} s" if r.seconds is not None else "")),
        ("batch size", escape(r.batch_size)),
        ("toolkit version", escape(r.toolkit_version)),
    ]
    rows = "".join(f"<tr><th>{escape(name)}</th><td>{value}</td></tr>" for name, value in fields)
    return f'<table class="tk tk-meta">{rows}</table>'


def _counts(r: RunReport) -> str:
    boxes = []
    for name in COUNT_NAMES:
        value = getattr(r, name)
        tone = " tk-ok" if name == "success" else " tk-bad" if name == "failed" and value else ""
        boxes.append(f'<div class="tk-count{tone}"><b>{_count(value)}</b>{escape(name)}</div>')
    invariants = r.invariants
    if invariants:
        checks = "<br/>".join(
            f'<span class="{"tk-pass" if ok else "tk-broken"}">{"✓" if ok else "✗ broken:"}</span> {escape(text)}'
            for text, ok in invariants
        )
    else:
        checks = escape(f"counts not recorded: the run is {r.status}")
    return f'<div class="tk-counts">{"".join(boxes)}</div>\n<p class="tk-note">{checks}</p>'


def _breakdown(kind: str, counts: dict[str, int]) -> str:
    rows = "".join(f'<tr><td>{escape(name)}</td><td class="tk-n">{n:,}</td></tr>' for name, n in counts.items())
    table = f'<table class="tk"><tr><th>{escape(kind)}</th><th>failures</th></tr>{rows}</table>'
    return f'<div class="tk-breakdown">{table}{bar_chart(counts, title=f"Failures by {kind}")}</div>'


def bar_chart(counts: dict[str, int], *, title: str) -> str:
    """Horizontal bars as inline SVG, largest first (at most ``MAX_BARS``)."""
    shown = list(counts.items())[:MAX_BARS]
    label_width, bar_width, step, pad = 250, 260, 22, 6
    top = max((n for _, n in shown), default=1) or 1
    height = step * len(shown) + 2 * pad
    width = label_width + bar_width + 70
    bars = []
    for i, (name, n) in enumerate(shown):
        y = pad + i * step
        length = max(1, round(bar_width * n / top))
        label = name if len(name) <= 36 else name[:35] + "…"
        bars.append(
            f"<g><title>{escape(name)}: {n:,}</title>"
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{length}" height="15" rx="2" fill="#cf222e"/>'
            f'<text x="{label_width + length + 6}" y="{y + 15}">{n:,}</text></g>'
        )
    more = len(counts) - len(shown)
    caption = f'<p class="tk-note">{more} more in the table</p>' if more > 0 else ""
    return (
        f'<div><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        'font-family="system-ui,sans-serif" font-size="12" fill="#1f2328">'
        f"<title>{escape(title)}</title>{''.join(bars)}</svg>{caption}</div>"
    )


def _rejected_table(r: RunReport) -> str:
    header = "<th>Excel row</th><th>reasons</th>" + "".join(f"<th>{escape(h)}</th>" for h in r.headers)
    rows = [_rejected_row(row, r) for row in r.rejected]
    note = _more_in("_rejects", r.rejected_total - len(r.rejected), r.run_id)
    return (
        f"<h3>Rejected rows ({r.rejected_total:,})</h3>\n"
        '<p class="tk-note">Failing cells are outlined; hover a cell for its reasons.</p>\n'
        f'<div class="tk-scroll"><table class="tk tk-rejected">\n<tr>{header}</tr>\n'
        + "\n".join(rows)
        + f"\n</table></div>{note}"
    )


def _updates_table(r: RunReport) -> str:
    """Each updated row's changed columns, old value -> new value; limited like the rejected rows."""
    lines = []
    for updated in r.updates:
        for i, (header, old, new) in enumerate(updated.changes):
            row = f'<td class="tk-n" rowspan="{len(updated.changes)}">{updated.row}</td>' if i == 0 else ""
            lines.append(f"<tr>{row}<td>{escape(header)}</td><td>{_cell(old)}</td><td>{_cell(new)}</td></tr>")
    note = _more_in("_changes", r.updates_total - len(r.updates), r.run_id)
    head = "<tr><th>Excel row</th><th>column</th><th>in the warehouse before</th><th>from the file</th></tr>"
    return (
        f"<h3>Updated rows ({r.updates_total:,})</h3>\n"
        '<p class="tk-note">Stored rows replaced by this run (<code>--on-conflict update</code>): each changed column, '
        "old value → new value.</p>\n"
        f'<div class="tk-scroll"><table class="tk tk-updated">\n{head}\n' + "\n".join(lines) + f"\n</table></div>{note}"
    )


def _more_in(table: str, more: int, run_id: str) -> str:
    """The note under a table cut at the report's limit: how many rows more, and the query that lists them."""
    if more <= 0:
        return ""
    query = f"SELECT * FROM {table} WHERE run_id = '{escape(run_id)}'"
    return f'<p class="tk-note">{more:,} more in <code>{table}</code> (<code>{query}</code>)</p>'


def _rejected_row(row: RejectedRow, report: RunReport) -> str:
    failing = row.failing(report.rule_cells)
    reasons = "<br/>".join(escape(m) for m in row.reasons)
    cells = [f'<td class="tk-n">{row.row}</td>', f"<td>{reasons}</td>"]
    for header in report.headers:
        shown = _cell(row.cells.get(header))
        if header in failing:
            cells.append(f'<td class="tk-fail" title="{escape("; ".join(failing[header]))}">{shown}</td>')
        else:
            cells.append(f"<td>{shown}</td>")
    return f"<tr>{''.join(cells)}</tr>"


def _cell(value: str | None) -> str:
    if value is None:
        return '<span class="tk-empty">empty</span>'
    if not value.strip():
        return f'<span class="tk-empty">blank ({len(value)} whitespace)</span>'
    return escape(value)


def _anchor(r: RunReport) -> str:
    return f"run-{r.run_id}"


def _when(moment: datetime | None) -> str:
    return moment.isoformat(sep=" ", timespec="seconds") if moment else ""


def _seconds(seconds: float | None) -> str:
    return f"{seconds:.2f}" if seconds is not None else ""


def _count(value: int | None) -> str:
    return f"{value:,}" if value is not None else "—"
