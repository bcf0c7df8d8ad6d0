"""The original design's approach, reimplemented small and faithfully, as the baseline to beat.

pandas reads the sheet with openpyxl; each row is validated in Python (one function call per row,
one branch per rule); each valid row is sent to DuckDB as its own parameterised INSERT, committing
every 1000 rows. It is given the same warehouse as the toolkit (customers present) and checks the
same loans rules, so the two do the same work. Where a choice was open it takes the cheaper one, so
the comparison flatters it: existing keys and customers are fetched once into Python sets (a
per-row ``ON CONFLICT DO NOTHING`` costs DuckDB 6.5 ms a row against 1.2 ms for a plain INSERT),
and rejected rows are counted, not stored.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

COLUMNS = {
    "Customer ID": "customer_id",
    "Loan ID": "loan_id",
    "Loan Amount": "loan_amount",
    "Tenure": "tenure",
    "Interest Rate": "interest_rate",
    "Monthly payment": "monthly_repayment",
    "EMIs paid on Time": "emis_paid_on_time",
    "Date of Approval": "start_date",
    "End Date": "end_date",
}
COMMIT_EVERY = 1000


def ingest(path: Path, db: Path) -> dict[str, int]:
    import duckdb
    import pandas as pd

    frame = pd.read_excel(path, engine="openpyxl")
    con = duckdb.connect(str(db))
    customers = {row[0] for row in con.execute("SELECT customer_id FROM customers").fetchall()}
    present = {tuple(row) for row in con.execute("SELECT customer_id, loan_id FROM loans").fetchall()}
    names = list(COLUMNS.values())
    insert = f"INSERT INTO loans ({', '.join(names)}, _run_id, _source_row) VALUES ({', '.join('?' for _ in names)}, ?, ?)"
    counts = {"total": 0, "failed": 0, "inserted": 0, "skipped": 0}
    con.begin()
    pending = 0
    for index, record in enumerate(frame.rename(columns=COLUMNS).to_dict("records")):
        counts["total"] += 1
        row, errors = _validate(record)
        if not errors and row["customer_id"] not in customers:
            errors.append("Customer ID is not in customers")
        if errors:
            counts["failed"] += 1
            continue
        key = (row["customer_id"], row["loan_id"])
        if key in present:
            counts["skipped"] += 1
            continue
        present.add(key)
        con.execute(insert, [*(row[n] for n in names), "original", index + 2])
        counts["inserted"] += 1
        pending += 1
        if pending == COMMIT_EVERY:
            con.commit()
            con.begin()
            pending = 0
    con.commit()
    con.close()
    return counts


def _validate(record: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    errors: list[str] = []
    row: dict[str, Any] = {}
    for name in ("customer_id", "loan_id", "tenure", "emis_paid_on_time"):
        row[name] = _whole(record[name], name, errors)
    for name in ("loan_amount", "interest_rate", "monthly_repayment"):
        row[name] = _number(record[name], name, errors)
    for name in ("start_date", "end_date"):
        row[name] = _date(record[name], name, errors)
    if row["customer_id"] is not None and row["customer_id"] < 1:
        errors.append("customer_id below 1")
    if row["loan_id"] is not None and row["loan_id"] < 1:
        errors.append("loan_id below 1")
    if row["tenure"] is not None and row["tenure"] < 1:
        errors.append("tenure below 1")
    if row["emis_paid_on_time"] is not None and row["emis_paid_on_time"] < 0:
        errors.append("emis_paid_on_time below 0")
    for name in ("loan_amount", "monthly_repayment"):
        if row[name] is not None and row[name] <= 0:
            errors.append(f"{name} not above 0")
    if row["interest_rate"] is not None and not 0 < row["interest_rate"] <= 100:
        errors.append("interest_rate out of range")
    if None not in (row["tenure"], row["emis_paid_on_time"]) and row["emis_paid_on_time"] > row["tenure"]:
        errors.append("EMIs paid on Time is greater than Tenure")
    if None not in (row["start_date"], row["end_date"]) and row["end_date"] < row["start_date"]:
        errors.append("End Date is before Date of Approval")
    return row, errors


def _missing(value: Any) -> bool:
    # NaN and NaT are the only values unequal to themselves: pandas' two spellings of "empty".
    return value is None or value != value or (isinstance(value, str) and not value.strip())


def _whole(value: Any, name: str, errors: list[str]) -> int | None:
    if _missing(value):
        errors.append(f"Missing {name}")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        errors.append(f"{name}: {value!r} is not a whole number")
        return None
    if not number.is_integer():
        errors.append(f"{name}: {value!r} is not a whole number")
        return None
    return int(number)


def _number(value: Any, name: str, errors: list[str]) -> float | None:
    if _missing(value):
        errors.append(f"Missing {name}")
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        errors.append(f"{name}: {value!r} is not a number")
        return None


def _date(value: Any, name: str, errors: list[str]) -> dt.date | None:
    if _missing(value):
        errors.append(f"Missing {name}")
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        errors.append(f"{name}: {value!r} is not a date")
        return None
