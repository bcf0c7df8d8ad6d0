"""What DuckDB alone costs to store a million loans-shaped rows, the ways the load could do it.

    python -m benchmarks.duckdb_floor [--repeats N]

No workbook, no validation: an arrow table of 1M rows shaped and drawn like the benchmark's loans
workbooks (composite primary key, customer ids spread over 10,000 values) inserted into a fresh DuckDB file. The
README's Performance section quotes these figures for the choices ``toolkit.load`` makes: one
DuckDB thread for small batches and all for large ones, each commit overlapping the next batch's
insert, the insert reading the arrow table by name, and one checkpoint at the end of a load.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from benchmarks import workbooks
from toolkit import schema
from toolkit.load import LOAD_WAL_LIMIT
from toolkit.specs import builtin_specs

ROWS = 1_000_000


def rows() -> pa.Table:
    """Values drawn as benchmarks/workbooks.py draws them: random customers, ascending loan ids,
    random amounts, tenures and dates. Constant columns would understate DuckDB's work: they
    compress to nothing, and the key index costs more on spread-out keys."""
    rng = np.random.default_rng(1)
    tenure = rng.choice(np.array(workbooks.TENURES, dtype=np.int32), ROWS)
    low, high = workbooks.AMOUNT_THOUSANDS
    amount = rng.integers(low, high + 1, ROWS) * 1000.0
    rate = np.round(rng.uniform(*workbooks.RATES, ROWS), 2)
    start = np.datetime64(workbooks.EPOCH.date()) + rng.integers(0, workbooks.START_DAYS + 1, ROWS).astype("timedelta64[D]")
    i = pl.int_range(ROWS, dtype=pl.Int64, eager=True)
    return pl.DataFrame(
        {
            "customer_id": pl.Series(rng.integers(1, workbooks.N_CUSTOMERS + 1, ROWS), dtype=pl.Int64),
            "loan_id": i + 1,
            "loan_amount": amount,
            "tenure": tenure,
            "interest_rate": rate,
            "monthly_repayment": np.round(amount * (1 + rate / 100) / tenure, 2),
            "emis_paid_on_time": (rng.random(ROWS) * (tenure + 1)).astype(np.int32),
            "start_date": pl.Series(start),
            "end_date": pl.Series(start + (30 * tenure).astype("timedelta64[D]")),
            "_run_id": pl.Series(["0123456789abcdef0123456789abcdef"] * ROWS),
            "_source_row": i + 2,
        }
    ).to_arrow()


def _relation(con: duckdb.DuckDBPyConnection, part: pa.Table) -> None:
    con.from_arrow(part).insert_into("loans")


def _by_name(con: duckdb.DuckDBPyConnection, part: pa.Table) -> None:
    con.execute("INSERT INTO loans SELECT * FROM part").fetchall()  # a replacement scan reads `part`


def serial(con: duckdb.DuckDBPyConnection, table: pa.Table, batch: int, insert: Callable[..., None]) -> None:
    for start in range(0, table.num_rows, batch):
        con.begin()
        insert(con, table.slice(start, batch))
        con.commit()


def overlapped(con: duckdb.DuckDBPyConnection, table: pa.Table, batch: int, insert: Callable[..., None]) -> None:
    """Batch k+1 inserted on one cursor while batch k commits on the other, commits in order."""
    cursors = (con, con.cursor())
    pending = None
    with ThreadPoolExecutor(1) as committer:
        for index, start in enumerate(range(0, table.num_rows, batch)):
            cursor = cursors[index % 2]
            cursor.begin()
            insert(cursor, table.slice(start, batch))
            if pending is not None:
                pending.result()
            pending = committer.submit(cursor.commit)
        if pending is not None:
            pending.result()
    cursors[1].close()


#: (how, batch size, insert, DuckDB threads, checkpoint threshold: None for DuckDB's 16 MiB)
CASES: dict[str, tuple[Callable[..., None], int, Callable[..., None], int, str | None]] = {
    "1000-row batches, one commit after another (relation insert)": (serial, 1000, _relation, 1, None),
    "1000-row batches, commit overlapping the next insert (relation insert)": (overlapped, 1000, _relation, 1, None),
    "1000-row batches, commit overlapping the next insert (insert by name)": (overlapped, 1000, _by_name, 1, None),
    "1000-row batches, overlapping, by name, one checkpoint at the end": (overlapped, 1000, _by_name, 1, LOAD_WAL_LIMIT),
    "the whole million in one batch, one DuckDB thread": (serial, ROWS, _relation, 1, None),
    "the whole million in one batch, two DuckDB threads": (serial, ROWS, _relation, 2, None),
}


def run_case(table: pa.Table, name: str, folder: Path) -> float:
    way, batch, insert, threads, wal_limit = CASES[name]
    db = folder / "floor.duckdb"
    for leftover in (db, db.with_suffix(".duckdb.wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    schema.apply(con, builtin_specs()["loans"])  # the table the toolkit makes: its types, its key
    columns = list(schema.existing_columns(con, "loans"))
    assert table.column_names == columns, f"the rows' columns {table.column_names} are not the table's {columns}"
    con.execute(f"SET threads = {threads}").fetchall()
    if wal_limit is not None:  # as toolkit.load does for a load's batches
        con.execute(f"SET checkpoint_threshold = '{wal_limit}'").fetchall()
    started = time.perf_counter()
    way(con, table, batch, insert)
    con.close()  # the checkpoint on close is part of storing the rows
    seconds = time.perf_counter() - started
    with duckdb.connect(str(db), read_only=True) as check:
        assert check.execute("SELECT count(*) FROM loans").fetchall() == [(ROWS,)]
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    table = rows()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):  # alternating, so the machine's drift touches every case alike
            for name in CASES:
                times[name].append(run_case(table, name, Path(folder)))
    print(f"DuckDB {duckdb.__version__}, {ROWS:,} rows, median of {args.repeats}:\n")
    print("| how | median s |\n|---|---|")
    for name, found in times.items():
        print(f"| {name} | {statistics.median(found):.2f} |")


if __name__ == "__main__":
    main()
