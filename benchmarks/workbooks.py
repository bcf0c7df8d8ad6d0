"""Deterministic loans-shaped workbooks and a warehouse holding their customers, cached in .cache/.

Each workbook has the reference loans headers (9 columns, real Excel dates) and one defective row
in a thousand (a missing Tenure, text in Loan Amount, an End Date before its start, more EMIs paid
than the tenure), so the rejection path is part of what is measured. A file too small to cycle through the
kinds (the start-up's) has one of each in its last rows: it takes the same code paths as the
larger files (a text cell in a number column, the rejects written), so the start-up that the
per-row cost subtracts holds the fixed cost of those paths too. Loan IDs are unique across
the parts of a multi-file set; Customer IDs are drawn from 1..N_CUSTOMERS, which the template
warehouse holds, so the foreign key to ``customers`` is satisfied.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import shutil
from pathlib import Path

import xlsxwriter

CACHE = Path(__file__).resolve().parent / ".cache"
N_CUSTOMERS = 10_000
HEADERS = [
    "Customer ID",
    "Loan ID",
    "Loan Amount",
    "Tenure",
    "Interest Rate",
    "Monthly payment",
    "EMIs paid on Time",
    "Date of Approval",
    "End Date",
]
#: Bump when the generator changes, so cached files are rebuilt.
VERSION = 2
#: How the loans' values are drawn (benchmarks/duckdb_floor.py draws its rows the same way).
EPOCH = dt.datetime(2012, 1, 1)  # approval dates fall in the START_DAYS days from here
START_DAYS = 3650
TENURES = (6, 12, 24, 36, 48, 60, 84, 120)  # months; a loan ends 30 days a month after its approval
AMOUNT_THOUSANDS = (10, 2000)
RATES = (6.0, 18.0)
#: One defective row in DEFECT_EVERY, cycling through the DEFECT_KINDS kinds.
DEFECT_EVERY, DEFECT_KINDS = 1000, 4


def workbook(rows: int, part: int = 0) -> Path:
    """Path of the cached workbook of ``rows`` loans (part ``part`` of a set), built if missing."""
    path = CACHE / f"loans_v{VERSION}_{rows}_{part}.xlsx"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        partial = path.with_suffix(".tmp")
        _write(partial, rows, part)
        partial.rename(path)
    return path


def _write(path: Path, rows: int, part: int) -> None:
    rng = random.Random(1000 * VERSION + part)
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    dates = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet = book.add_worksheet("Sheet1")
    sheet.write_row(0, 0, HEADERS)
    for i in range(rows):
        amount = rng.randint(*AMOUNT_THOUSANDS) * 1000
        tenure = rng.choice(TENURES)
        rate = round(rng.uniform(*RATES), 2)
        start = EPOCH + dt.timedelta(days=rng.randint(0, START_DAYS))
        end = start + dt.timedelta(days=30 * tenure)
        values: list[object] = [
            rng.randint(1, N_CUSTOMERS),
            part * rows + i + 1,
            amount,
            tenure,
            rate,
            round(amount * (1 + rate / 100) / tenure, 2),
            rng.randint(0, tenure),
            start,
            end,
        ]
        kind = _defect(i, rows)
        if kind is not None:
            if kind == 0:
                values[3] = None
            elif kind == 1:
                values[2] = "abc"
            elif kind == 2:
                values[8] = start - dt.timedelta(days=1)
            else:
                values[6] = tenure + 1
        r = i + 1
        for c, value in enumerate(values):
            if value is None:
                continue
            if isinstance(value, dt.datetime):
                sheet.write_datetime(r, c, value, dates)
            elif isinstance(value, str):
                sheet.write_string(r, c, value)
            else:
                sheet.write_number(r, c, value)
    book.close()


def _defect(i: int, rows: int) -> int | None:
    """The kind of defect row ``i`` has (0 to 3), or None: one row in a thousand, cycling through
    the four kinds; a file too small to cycle through them has one of each in its last rows."""
    if rows < DEFECT_KINDS * DEFECT_EVERY:
        return i - (rows - DEFECT_KINDS) if i >= rows - DEFECT_KINDS else None
    return (i // DEFECT_EVERY) % DEFECT_KINDS if i % DEFECT_EVERY == DEFECT_EVERY - 1 else None


def template_warehouse() -> Path:
    """A warehouse with the toolkit's tables and customers 1..N_CUSTOMERS, built once."""
    from toolkit.load import Warehouse
    from toolkit.specs import load_specs

    # Named after the built-in specs too: tables made by an older spec would keep its column types.
    specs = hashlib.sha256(repr(sorted(load_specs().items())).encode()).hexdigest()[:12]
    path = CACHE / f"customers_v{VERSION}_{specs}.duckdb"
    if path.exists():
        return path

    CACHE.mkdir(exist_ok=True)
    partial = CACHE / "customers.tmp.duckdb"
    partial.unlink(missing_ok=True)
    with Warehouse(partial) as warehouse:
        warehouse.ensure_tables(list(load_specs().values()))
        warehouse.con.execute(
            "INSERT INTO customers SELECT i, 'First' || i, 'Last' || i, 20 + i % 60, '9' || lpad(i::VARCHAR, 9, '0'), "
            f"30000 + i % 1000 * 100, 1000000, NULL, 'benchmark', i + 1 FROM range(1, {N_CUSTOMERS + 1}) t(i)"
        ).fetchall()
        warehouse.con.execute("CHECKPOINT").fetchall()
    partial.rename(path)
    return path


def fresh_warehouse(target: Path) -> Path:
    """Copy the template warehouse to ``target`` (customers loaded, no loans)."""
    shutil.copyfile(template_warehouse(), target)
    return target
