"""The outcome of one ingestion: data first (``to_dict``), renderings second (HTML)."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import polars as pl

from toolkit.read import ROW

#: Keys of ``to_dict()`` that scripts rely on (the CLI's ``--json`` contract). Extend, don't break.
CONTRACT_KEYS = (
    "run_id",
    "file",
    "sheet",
    "table",
    "total",
    "success",
    "failed",
    "inserted",
    "skipped",
    "duplicates",
    "errors",
    "unmapped_columns",
)


@dataclass(frozen=True)
class IngestSummary:
    """Counts, failures and lineage of one sheet's ingestion.

    Invariants: ``total == success + failed`` and
    ``success == inserted + skipped + duplicates + updated``. ``success`` is counted from the
    rows (those not rejected), not from the other counts, which come from the warehouse
    (``inserted``, ``skipped``, ``updated``) and from validation (``duplicates``): so the second
    invariant is a real check, and a summary that breaks either is refused when built.
    ``accepted`` and ``rejected`` are the rows themselves, as polars frames; ``changes`` holds what
    the load changed in the rows it updated (``row``, ``column`` as headed in the file,
    ``old_value``, ``new_value``), so a report shows what the run did, not what the warehouse
    holds when it is rendered.
    """

    run_id: str
    file: str
    sheet: str
    table: str
    total: int
    #: data rows not rejected (and, when cancelled, processed): counted, not derived
    success: int
    inserted: int
    skipped: int
    duplicates: int
    failed: int
    errors: tuple[dict[str, Any], ...]
    #: rows whose stored values were replaced (only with ``on_conflict="update"``)
    updated: int = 0
    unmapped_columns: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    status: str = "completed"
    database: str | None = None
    file_sha256: str = ""
    header_row: int = 1
    batch_size: int = 1000
    started_at: datetime | None = None
    finished_at: datetime | None = None
    toolkit_version: str = ""
    accepted: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False, compare=False)
    rejected: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False, compare=False)
    changes: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.total != self.success + self.failed:
            raise AssertionError(f"row accounting broken: total {self.total} != success {self.success} + failed {self.failed}")
        if self.success != self.inserted + self.skipped + self.duplicates + self.updated:
            raise AssertionError(
                f"row accounting broken: success {self.success} != inserted {self.inserted} + skipped {self.skipped} "
                f"+ duplicates {self.duplicates} + updated {self.updated}"
            )

    @property
    def failed_rows(self) -> list[int]:
        return sorted({e["row"] for e in self.errors})

    @property
    def failures_by_rule(self) -> dict[str, int]:
        return dict(Counter(e["rule"] for e in self.errors).most_common())

    @property
    def failures_by_column(self) -> dict[str, int]:
        return dict(Counter(e["column"] or "(row)" for e in self.errors).most_common())

    @property
    def seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: the contract keys first, then finer counts and lineage."""
        return {
            "run_id": self.run_id,
            "file": self.file,
            "sheet": self.sheet,
            "table": self.table,
            "total": self.total,
            "success": self.success,
            "failed": self.failed,
            "inserted": self.inserted,
            "skipped": self.skipped,
            "duplicates": self.duplicates,
            "updated": self.updated,
            "errors": [dict(e) for e in self.errors],
            "unmapped_columns": list(self.unmapped_columns),
            "warnings": list(self.warnings),
            "failures_by_rule": self.failures_by_rule,
            "failures_by_column": self.failures_by_column,
            "status": self.status,
            "database": self.database,
            "file_sha256": self.file_sha256,
            "header_row": self.header_row,
            "batch_size": self.batch_size,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "seconds": self.seconds,
            "toolkit_version": self.toolkit_version,
        }

    def __repr__(self) -> str:
        return (
            f"<IngestSummary {self.file} -> {self.table}: {self.total} rows, {self.inserted} inserted, "
            f"{self.skipped} skipped, {self.duplicates} duplicates, {self.failed} failed>"
        )

    def to_html(self, path: str | None = None) -> str:
        """A self-contained HTML page of this run (no scripts, opens offline); written to ``path`` when given."""
        from toolkit.report import summary_html

        page = summary_html([self])
        if path is not None:
            with open(path, "w", encoding="utf-8") as out:
                out.write(page)
        return page

    def _repr_html_(self) -> str:
        # The same content as to_html(), styles included, so a notebook shows the whole report inline.
        from toolkit.report import summary_fragment

        return summary_fragment(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestSummary:
        """A summary back from its :meth:`to_dict` (how summaries travel from the cluster). The dict
        holds no rows: ``accepted`` stays empty and ``rejected`` is rebuilt from the errors, a row
        per rejected Excel row with its failing cells (as text) and its reasons."""
        names = {f.name for f in fields(cls)} - {"accepted", "rejected"}
        values = {k: v for k, v in data.items() if k in names}
        for key in ("errors", "unmapped_columns", "warnings"):
            values[key] = tuple(values.get(key, ()))
        for key in ("started_at", "finished_at"):
            values[key] = datetime.fromisoformat(values[key]) if values.get(key) else None
        rows: dict[int, dict[str, Any]] = {}
        for error in values["errors"]:
            row = rows.setdefault(int(error["row"]), {ROW: int(error["row"]), "reasons": []})
            row["reasons"].append(error["message"])
            if error.get("column"):
                row[str(error["column"])] = error.get("value")
        if not rows:
            return cls(**values)
        # In the order the errors name them (check order within a row), near the file's own order.
        headers = list(dict.fromkeys(key for row in rows.values() for key in row if key not in (ROW, "reasons")))
        schema: dict[str, Any] = {ROW: pl.Int64, **dict.fromkeys(headers, pl.String), "reasons": pl.List(pl.String)}
        rejected = pl.DataFrame([{**dict.fromkeys(headers), **row} for row in rows.values()], schema=schema).sort(ROW)
        return cls(**values, rejected=rejected)

    def text(self) -> str:
        """A few readable lines for the terminal."""
        lines = [
            f"{self.file} [{self.sheet}] -> {self.table} ({self.status})",
            f"  {self.total} rows: {self.success} ok ({self.inserted} inserted, "
            + (f"{self.updated} updated, " if self.updated else "")
            + f"{self.skipped} already present, {self.duplicates} duplicates in file), {self.failed} rejected",
        ]
        if self.unmapped_columns:
            lines.append(f"  ignored columns: {', '.join(self.unmapped_columns)}")
        lines += [f"  warning: {w}" for w in self.warnings]
        for rule, count in list(self.failures_by_rule.items())[:10]:
            lines.append(f"  {count:>6} x {rule}")
        return "\n".join(lines)


def escape(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)
