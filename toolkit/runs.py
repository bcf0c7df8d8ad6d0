"""A run as report data: built from an :class:`IngestSummary`, or read back from the warehouse.

The HTML report and the fix-it workbook render a :class:`RunReport`, whichever way it was made, so
a past run reported from ``_runs`` and ``_rejects`` looks like the run reported as it finished.
Reading the warehouse opens it read-only: a report never changes what it reports on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from toolkit.errors import WarehouseBusyError, WarehouseError
from toolkit.match import label_lookup, normalize_header
from toolkit.specs import TableSpec, load_specs
from toolkit.summary import IngestSummary

#: Rejected (and updated) rows a report shows per run before pointing to ``_rejects`` (``_changes``).
MAX_ROWS_SHOWN = 500
#: Label of failures that belong to the row rather than one column (cross-column rules, conflicts).
ROW_LEVEL = "(row)"
COUNT_NAMES = ("total", "success", "failed", "inserted", "skipped", "duplicates", "updated")
Specs = Mapping[str, TableSpec]


RuleCells = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class RejectedRow:
    """One rejected row: its Excel row number, its cells and every failure.

    ``cells`` maps each header as found in the file to the raw cell text (``None`` when empty), in
    the file's column order. ``errors`` are dicts with ``column`` (a header, or ``None`` for a
    failure of the whole row), ``rule``, ``message`` and ``value``.
    """

    row: int
    cells: dict[str, str | None]
    errors: tuple[dict[str, Any], ...]

    @property
    def reasons(self) -> list[str]:
        return [e["message"] for e in self.errors]

    def failing(self, rule_cells: RuleCells) -> dict[str, list[str]]:
        """Header -> messages of the failures about that cell: the cell a failure names, else
        every cell its rule is about in ``rule_cells`` (a report's :attr:`RunReport.rule_cells`)."""
        found: dict[str, list[str]] = {}
        for error in self.errors:
            cells = (error["column"],) if error["column"] in self.cells else rule_cells.get(error["rule"], ())
            for header in cells:
                found.setdefault(header, []).append(error["message"])
        return found


@dataclass(frozen=True)
class UpdatedRow:
    """A row that replaced a stored row (``--on-conflict update``): (header, old, new) per changed column."""

    row: int
    changes: tuple[tuple[str, str | None, str | None], ...]


@dataclass(frozen=True)
class RunReport:
    """What a report shows about one run. Counts are ``None`` while a run is unfinished.

    ``rejected`` holds the first rejected rows (up to the limit asked for); ``rejected_total`` is
    how many there are in all. ``updates`` and ``updates_total`` are the same for updated rows.
    ``rule_cells`` maps each rule that failed naming no single cell to the headers it is about
    (the columns a cross-column rule uses, a composite key: see :meth:`TableSpec.rule_columns`).
    """

    run_id: str
    file: str
    sheet: str | None
    table: str | None
    status: str
    file_sha256: str
    header_row: int | None
    batch_size: int | None
    toolkit_version: str
    started_at: datetime | None
    finished_at: datetime | None
    total: int | None
    success: int | None
    failed: int | None
    inserted: int | None
    skipped: int | None
    duplicates: int | None
    updated: int | None
    headers: tuple[str, ...]
    unmapped_columns: tuple[str, ...]
    warnings: tuple[str, ...]
    failures_by_rule: dict[str, int]
    failures_by_column: dict[str, int]
    rejected: tuple[RejectedRow, ...]
    rejected_total: int
    updates: tuple[UpdatedRow, ...] = ()
    updates_total: int = 0
    rule_cells: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def invariants(self) -> list[tuple[str, bool]]:
        """The two accounting identities, spelled out with this run's numbers; empty while unfinished."""
        t, s, f, i, k, d, u = (getattr(self, name) for name in COUNT_NAMES)
        if t is None or s is None or f is None or i is None or k is None or d is None or u is None:
            return []
        return [
            (f"total = success + failed: {t:,} = {s:,} + {f:,}", t == s + f),
            (
                f"success = inserted + skipped + duplicates + updated: {s:,} = {i:,} + {k:,} + {d:,} + {u:,}",
                s == i + k + d + u,
            ),
        ]

    def __repr__(self) -> str:
        return f"<RunReport {self.run_id} {self.file} -> {self.table} ({self.status}), {self.rejected_total} rejected>"


def from_summary(summary: IngestSummary, *, limit: int | None = MAX_ROWS_SHOWN, specs: Specs | None = None) -> RunReport:
    """The report data of a run just ingested (or previewed).

    ``specs`` (default: the built-in ones) tell which cells a cross-column rule is about. The
    updated rows are the changes the load recorded in the summary; a summary without them (one
    rebuilt from ``to_dict()``) counts its updates and the report points to ``_changes``.
    """
    spec = (specs if specs is not None else load_specs()).get(summary.table)
    labels = _header_labels(summary, spec)
    by_row: dict[int, list[dict[str, Any]]] = {}
    for error in summary.errors:
        by_row.setdefault(int(error["row"]), []).append({k: error[k] for k in ("column", "rule", "message", "value")})
    raw_rows = {r["__row"]: r for r in summary.rejected.to_dicts()} if "__row" in summary.rejected.columns else {}
    by_rule, by_column = _breakdowns((e["rule"], e["column"], 1) for e in summary.errors)
    shown = sorted(by_row)[:limit] if limit is not None else sorted(by_row)
    rejected = tuple(
        RejectedRow(row, {label: raw_rows.get(row, {}).get(name) for name, label in labels.items()}, tuple(by_row[row]))
        for row in shown
    )
    updates, updates_total = _summary_updates(summary, tuple(labels.values()), limit=limit)
    return RunReport(
        run_id=summary.run_id,
        file=summary.file,
        sheet=summary.sheet,
        table=summary.table,
        status=summary.status,
        file_sha256=summary.file_sha256,
        header_row=summary.header_row,
        batch_size=summary.batch_size,
        toolkit_version=summary.toolkit_version,
        started_at=summary.started_at,
        finished_at=summary.finished_at,
        **{name: getattr(summary, name) for name in COUNT_NAMES},
        headers=tuple(labels.values()),
        unmapped_columns=summary.unmapped_columns,
        warnings=summary.warnings,
        failures_by_rule=by_rule,
        failures_by_column=by_column,
        rejected=rejected,
        rejected_total=len(by_row),
        updates=updates,
        updates_total=updates_total,
        rule_cells=_rule_cells(spec, ((e["rule"], e["column"]) for e in summary.errors), labels),
    )


def _summary_updates(summary: IngestSummary, headers: Sequence[str], *, limit: int | None) -> tuple[tuple[UpdatedRow, ...], int]:
    """The updated rows of a run, from the changes its load recorded; only counted when the summary has none."""
    if summary.changes.is_empty():
        return (), summary.updated
    by_row: dict[int, list[tuple[str, str | None, str | None]]] = {}
    for change in summary.changes.iter_rows(named=True):
        by_row.setdefault(int(change["row"]), []).append((change["column"], change["old_value"], change["new_value"]))
    shown = sorted(by_row)[:limit] if limit is not None else sorted(by_row)
    return tuple(_updated_row(row, by_row[row], headers) for row in shown), len(by_row)


def _updated_row(row: int, changes: Iterable[tuple[str, str | None, str | None]], headers: Sequence[str]) -> UpdatedRow:
    """One updated row, its changed columns in ``headers`` order (any other after them, by name)."""
    order = {h: i for i, h in enumerate(headers)}
    return UpdatedRow(row, tuple(sorted(changes, key=lambda c: (order.get(c[0], len(order)), c[0]))))


def _rule_cells(
    spec: TableSpec | None, failures: Iterable[tuple[str, str | None]], labels: Mapping[str, str]
) -> dict[str, tuple[str, ...]]:
    """Rule -> headers of the cells it is about, for the (rule, column) failures that name no single cell."""
    if spec is None:
        return {}
    rules = {rule for rule, column in failures if column is None}
    return {rule: tuple(labels[c] for c in spec.rule_columns(rule) if c in labels) for rule in sorted(rules)}


def _labels_for(spec: TableSpec | None, headers: Iterable[str], *, names: Iterable[str] = ()) -> dict[str, str]:
    """Column name -> the first of ``headers`` that names it: by its spec header, alias or name as
    ingest matches them, else (for ``names``, columns the spec may lack) by the name itself."""
    by_label = label_lookup(spec, names=names)
    labels: dict[str, str] = {}
    for header in headers:
        named = by_label.get(normalize_header(header))
        if named is not None:
            labels.setdefault(named, header)
    return labels


def _header_labels(summary: IngestSummary, spec: TableSpec | None) -> dict[str, str]:
    """Spec column name -> header as found, for the raw columns of ``summary.rejected``.

    The summary knows the headers as found only through its errors (``column``); a column with no
    failure is labelled with its spec's header (or its name when the spec is not a built-in one).
    Reports read from the warehouse use the headers recorded with the run instead.
    """
    names = [c for c in summary.rejected.columns if c not in ("__row", "reasons", "rules")]
    seen = _labels_for(spec, (e["column"] for e in summary.errors if e["column"]), names=names)
    default = {c.name: c.header for c in spec.columns} if spec is not None else {}
    return {name: seen.get(name) or default.get(name, name) for name in names}


def _breakdowns(triples: Iterable[tuple[str, str | None, int]]) -> tuple[dict[str, int], dict[str, int]]:
    """(rule, column, count) -> failures by rule and by column, most frequent first, then by name."""
    rules: Counter[str] = Counter()
    columns: Counter[str] = Counter()
    for rule, column, n in triples:
        rules[rule] += n
        columns[column or ROW_LEVEL] += n
    return _ranked(rules), _ranked(columns)


def _ranked(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def connect_read_only(db: str | Path) -> duckdb.DuckDBPyConnection:
    """Open a warehouse for reading; a missing, foreign or busy file raises with one line."""
    path = Path(db)
    if not path.is_file():
        raise WarehouseError(f"{path}: no such warehouse")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "lock" in message.lower():
            raise WarehouseBusyError(f"{path}: warehouse is in use by another process; try again when it finishes") from exc
        raise WarehouseError(f"{path}: cannot open the warehouse ({message})") from exc
    tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE table_name IN ('_runs', '_rejects')").fetchall()
    if len(tables) < 2:
        con.close()
        raise WarehouseError(f"{path}: not a toolkit warehouse (no _runs and _rejects tables); ingest a workbook first")
    return con


def select_runs(con: duckdb.DuckDBPyConnection, *, run_ids: Sequence[str] = (), last: int | None = None) -> list[str]:
    """Run ids, oldest first: the ones named (all must exist), else the ``last`` most recent (default 1)."""
    if run_ids:
        found = {r[0] for r in con.execute("SELECT run_id FROM _runs WHERE list_contains(?, run_id)", [list(run_ids)]).fetchall()}
        missing = [r for r in run_ids if r not in found]
        if missing:
            raise WarehouseError(f"no run {', '.join(repr(r) for r in missing)} in _runs")
        query = "SELECT run_id FROM _runs WHERE list_contains(?, run_id) ORDER BY started_at, run_id"
        return [r[0] for r in con.execute(query, [list(run_ids)]).fetchall()]
    recent = con.execute("SELECT run_id FROM _runs ORDER BY started_at DESC, run_id DESC LIMIT ?", [last or 1]).fetchall()
    if not recent:
        raise WarehouseError("no runs recorded in _runs yet")
    return [r[0] for r in reversed(recent)]


def read_run(
    con: duckdb.DuckDBPyConnection, run_id: str, *, limit: int | None = MAX_ROWS_SHOWN, specs: Specs | None = None
) -> RunReport:
    """The report data of a past run, from ``_runs``, ``_rejects`` and ``_changes``.

    ``specs`` (default: the built-in ones) tell which cells a cross-column rule is about.
    """
    return read_reports(con, [run_id], limit=limit, specs=specs)[0]


def read_reports(
    con: duckdb.DuckDBPyConnection, run_ids: Iterable[str], *, limit: int | None = MAX_ROWS_SHOWN, specs: Specs | None = None
) -> list[RunReport]:
    """The report data of past runs, in the order named (see :func:`read_run`)."""
    specs = specs if specs is not None else load_specs()
    # Warehouses made before update mode have no _changes table (and nothing updated).
    has_changes = bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = '_changes'").fetchall()[0][0])
    return [_read_run(con, run_id, limit=limit, specs=specs, has_changes=has_changes) for run_id in run_ids]


def _read_run(con: duckdb.DuckDBPyConnection, run_id: str, *, limit: int | None, specs: Specs, has_changes: bool) -> RunReport:
    cursor = con.execute("SELECT * FROM _runs WHERE run_id = ?", [run_id])
    names = [d[0] for d in cursor.description or []]
    rows = cursor.fetchall()
    if not rows:
        raise WarehouseError(f"no run {run_id!r} in _runs")
    run = dict(zip(names, rows[0], strict=True))
    rejected = rejected_rows(con, run_id, limit=limit)
    # Older warehouses did not record the header order: fall back to the order of the raw cells.
    headers = run.get("headers") or list(dict.fromkeys(h for r in rejected for h in r.cells))
    counted = con.execute(
        'SELECT e.rule, e."column", count(*) FROM (SELECT unnest(errors) AS e FROM _rejects WHERE run_id = ?) GROUP BY ALL',
        [run_id],
    ).fetchall()
    by_rule, by_column = _breakdowns((rule, column, int(n)) for rule, column, n in counted)
    total_rejected = con.execute("SELECT count(DISTINCT source_row) FROM _rejects WHERE run_id = ?", [run_id]).fetchall()
    spec = specs.get(run["table_name"])
    counts = {name: run.get(name) for name in COUNT_NAMES}
    if counts["updated"] is None and counts["total"] is not None:
        counts["updated"] = 0  # recorded before update mode existed: nothing was updated
    return RunReport(
        run_id=run["run_id"],
        file=run["file"],
        sheet=run["sheet"],
        table=run["table_name"],
        status=run["status"],
        file_sha256=run["file_sha256"] or "",
        header_row=run["header_row"],
        batch_size=run["batch_size"],
        toolkit_version=run["toolkit_version"] or "",
        started_at=run["started_at"],
        finished_at=run["finished_at"],
        **counts,
        headers=tuple(headers),
        unmapped_columns=tuple(run["unmapped_columns"] or ()),
        warnings=tuple(run["warnings"] or ()),
        failures_by_rule=by_rule,
        failures_by_column=by_column,
        rejected=tuple(RejectedRow(r.row, {h: r.cells.get(h) for h in headers}, r.errors) for r in rejected),
        rejected_total=int(total_rejected[0][0]),
        updates=updated_rows(con, run_id, headers, limit=limit) if has_changes else (),
        updates_total=_updates_total(con, run_id) if has_changes else 0,
        rule_cells=_rule_cells(spec, ((rule, column) for rule, column, _ in counted), _labels_for(spec, headers)),
    )


def updated_rows(
    con: duckdb.DuckDBPyConnection, run_id: str, headers: Sequence[str], *, limit: int | None = None
) -> tuple[UpdatedRow, ...]:
    """The rows a run updated, in Excel row order, each with its changed columns in ``headers`` order."""
    query = (
        'SELECT source_row, list(struct_pack(c := "column", o := old_value, n := new_value)) FROM _changes '
        "WHERE run_id = ? GROUP BY source_row ORDER BY source_row"
    )
    return tuple(
        _updated_row(int(row), ((c["c"], c["o"], c["n"]) for c in changes), headers)
        for row, changes in con.execute(*_limited(query, run_id, limit)).fetchall()
    )


def _updates_total(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    return int(con.execute("SELECT count(DISTINCT source_row) FROM _changes WHERE run_id = ?", [run_id]).fetchall()[0][0])


def _limited(query: str, run_id: str, limit: int | None) -> tuple[str, list[Any]]:
    """A query over one run (its one parameter), and its parameters, keeping at most ``limit`` rows when given."""
    return (query, [run_id]) if limit is None else (f"{query} LIMIT ?", [run_id, limit])


def rejected_rows(con: duckdb.DuckDBPyConnection, run_id: str, *, limit: int | None = None) -> list[RejectedRow]:
    """The rejected rows of a run in Excel row order, cells keyed by the headers as found."""
    query = (
        "SELECT source_row, flatten(list(errors ORDER BY stage)), first(raw) FROM _rejects "
        "WHERE run_id = ? GROUP BY source_row ORDER BY source_row"
    )
    return [
        RejectedRow(int(row), dict(raw or {}), tuple(dict(e) for e in errors))
        for row, errors, raw in con.execute(*_limited(query, run_id, limit)).fetchall()
    ]


def read_runs(
    db: str | Path,
    *,
    run_ids: Sequence[str] = (),
    last: int | None = None,
    limit: int | None = MAX_ROWS_SHOWN,
    specs: Specs | None = None,
) -> list[RunReport]:
    """Report data of past runs, oldest first: the runs named, else the ``last`` most recent (default 1)."""
    con = connect_read_only(db)
    try:
        return read_reports(con, select_runs(con, run_ids=run_ids, last=last), limit=limit, specs=specs)
    except WarehouseError as exc:
        raise WarehouseError(f"{db}: {exc}") from exc
    finally:
        con.close()
