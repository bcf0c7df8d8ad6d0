"""Run summaries as self-contained HTML: no scripts, no external resources, every value escaped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from toolkit.summary import escape

if TYPE_CHECKING:
    from toolkit.summary import IngestSummary

#: Rejected rows shown per run before pointing to the ``_rejects`` table.
MAX_ERRORS_SHOWN = 500

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1f2328}
.tk-run{margin-bottom:2.5rem}
.tk-run h2{font-size:1.2rem;margin:.2rem 0}
.tk-counts{display:flex;gap:.6rem;flex-wrap:wrap;margin:.6rem 0}
.tk-count{border:1px solid #d0d7de;border-radius:6px;padding:.4rem .8rem;min-width:6rem}
.tk-count b{display:block;font-size:1.3rem}
.tk-ok b{color:#1a7f37}.tk-bad b{color:#cf222e}
table.tk{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
table.tk th,table.tk td{border:1px solid #d0d7de;padding:.2rem .5rem;text-align:left;vertical-align:top}
table.tk th{background:#f6f8fa}
.tk-bar{display:inline-block;height:.8rem;background:#cf222e;vertical-align:middle}
.tk-meta{color:#57606a;font-size:.85rem}
.tk-warn{color:#9a6700}
"""


def summary_fragment(summary: IngestSummary) -> str:
    """One run as an HTML fragment (used inline in Jupyter and inside full pages)."""
    s = summary
    invariant_total = "✓" if s.total == s.success + s.failed else "✗"
    invariant_success = "✓" if s.success == s.inserted + s.skipped + s.duplicates else "✗"
    counts = "".join(
        f'<div class="tk-count {cls}"><b>{value:,}</b>{label}</div>'
        for label, value, cls in [
            ("total", s.total, ""),
            ("success", s.success, "tk-ok"),
            ("failed", s.failed, "tk-bad" if s.failed else ""),
            ("inserted", s.inserted, ""),
            ("skipped", s.skipped, ""),
            ("duplicates", s.duplicates, ""),
        ]
    )
    meta = (
        f"run {escape(s.run_id)} · sheet {escape(s.sheet)} · header row {s.header_row} · batch size {s.batch_size}"
        f" · status {escape(s.status)}"
        + (f" · {s.seconds:.2f} s" if s.seconds is not None else "")
        + (f" · sha256 {escape(s.file_sha256[:16])}…" if s.file_sha256 else "")
    )
    parts = [
        '<div class="tk-run">',
        f"<h2>{escape(s.file)} → {escape(s.table)}</h2>",
        f'<div class="tk-meta">{meta}</div>',
        f'<div class="tk-counts">{counts}</div>',
        f'<div class="tk-meta">total = success + failed {invariant_total} · '
        f"success = inserted + skipped + duplicates {invariant_success}</div>",
    ]
    if s.unmapped_columns:
        parts.append(f'<p class="tk-warn">Ignored columns: {escape(", ".join(s.unmapped_columns))}</p>')
    parts += [f'<p class="tk-warn">Warning: {escape(w)}</p>' for w in s.warnings]
    if s.errors:
        parts.append(_breakdown("Failures by rule", s.failures_by_rule))
        parts.append(_breakdown("Failures by column", s.failures_by_column))
        parts.append(_errors_table(s))
    parts.append("</div>")
    return "\n".join(parts)


def _breakdown(title: str, counts: dict[str, int]) -> str:
    top = max(counts.values(), default=1)
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{n:,}</td>"
        f'<td><span class="tk-bar" style="width:{max(2, round(160 * n / top))}px"></span></td></tr>'
        for name, n in counts.items()
    )
    return f'<table class="tk"><caption>{escape(title)}</caption><tr><th>name</th><th>count</th><th></th></tr>{rows}</table>'


def _errors_table(s: IngestSummary) -> str:
    shown = s.errors[:MAX_ERRORS_SHOWN]
    rows = "".join(
        f"<tr><td>{e['row']}</td><td>{escape(e['column'])}</td><td>{escape(e['rule'])}</td>"
        f"<td>{escape(e['message'])}</td><td>{escape(e['value'])}</td></tr>"
        for e in shown
    )
    more = len(s.errors) - len(shown)
    note = f'<p class="tk-meta">{more:,} more in the warehouse table <code>_rejects</code>.</p>' if more > 0 else ""
    return (
        '<table class="tk"><caption>Rejected rows (Excel row numbers)</caption>'
        "<tr><th>row</th><th>column</th><th>rule</th><th>message</th><th>value</th></tr>"
        f"{rows}</table>{note}"
    )


def summary_html(summaries: Sequence[IngestSummary], *, title: str = "Ingestion report") -> str:
    """A whole self-contained page for one or more runs."""
    body = "\n".join(summary_fragment(s) for s in summaries)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )
