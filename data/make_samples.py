"""Generate the sample workbooks customer_data.xlsx and loan_data.xlsx, with documented defects.

Deterministic by construction (fixed seed, fixed workbook dates, no clock) so that tests can assert the exact
ingest summary. Every deliberate defect is placed at a fixed row, listed in README.md (written here, from the
same bookkeeping) and counted into expected_summary.json.

    python data/make_samples.py
"""

import datetime as dt
import json
import random
from pathlib import Path
from typing import NamedTuple

import xlsxwriter

HERE = Path(__file__).resolve().parent
N_CUSTOMERS, N_LOANS = 200, 500
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
FIRST = [
    "Aarav",
    "Vivaan",
    "Aditya",
    "Arjun",
    "Sai",
    "Rohan",
    "Ishaan",
    "Kabir",
    "Rahul",
    "Vikram",
    "Anil",
    "Suresh",
    "Ravi",
    "Manoj",
    "Ananya",
    "Diya",
    "Priya",
    "Kavya",
    "Meera",
    "Pooja",
    "Neha",
    "Sneha",
    "Lakshmi",
    "Sunita",
    "Asha",
    "Fatima",
    "Imran",
    "Gurpreet",
    "Harpreet",
    "Joseph",
]
LAST = [
    "Sharma",
    "Verma",
    "Patel",
    "Reddy",
    "Nair",
    "Iyer",
    "Gupta",
    "Singh",
    "Kumar",
    "Das",
    "Rao",
    "Mehta",
    "Joshi",
    "Khan",
    "Banerjee",
    "Mukherjee",
    "Pillai",
    "Menon",
    "Chopra",
    "Fernandes",
]


class Err(NamedTuple):
    """An Excel error cell: a formula whose cached value (what readers see) is the error."""

    formula: str
    value: str


class Case(NamedTuple):
    row: dict
    kind: str  # "valid" | "duplicate" | "rejected" | "skipped"
    why: str
    column: str
    content: str
    copy_of: dict | None = None


rng = random.Random(20261203)
# Phones written literally by the defect cases below (normalised); clean phones must not collide with them.
used_phones = {"9876543210", "9820112233", "9123456789", "9812345678"}
loan_id_pool = rng.sample(range(1000, 10000), N_LOANS + 40)  # 4-digit ids like the reference, unique


def fresh_phone() -> str:
    while True:
        phone = f"{rng.randint(6, 9)}{rng.randrange(10**9):09d}"
        if phone not in used_phones:
            used_phones.add(phone)
            return phone


def customer(cid: int) -> dict:
    salary = rng.randrange(15, 201) * 1000
    return {
        "Customer ID": cid,
        "First Name": rng.choice(FIRST),
        "Last Name": rng.choice(LAST),
        "Age": rng.randint(21, 70),
        "Phone Number": fresh_phone(),
        "Monthly Salary": salary,
        "Approved Limit": (36 * salary + 50_000) // 100_000 * 100_000,
    }  # nearest lakh, half up


def add_months(day: dt.date, months: int) -> dt.date:
    years, month0 = divmod(day.month - 1 + months, 12)
    return day.replace(year=day.year + years, month=month0 + 1)  # safe: days are <= 28


def loan(cid: int | None = None) -> dict:
    amount, tenure, rate = rng.randint(1, 10) * 100_000, rng.randint(3, 180), round(rng.uniform(8, 20), 2)
    start = dt.date(rng.randint(2010, 2023), rng.randint(1, 12), rng.randint(1, 28))
    r = rate / 1200  # monthly rate; annuity payment below
    return {
        "Customer ID": cid or rng.randint(1, N_CUSTOMERS),
        "Loan ID": loan_id_pool.pop(),
        "Loan Amount": amount,
        "Tenure": tenure,
        "Interest Rate": rate,
        "Monthly payment": round(amount * r / (1 - (1 + r) ** -tenure)),
        "EMIs paid on Time": rng.randint(tenure // 2, tenure),
        "Date of Approval": start,
        "End Date": add_months(start, tenure),
    }


def show(value) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, Err):
        return f"error `{value.value}` (formula `{value.formula}`)"
    if isinstance(value, dt.datetime):
        return f"Excel date-time {value:%Y-%m-%d %H:%M}"
    if isinstance(value, dt.date):
        return f"Excel date {value:%Y-%m-%d}"
    if isinstance(value, str):
        return f'text `"{value}"`'
    return f"number {value}"


def case(base: dict, kind: str, why: str, **changes) -> Case:
    """A defect row: `base` with some cells replaced (keyword names use _ for spaces)."""
    changes = {k.replace("_", " "): v for k, v in changes.items()}
    row = {**base, **changes}
    return Case(row, kind, why, ", ".join(changes), "; ".join(show(v) for v in changes.values()))


BLANK = Case({}, "skipped", "fully blank row, not counted", "(all)", "every cell empty")


def customers() -> tuple:
    """Clean customers 1..200, then defect rows with fresh ids from 201 so they never clash with clean keys."""
    clean = [customer(i) for i in range(1, N_CUSTOMERS + 1)]
    next_id = iter(range(N_CUSTOMERS + 1, 1000))

    def new() -> dict:
        return customer(next(next_id))

    shared_phone_a, shared_phone_b = new(), new()
    conflict, no_salary, text_id = new(), new(), new()
    return (
        clean,
        no_salary["Customer ID"],
        [
            case(new(), "rejected", "customer_id required", Customer_ID=None),
            case(new(), "rejected", "customer_id must be a whole number", Customer_ID="abc"),
            case(new(), "rejected", "customer_id must be >= 1", Customer_ID=0),
            case(new(), "rejected", "customer_id must be a whole number", Customer_ID=204.5),
            case(text_id, "valid", "number stored as text", Customer_ID=str(text_id["Customer ID"])),
            case(new(), "rejected", "first_name required", First_Name=None),
            case(new(), "rejected", "last_name blank after trimming", Last_Name="   "),
            case(new(), "valid", "age is optional", Age=None),
            case(new(), "rejected", "age must be 18..100", Age=17),
            case(new(), "rejected", "age must be 18..100", Age=101),
            case(new(), "rejected", "age must be a whole number", Age="abc"),
            case(new(), "rejected", "age must be a whole number", Age=30.5),
            case(new(), "rejected", "Excel error cell", Age=Err("=NA()", "#N/A")),
            case(new(), "rejected", "phone_number required", Phone_Number=None),
            case(new(), "rejected", "phone must be 10 digits (9 here)", Phone_Number="987654321"),
            case(new(), "rejected", "phone must be 10 digits (letters)", Phone_Number="98765ABCDE"),
            case(new(), "valid", "phone normalises to 9876543210", Phone_Number="+91 98765-43210"),
            case(new(), "valid", "phone normalises to 9820112233 (leading 0 dropped)", Phone_Number="098-2011-2233"),
            case(new(), "valid", "10-digit phone stored as a number", Phone_Number=9123456789),
            case(shared_phone_a, "rejected", "phone shared with a different customer (1 of 2)", Phone_Number="9812345678"),
            case(no_salary, "rejected", "Missing Monthly Salary", Monthly_Salary=None),
            case(new(), "rejected", "monthly_salary must be >= 0", Monthly_Salary=-5000),
            case(new(), "rejected", "monthly_salary must be a whole number", Monthly_Salary=45000.75),
            case(new(), "valid", "number stored as text, trimmed", Monthly_Salary=" 250000 ", Approved_Limit=9_000_000),
            case(shared_phone_b, "rejected", "phone shared with a different customer (2 of 2)", Phone_Number="9812345678"),
            case(new(), "rejected", "approved_limit required", Approved_Limit=None),
            case(new(), "rejected", "Excel error cell", Approved_Limit=Err("=1/0", "#DIV/0!")),
            case(conflict, "rejected", "same customer_id, different values (1 of 2)", Monthly_Salary=conflict["Monthly Salary"]),
            Case(dict(clean[2]), "duplicate", "identical to an earlier row", "(all)", "", clean[2]),
            case(
                conflict,
                "rejected",
                "same customer_id, different values (2 of 2)",
                Monthly_Salary=conflict["Monthly Salary"] + 5000,
            ),
            BLANK,
        ],
    )


def loans(no_salary: int) -> tuple:
    """Clean loans of clean customers 1..200, then defect rows with fresh loan ids."""
    clean = [loan() for _ in range(N_LOANS)]
    reused = []  # a Loan ID used again by a different customer: valid, the key is (customer_id, loan_id)
    for i in range(60, N_LOANS, 100):
        src, dst = clean[i - 50], clean[i]
        dst["Loan ID"] = src["Loan ID"]
        if dst["Customer ID"] == src["Customer ID"]:
            dst["Customer ID"] = src["Customer ID"] % N_CUSTOMERS + 1
        reused.append((dst, src))
    key_conflict, start_iso, start_time, text_amount, emis_over, end_before = (loan() for _ in range(6))
    start_iso["End Date"] = add_months(dt.date(2019, 5, 1), start_iso["Tenure"])
    start_time["End Date"] = add_months(dt.date(2018, 3, 4), start_time["Tenure"])
    return (
        clean,
        reused,
        [
            case(loan(), "rejected", "customer_id not among customers", Customer_ID=999),
            case(loan(), "rejected", "customer_id required", Customer_ID=None),
            case(loan(), "rejected", "loan_id required", Loan_ID=None),
            case(loan(), "rejected", "loan_id must be >= 1", Loan_ID=0),
            case(loan(), "rejected", "loan_amount must be > 0", Loan_Amount=0),
            case(loan(), "rejected", "Excel error cell", Loan_Amount=Err("=#REF!", "#REF!")),
            case(text_amount, "valid", "number stored as text, trimmed", Loan_Amount=f" {text_amount['Loan Amount']} "),
            case(loan(), "rejected", "tenure must be a whole number", Tenure="abc"),
            case(loan(), "rejected", "tenure must be a whole number", Tenure=12.5),
            case(loan(), "rejected", "Excel error cell", Tenure=Err('="a"+1', "#VALUE!")),
            case(loan(), "rejected", "interest_rate must be > 0 and <= 100", Interest_Rate=120),
            case(loan(), "rejected", "interest_rate must be > 0 and <= 100", Interest_Rate=0),
            case(loan(), "rejected", "Excel error cell", Interest_Rate=Err("=NOSUCHFUNCTION()", "#NAME?")),
            case(
                key_conflict,
                "rejected",
                "same (customer_id, loan_id), different values (1 of 2)",
                Loan_Amount=key_conflict["Loan Amount"],
            ),
            case(loan(), "rejected", "monthly_repayment must be > 0", Monthly_payment=-1500),
            case(
                loan(cid=no_salary),
                "rejected",
                "customer_id not in the warehouse: the customer's own row is rejected (Missing Monthly Salary)",
                Customer_ID=no_salary,
            ),
            case(
                emis_over,
                "rejected",
                f"emis_paid_on_time must be <= tenure ({emis_over['Tenure']})",
                EMIs_paid_on_Time=emis_over["Tenure"] + 5,
            ),
            case(loan(), "rejected", "emis_paid_on_time must be >= 0", EMIs_paid_on_Time=-1),
            case(start_iso, "valid", "ISO text date", Date_of_Approval="2019-05-01"),
            case(start_time, "rejected", "date with a time of day", Date_of_Approval=dt.datetime(2018, 3, 4, 13, 30)),
            case(loan(), "rejected", "not a date", End_Date="31/02/2019"),
            case(
                end_before, "rejected", "end_date must be >= start_date", End_Date=add_months(end_before["Date of Approval"], -1)
            ),
            Case(dict(clean[1]), "duplicate", "identical to an earlier row", "(all)", "", clean[1]),
            case(
                loan(),
                "rejected",
                "two reasons: tenure must be >= 1; end_date required",
                Tenure=0,
                EMIs_paid_on_Time=0,
                End_Date=None,
            ),
            case(
                key_conflict,
                "rejected",
                "same (customer_id, loan_id), different values (2 of 2)",
                Loan_Amount=key_conflict["Loan Amount"] + 100_000,
            ),
            BLANK,
        ],
    )


def place(clean: list, cases: list, step: int) -> list:
    """Spread the defect rows through the clean rows at fixed positions (not all together at the end)."""
    rows: list = [(r, None) for r in clean]
    for j, c in enumerate(cases):
        rows.insert(4 + j * step, (c.row, c))
    return rows


def write_book(path: Path, headers: list, rows: list) -> None:
    book = xlsxwriter.Workbook(str(path))
    book.set_properties({"created": dt.datetime(2026, 1, 1)})  # default is "now": files would differ per run
    sheet = book.add_worksheet("Sheet1")
    date_fmt = book.add_format({"num_format": "yyyy-mm-dd"})
    datetime_fmt = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    sheet.write_row(0, 0, headers)
    sheet.set_column(0, len(headers) - 1, 16)
    for r, (row, _) in enumerate(rows, start=1):
        for c, value in enumerate(row.get(h) for h in headers):
            if isinstance(value, Err):
                sheet.write_formula(r, c, value.formula, None, value.value)
            elif isinstance(value, dt.date):  # real Excel dates (serial numbers), as in the reference
                sheet.write_datetime(r, c, value, datetime_fmt if isinstance(value, dt.datetime) else date_fmt)
            elif isinstance(value, str):  # never write(): it would turn some strings into formulas or URLs
                sheet.write_string(r, c, value)
            elif value is not None:
                sheet.write_number(r, c, value)
    book.close()


def summarise(rows: list) -> dict:
    """The first-run summary: clean rows and "valid" cases are inserted, duplicates are successes too."""
    kinds = [c.kind if c else "valid" for _, c in rows]
    total, failed = len(kinds) - kinds.count("skipped"), kinds.count("rejected")
    return {
        "total": total,
        "success": total - failed,
        "failed": failed,
        "inserted": kinds.count("valid"),
        "skipped": 0,
        "duplicates": kinds.count("duplicate"),
    }


def table(rows: list, key_columns: list, reused: list) -> list:
    """README table; Excel row = index + 2 (header is row 1), blank rows count as physical rows."""
    excel_row = {id(row): i + 2 for i, (row, _) in enumerate(rows)}

    def key(row: dict) -> list:
        return ["—" if v is None else f'"{v}"' if isinstance(v, str) else v for v in map(row.get, key_columns)]

    lines = [
        (
            excel_row[id(row)],
            *key(row),
            c.column,
            f"identical copy of row {excel_row[id(c.copy_of)]}" if c.copy_of else c.content,
            f"{c.kind}: {c.why}",
        )
        for row, c in rows
        if c
    ]
    lines += [
        (
            excel_row[id(row)],
            *key(row),
            "Loan ID",
            f"number {row['Loan ID']}, also in row {excel_row[id(src)]} for customer {src['Customer ID']}",
            "valid: loan_id reused by another customer",
        )
        for row, src in reused
    ]
    return [
        f"| Excel row | {' | '.join(key_columns)} | Column | Cell content | Expected outcome |",
        "|---" * (4 + len(key_columns)) + "|",
        *("| " + " | ".join(map(str, ln)) + " |" for ln in sorted(lines)),
    ]


def main() -> None:
    clean_customers, no_salary, customer_cases = customers()
    clean_loans, reused, loan_cases = loans(no_salary)
    books = {
        "customer_data.xlsx": (CUSTOMER_HEADERS, place(clean_customers, customer_cases, 7), ["Customer ID"], []),
        "loan_data.xlsx": (LOAN_HEADERS, place(clean_loans, loan_cases, 17), LOAN_HEADERS[:2], reused),
    }
    readme, summary, expected = [README_HEAD], [], {}
    for name, (headers, rows, key_columns, reused_ids) in books.items():
        write_book(HERE / name, headers, rows)
        expected[name] = s = summarise(rows)
        readme += [f"## {name}", "", *table(rows, key_columns, reused_ids), ""]
        counts = [s["total"], s["success"], s["failed"]]
        summary += [
            f"| {name} | first | {' | '.join(map(str, counts + [s['inserted'], 0, s['duplicates']]))} |",
            f"| {name} | second | {' | '.join(map(str, counts + [0, s['inserted'], s['duplicates']]))} |",
        ]
    (HERE / "README.md").write_text("\n".join(readme) + README_TAIL + "\n".join(summary) + "\n")
    (HERE / "expected_summary.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(json.dumps(expected, indent=2))


README_HEAD = """# Sample workbooks

`customer_data.xlsx` and `loan_data.xlsx` mimic the reference data (`../shared/data/credit-approval/`): same
headers in the same order, sheet `Sheet1`, real Excel dates. They hold 200 clean customers and 500 clean loans
plus deliberate defects at fixed rows, one per validation rule, so that tests can assert an exact summary.
Regenerate (deterministic: fixed seed, fixed workbook dates, byte-identical output):

    python data/make_samples.py

This file and `expected_summary.json` are written by that script: edit the script, not them. Rows not listed
below are clean and valid. "Expected outcome" names the rule, not the toolkit's exact message.
"""

README_TAIL = """## Expected summary

`python -m toolkit ingest data/customer_data.xlsx data/loan_data.xlsx --db w.duckdb`, first on a fresh
warehouse, then again on the same one (the first run is also in `expected_summary.json`). `total` counts
non-blank data rows; `total == success + failed`, `success == inserted + skipped + duplicates`. A duplicate
(identical row, same key) is a success; rows sharing a key (or, among customers, a phone) with different values
are all rejected. On the second run every valid row is already in the warehouse: `inserted` is 0, `skipped`
equals the first run's `inserted`, `failed` and `duplicates` do not change.

| File | Run | total | success | failed | inserted | skipped | duplicates |
|---|---|---|---|---|---|---|---|
"""

if __name__ == "__main__":
    main()
