"""Shared fixtures: workbooks built in tmp_path, a fresh warehouse path, the shared corpus."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SHARED = ROOT.parent / "shared" / "data"
REFERENCE = SHARED / "credit-approval"
ODDFILES = SHARED / "oddfiles"

CUSTOMER_HEADERS = ["Customer ID", "First Name", "Last Name", "Age", "Phone Number", "Monthly Salary", "Approved Limit"]
LOAN_HEADERS = [
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


@dataclass(frozen=True)
class ExcelError:
    """A cell holding an Excel error such as #DIV/0! (written as a formula with that cached value)."""

    text: str


_FORMULA_FOR = {"#DIV/0!": "=1/0", "#N/A": "=NA()", "#REF!": "=#REF!", "#NAME?": "=nosuchfn()", "#VALUE!": '="a"+1'}


# A user's spec with a cross-column rule (for the cells a rule names, in reports and exports).
STOCK_SPEC = """
table = "stock"
key = ["sku"]

[[columns]]
name = "sku"
header = "SKU"
required = true

[[columns]]
name = "quantity"
header = "Qty"
type = "integer"

[[columns]]
name = "unit_price"
header = "Price"
type = "number"

[[rules]]
name = "value_cap"
check = "quantity * unit_price <= 1000"
message = "Stock value above 1,000"
"""


def write_workbook(
    path: Path,
    rows: Sequence[Sequence[Any]],
    *,
    sheet: str = "Sheet1",
    first_cell: tuple[int, int] = (0, 0),
    extra_sheets: dict[str, Sequence[Sequence[Any]]] | None = None,
    hidden: Sequence[str] = (),
) -> Path:
    """Write rows (the first is usually the header) starting at ``first_cell`` (row, col, 0-based).

    ``None`` leaves a cell empty; ``datetime``/``date`` become real Excel dates; ``ExcelError``
    becomes an error cell.
    """
    book = xlsxwriter.Workbook(str(path))
    date_format = book.add_format({"num_format": "yyyy-mm-dd"})
    time_format = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    sheets = {sheet: rows, **(extra_sheets or {})}
    for name, sheet_rows in sheets.items():
        ws = book.add_worksheet(name)
        if name in hidden:
            ws.hide()
        for r, row in enumerate(sheet_rows):
            for c, value in enumerate(row):
                at = (first_cell[0] + r, first_cell[1] + c)
                if value is None:
                    continue
                if isinstance(value, ExcelError):
                    ws.write_formula(*at, _FORMULA_FOR.get(value.text, "=1/0"), None, value.text)
                elif isinstance(value, dt.datetime):
                    fmt = time_format if value.time() != dt.time(0) else date_format
                    ws.write_datetime(*at, value, fmt)
                elif isinstance(value, dt.date):
                    ws.write_datetime(*at, dt.datetime.combine(value, dt.time(0)), date_format)
                elif isinstance(value, str):
                    ws.write_string(*at, value)
                else:
                    ws.write(*at, value)
    book.close()
    return path


def corpus(name: str) -> Path:
    """A file of the shared odd-file corpus; the test is skipped, saying so, where the corpus is absent
    (a user's clone has no ../shared)."""
    path = ODDFILES / name
    if not path.exists():
        pytest.skip(f"corpus file {path} is not available (../shared/data/oddfiles)")
    return path


def hidden_first_workbook(path: Path) -> Path:
    """A workbook whose first sheet ("Sheet1", holding "hidden") is hidden; the second ("Shown") is not."""
    book = xlsxwriter.Workbook(str(path))
    hidden, shown = book.add_worksheet("Sheet1"), book.add_worksheet("Shown")
    hidden.write(0, 0, "hidden")
    shown.write(0, 0, "shown")
    shown.activate()  # xlsxwriter will not hide the active sheet
    hidden.hide()
    book.close()
    return path


@pytest.fixture
def workbook(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``workbook(rows, name="x.xlsx", **options)`` -> path of a new workbook."""
    counter = iter(range(1_000_000))

    def make(rows: Sequence[Sequence[Any]], name: str | None = None, **options: Any) -> Path:
        return write_workbook(tmp_path / (name or f"book{next(counter)}.xlsx"), rows, **options)

    return make


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Path of a fresh (not yet created) DuckDB warehouse file."""
    return tmp_path / "warehouse.duckdb"


def customer(cid: Any = 1, **overrides: Any) -> list[Any]:
    """A valid customer row in CUSTOMER_HEADERS order; override by column name."""
    row = {
        "Customer ID": cid,
        "First Name": "Asha",
        "Last Name": "Rao",
        "Age": 34,
        "Phone Number": f"98{int(cid) if isinstance(cid, int) else 0:08d}",
        "Monthly Salary": 50000,
        "Approved Limit": 1800000,
    }
    row.update({k.replace("_", " "): v for k, v in overrides.items()})
    return [row[h] for h in CUSTOMER_HEADERS]


def loan(cid: Any = 1, lid: Any = 100, **overrides: Any) -> list[Any]:
    """A valid loan row in LOAN_HEADERS order; override by header."""
    row = {
        "Customer ID": cid,
        "Loan ID": lid,
        "Loan Amount": 100000,
        "Tenure": 12,
        "Interest Rate": 10.5,
        "Monthly payment": 8800,
        "EMIs paid on Time": 5,
        "Date of Approval": dt.date(2020, 1, 15),
        "End Date": dt.date(2021, 1, 15),
    }
    row.update(overrides)
    return [row[h] for h in LOAN_HEADERS]


# Helpers for the warehouse, loader and CLI tests (imports kept here, beside the helpers that use them).
import contextlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import duckdb  # noqa: E402


def query(db: Path, text: str) -> list[tuple[Any, ...]]:
    """The rows of a query against the warehouse file, opened read-only."""
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(text).fetchall()


def warehouse_rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table`` in a stable order, without ``_run_id`` (which differs between runs)."""
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(f'SELECT * EXCLUDE (_run_id) FROM "{table}" ORDER BY ALL').fetchall()


_HOLD = "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(float(sys.argv[2]))"


@contextlib.contextmanager
def warehouse_held(db: Path, *, seconds: float = 60.0) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``db`` open (DuckDB's file lock) for ``seconds`` or until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


# Helpers for the zip-bomb tests: real workbooks whose parts are rewritten or whose declared sizes lie.
import struct  # noqa: E402
import zipfile  # noqa: E402


def rewrite_member(path: Path, member: str, change: Callable[[bytes], bytes]) -> Path:
    """Rewrite one part of a zipped workbook in place (deflated, like Excel writes it)."""
    with zipfile.ZipFile(path) as source:
        parts = [(info.filename, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts:
            target.writestr(name, change(data) if name == member else data)
    return path


def declare_size(path: Path, member: str, size: int) -> Path:
    """Make the zip's central directory claim ``size`` unpacked bytes for ``member`` (a lie)."""
    data = bytearray(path.read_bytes())
    wanted, at = member.encode(), 0
    while True:
        at = data.index(b"PK\x01\x02", at)  # a central directory entry
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length] == wanted:
            struct.pack_into("<I", data, at + 24, size)  # its "uncompressed size" field
            path.write_bytes(bytes(data))
            return path
        at += 4


# Hostile cell content (issue 6): stored faithfully, exported as text.
HOSTILE = {
    "a 1 MB cell": "ab" * 500_000,
    "NUL bytes": "a\x00b\x00c",
    "control characters": "\x07bell \x1bescape \x7fdelete \x01\x02\x03 end",
    "a right-to-left override": "invoice\u202egpj.exe",
    "a formula with =": '=HYPERLINK("http://example.invalid","click")',
    "a formula with +": "+1+1",
    "a formula with -": "-2+3",
    "a formula with @": "@SUM(A1:A2)",
    "a script tag": "<script>alert(1)</script>",
    "an HTML attribute": '<img src=x onerror="alert(1)">',
    "SQL": "Robert'); DROP TABLE notes; --",
    "an OOXML escape look-alike": "_x0041_ stays _x0041_",
    "line breaks": "one\ntwo\r\nthree",
}

NOTES_SPEC = """
table = "notes"
key = ["id"]

[[columns]]
name = "id"
header = "ID"
type = "integer"
required = true

[[columns]]
name = "body"
header = "Body"
type = "text"

[[columns]]
name = "amount"
header = "Amount"
type = "number"
"""


def write_hostile(path: Path, *, amount: Any = 1.5, sheet: str = "Notes") -> Path:
    """One row per HOSTILE value under ID, Body, Amount; strings longer than Excel's 32,767
    characters are written whole (xlsxwriter would cut them), as a hostile generator would."""
    book = xlsxwriter.Workbook(str(path))
    ws = book.add_worksheet(sheet)
    ws.xls_strmax = 2_000_000
    ws.write_row(0, 0, ["ID", "Body", "Amount"])
    for row, text in enumerate(HOSTILE.values(), start=1):
        ws.write_number(row, 0, row)
        assert ws.write_string(row, 1, text) == 0
        ws.write(row, 2, amount)
    book.close()
    return path
