"""Command line: arguments in, one-line errors and exit codes out.

Exit codes: 0 every file was processed (rows may have been rejected); 2 bad input or an
unusable warehouse (one line on stderr per problem; other files still load); 1 a bug.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolkit import __version__
from toolkit.errors import ToolkitError
from toolkit.ingest import ingest_many
from toolkit.limits import DEFAULT_MAX_CELLS, DEFAULT_MAX_UNCOMPRESSED_BYTES
from toolkit.load import Progress
from toolkit.specs import load_specs
from toolkit.summary import IngestSummary

EXIT_OK, EXIT_BUG, EXIT_BAD_INPUT = 0, 1, 2
#: stdout was closed before everything was printed (``| head``): 128 + SIGPIPE, as Unix tools end.
EXIT_STDOUT_CLOSED = 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m toolkit", description="Ingest Excel workbooks into a DuckDB warehouse.")
    parser.add_argument("--version", action="version", version=f"toolkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="validate workbooks and load their rows into the warehouse")
    _add_read_options(ingest)
    ingest.add_argument("--db", type=Path, default=Path("warehouse.duckdb"), help="DuckDB file (default: %(default)s)")
    ingest.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="processes reading and validating several files at once (default: one per core, for files over 4 MB in all)",
    )
    ingest.add_argument("--report", type=Path, metavar="PATH.html", help="also write a self-contained HTML report")
    ingest.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for a busy warehouse")
    ingest.add_argument("--log", type=Path, metavar="FILE", help="log every rejected row and the summaries to FILE")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")

    infer = commands.add_parser("infer", help="print a draft TOML table spec inferred from a sample workbook")
    infer.add_argument("file", type=Path, metavar="WORKBOOK")
    infer.add_argument("--sheet", help="sheet name (default: the first visible sheet)")
    infer.add_argument("--table", help="table name (default: from the file name)")
    infer.add_argument("--header-row", type=_positive, metavar="N", help="Excel row of the headers (default: found)")

    report = commands.add_parser("report", help="write an HTML report of past runs from the warehouse")
    report.add_argument("--db", type=Path, default=Path("warehouse.duckdb"), help="DuckDB file (default: %(default)s)")
    which = report.add_mutually_exclusive_group()
    which.add_argument("--run", action="append", default=[], metavar="RUN_ID", help="a run to report (repeatable)")
    which.add_argument("--last", type=_positive, metavar="N", help="the N most recent runs (default: 1)")
    report.add_argument("--out", type=Path, required=True, metavar="PATH.html", help="the HTML file to write")
    report.add_argument("--spec", action="append", default=[], type=Path, metavar="PATH", help=_SPEC_HELP)

    rejects = commands.add_parser("rejects", help="write rejected rows as a workbook to correct and ingest again")
    rejects.add_argument("--db", type=Path, default=Path("warehouse.duckdb"), help="DuckDB file (default: %(default)s)")
    rejects.add_argument("--run", metavar="RUN_ID", help="the run to export (default: the latest run of each table)")
    rejects.add_argument("--table", help="only the latest run of this table")
    rejects.add_argument("--out", type=Path, required=True, metavar="PATH.xlsx", help="the workbook to write")
    rejects.add_argument("--spec", action="append", default=[], type=Path, metavar="PATH", help=_SPEC_HELP)

    submit = commands.add_parser("submit", help="enqueue workbooks for the cluster's workers (see `worker`)")
    _add_read_options(submit)
    submit.add_argument("--wait", action="store_true", help="wait for the loads; print the summaries like `ingest`")
    _add_broker(submit)
    submit.add_argument("--spool", type=Path, metavar="DIR", help="copy the files into this spool for workers to read")
    submit.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS", help="with --wait: give up after this long")
    submit.add_argument("--quiet", action="store_true", help="with --wait: no progress on stderr")

    worker = commands.add_parser("worker", help="run a cluster worker: reads files, or with --warehouse loads them")
    worker.add_argument("--warehouse", action="store_true", help="be the warehouse writer (run exactly one)")
    worker.add_argument("--db", type=Path, help="with --warehouse: DuckDB file (default: $TOOLKIT_DB or warehouse.duckdb)")
    worker.add_argument(
        "--spool", type=Path, metavar="DIR", help="spool folder shared by all workers (default: $TOOLKIT_SPOOL or spool)"
    )
    worker.add_argument("--concurrency", type=_positive, metavar="N", help="read processes (default: the cores; the writer: 1)")
    _add_broker(worker)
    worker.add_argument(
        "--loglevel", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="(default: %(default)s)"
    )
    return parser


_SPEC_HELP = "TOML spec file or folder (repeatable), to mark the cells your own rules use"


def _add_read_options(parser: argparse.ArgumentParser) -> None:
    """The files and how to read, judge and load them: the same for ``ingest`` and ``submit``."""
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help=".xlsx, .xlsm, .xlsb, .xls or .ods")
    parser.add_argument("--table", help="table spec to use (default: chosen from the headers)")
    parser.add_argument("--sheet", help="sheet name (default: the first visible sheet)")
    parser.add_argument("--header-row", type=_positive, metavar="N", help="Excel row of the headers (default: found)")
    parser.add_argument("--batch-size", type=_positive, default=1000, metavar="N", help="rows per commit (default: %(default)s)")
    parser.add_argument(
        "--spec", action="append", default=[], type=Path, metavar="PATH", help="TOML spec file or folder (repeatable)"
    )
    parser.add_argument(
        "--on-conflict",
        choices=("reject", "update"),
        default="reject",
        help="a row whose key is stored with other values: reject it (default) or update the stored row",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per sheet (JSON Lines)")
    parser.add_argument(
        "--max-cells",
        type=_positive,
        default=DEFAULT_MAX_CELLS,
        metavar="N",
        help="refuse, unread, a sheet declaring more cells (rows x columns) (default: %(default)s)",
    )
    parser.add_argument(
        "--max-unpacked-mb",
        type=_positive,
        default=DEFAULT_MAX_UNCOMPRESSED_BYTES // 1024**2,
        metavar="N",
        help="refuse, unread, a zipped workbook declaring more unpacked MiB (default: %(default)s)",
    )


def _add_broker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", metavar="URL", help="Redis URL (default: $TOOLKIT_BROKER_URL or redis://127.0.0.1:6379/0)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"ingest": _ingest, "infer": _infer, "report": _report, "rejects": _rejects, "submit": _submit, "worker": _worker}
    try:
        return commands[args.command](args)
    except ToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted; committed batches are kept, re-run to finish the load", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout stopped (``--json | head -1``): not a bug, and the work is done by
        # the time anything is printed. Quietly, as Unix tools do; stdout goes to /dev/null so
        # the interpreter's own flush at exit does not fail on it again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_STDOUT_CLOSED
    except Exception as exc:  # the CLI never shows a traceback unless asked to
        if os.environ.get("TOOLKIT_DEBUG"):
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (set TOOLKIT_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_BUG


def _ingest(args: argparse.Namespace) -> int:
    if args.log:
        handler = logging.FileHandler(args.log, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger = logging.getLogger("toolkit")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    specs = load_specs(args.spec)
    show_progress = not args.quiet and sys.stderr.isatty()
    outcomes = ingest_many(
        args.files,
        db=args.db,
        table=args.table,
        sheet=args.sheet,
        batch_size=args.batch_size,
        specs=specs,
        header_row=args.header_row,
        on_progress=_progress_bar if show_progress else None,
        wait=args.wait,
        on_conflict=args.on_conflict,
        workers=args.workers,
        max_cells=args.max_cells,
        max_uncompressed_bytes=args.max_unpacked_mb * 1024**2,
    )
    summaries = [o for o in outcomes if isinstance(o, IngestSummary)]
    if args.report and summaries:  # before printing: a reader that stops early does not cost the report
        from toolkit.report import summary_html

        args.report.write_text(summary_html(summaries, specs=specs), encoding="utf-8")
    return _print_outcomes(outcomes, as_json=args.json)


def _print_outcomes(outcomes: Sequence[IngestSummary | ToolkitError], *, as_json: bool) -> int:
    """Each summary on stdout, each error on stderr once; the exit code they make."""
    said: set[str] = set()
    for outcome in outcomes:
        if isinstance(outcome, ToolkitError):
            # A busy warehouse fails every file left with one message: say it once. Compared as text,
            # since errors that come back from the cluster are rebuilt, one object per file.
            if str(outcome) not in said:
                said.add(str(outcome))
                print(f"error: {outcome}", file=sys.stderr)
        elif as_json:
            print(json.dumps(outcome.to_dict(), ensure_ascii=False, default=str), flush=True)
        else:
            print(outcome.text(), flush=True)
    return EXIT_BAD_INPUT if said else EXIT_OK


def _infer(args: argparse.Namespace) -> int:
    from toolkit.infer import infer_spec

    print(infer_spec(args.file, sheet=args.sheet, table=args.table, header_row=args.header_row))
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from toolkit.report import warehouse_html

    page = warehouse_html(args.db, run_ids=args.run, last=args.last, specs=load_specs(args.spec))
    args.out.write_text(page, encoding="utf-8")
    print(f"wrote {args.out}")
    return EXIT_OK


def _rejects(args: argparse.Namespace) -> int:
    from toolkit.fixit import fixit_sheets, write_sheets

    sheets = fixit_sheets(args.db, run_id=args.run, table=args.table, specs=load_specs(args.spec))
    write_sheets(sheets, args.out)
    for sheet in sheets:
        run = sheet.run
        print(f"{args.out} [{sheet.name}]: {len(sheet.rows)} rejected rows of {run.file} (run {run.run_id})")
    to_fix = [sheet for sheet in sheets if sheet.rows]
    if not to_fix:
        print("nothing to fix: no rejected rows")
    for sheet in to_fix:
        choose = f" --sheet {sheet.name}" if len(sheets) > 1 else ""
        print(f"correct the highlighted cells, then: python -m toolkit ingest {args.out}{choose} --db {args.db}")
    return EXIT_OK


def _cluster(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(f"toolkit.{module}")
    except ImportError as exc:  # the cluster is an optional extra
        raise ToolkitError(f"the cluster needs Celery and Redis: pip install 'toolkit[cluster]' ({exc})") from exc


def _submit(args: argparse.Namespace) -> int:
    submission = _cluster("cluster").submit(
        args.files,
        table=args.table,
        sheet=args.sheet,
        header_row=args.header_row,
        spec_paths=args.spec,
        batch_size=args.batch_size,
        on_conflict=args.on_conflict,
        broker=args.broker,
        spool=args.spool,
        max_cells=args.max_cells,
        max_uncompressed_bytes=args.max_unpacked_mb * 1024**2,
    )
    if not args.wait:
        if args.json:
            print(json.dumps({"submission": submission.id, "files": list(submission.files)}), flush=True)
        else:
            print(f"submitted {len(submission.files)} file(s) as {submission.id}", flush=True)
        return EXIT_OK
    progress = _ClusterProgress()
    try:
        outcomes = submission.summaries(timeout=args.timeout, on_progress=None if args.quiet else progress)
    finally:
        progress.finish()
    return _print_outcomes(outcomes, as_json=args.json)


def _worker(args: argparse.Namespace) -> int:
    if args.db is not None and not args.warehouse:
        raise ToolkitError("--db is the writer's warehouse: add --warehouse, or leave --db out for a read worker")
    _cluster("tasks").run_worker(
        writer=args.warehouse,
        db=args.db,
        spool=args.spool,
        broker=args.broker,
        concurrency=args.concurrency,
        loglevel=args.loglevel,
    )
    return EXIT_OK


class _ClusterProgress:
    """One stderr line each time a submission moves on (a redrawn line on a terminal)."""

    def __init__(self) -> None:
        self.last = ""
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.hinted = False

    def __call__(self, progress: Any) -> None:
        if progress.loading is not None:
            line = f"loading {progress.loaded + 1}/{progress.to_load} {progress.loading}"
            if self.tty:
                line += f": {progress.rows_done:,}/{progress.rows_total:,} rows"
        elif progress.state in ("SUCCESS", "FAILURE"):
            line = f"done: {progress.files} file(s)"
        elif progress.state == "PENDING" and progress.read == progress.files:
            line = f"read {progress.read}/{progress.files} files, waiting for the writer"
        else:
            line = f"read {progress.read}/{progress.files} files"
        if line != self.last:
            sys.stderr.write(("\r\x1b[K" if self.tty else "") + line + ("" if self.tty else "\n"))
            sys.stderr.flush()
            self.last = line
        if not self.hinted and progress.read == 0 and time.monotonic() - self.started > 15:
            sys.stderr.write(("\n" if self.tty else "") + "no file read yet: is a worker running? (python -m toolkit worker)\n")
            self.hinted = True

    def finish(self) -> None:
        if self.tty and self.last:
            sys.stderr.write("\n")


def _progress_bar(progress: Progress) -> None:
    width = 30
    done = progress.rows_done / progress.rows_total if progress.rows_total else 1.0
    bar = "#" * round(width * done)
    end = "\n" if progress.rows_done >= progress.rows_total else ""
    sys.stderr.write(
        f"\r[{bar:<{width}}] {progress.rows_done:,}/{progress.rows_total:,} rows, {progress.rows_per_second:,.0f} rows/s{end}"
    )
    sys.stderr.flush()
