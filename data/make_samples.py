"""Generate the sample workbooks customer_data.xlsx and loan_data.xlsx, with documented defects.

Deterministic by construction (fixed seed, fixed workbook dates, no clock) so that tests can assert the exact
ingest summary. Every deliberate defect is placed at a fixed row, listed in README.md (written here, from the
same bookkeeping), counted into expected_summary.json, and the checks each defective row fails (written by hand
below, never computed by the toolkit) go to expected_rules.json. changes/ holds a later delivery of both files,
ingested after them into the same warehouse: the defects only a warehouse can reveal (conflicts, a phone number
owned by another customer) and the rows already present.

    python data/make_samples.py [FOLDER]      # default: this folder
"""

import datetime as dt
import json
import random
import sys
from pathlib import Path
from typing import NamedTuple

import xlsxwriter

HERE = Path(__file__).resolve().parent
N_CUSTOMERS, N_LOANS = 200, 500
SEED = 20261203
# The reference headers; "some copies add Current Debt" (optional in the spec): this sample does, to test it.
CUSTOMER_HEADERS = [
    "Customer ID",
    "First Name",
    "Last Name",
    "Age",
    "Phone Number",
    "Monthly Salary",
    "Approved Limit",
    "Current Debt",
]
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
    kind: str  # "valid" (inserted) | "present" (skipped) | "duplicate" | "rejected" | "blank" (not counted)
    why: str
    column: str
    content: str
    copy_of: dict | None = None
    rules: tuple = ()  # the checks the row fails, by name (column|check, a cross-column rule...)


# Phones written literally by the defect cases below (normalised); clean phones must not collide with them.
LITERAL_PHONES = {"9876543210", "9820112233", "9123456789", "9812345678"}
rng = random.Random()
debt_rng = random.Random()  # its own stream, so adding Current Debt changed no other clean value
used_phones: set = set()
loan_id_pool: list = []


def reset() -> None:
    """Seed every stream afresh: each run (or a second run in one process) writes the same bytes."""
    rng.seed(SEED)
    debt_rng.seed(SEED + 1)
    used_phones.clear()
    used_phones.update(LITERAL_PHONES)
    loan_id_pool[:] = rng.sample(range(1000, 10000), N_LOANS + 80)  # 4-digit ids like the reference, unique


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
        "Approved Limit": (36 * salary + 50_000) // 100_000 * 100_000,  # nearest lakh, half up
        "Current Debt": 0 if debt_rng.random() < 0.3 else round(debt_rng.uniform(0.1, 20) * salary, -2),
    }


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


def case(base: dict, kind: str, why: str, *rules: str, **changes) -> Case:
    """A defect row: `base` with some cells replaced (keyword names use _ for spaces), failing `rules`."""
    assert (kind == "rejected") == bool(rules), (why, rules)
    changes = {k.replace("_", " "): v for k, v in changes.items()}
    row = {**base, **changes}
    content = "; ".join(show(v) for v in changes.values())
    return Case(row, kind, why, ", ".join(changes) or "(all)", content or "a new row", rules=rules)


def again(source: dict, kind: str, why: str, *rules: str) -> Case:
    """An identical copy of an earlier row (a fresh dict: rows are told apart by identity)."""
    return Case(dict(source), kind, why, "(all)", "", source, rules)


def stored(source: dict, kind: str, why: str, where: str) -> Case:
    """A copy of a row of an earlier file (``where``), now in the warehouse."""
    return Case(dict(source), kind, why, "(all)", f"same values as in {where}")


def blank() -> Case:
    return Case({}, "blank", "fully blank row, not counted", "(all)", "every cell empty")


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
            case(new(), "rejected", "customer_id required", "customer_id|required", Customer_ID=None),
            case(new(), "rejected", "customer_id must be a whole number", "customer_id|integer", Customer_ID="abc"),
            case(new(), "rejected", "customer_id must be >= 1", "customer_id|min", Customer_ID=0),
            case(new(), "rejected", "customer_id must be a whole number", "customer_id|integer", Customer_ID=204.5),
            case(text_id, "valid", "number stored as text", Customer_ID=str(text_id["Customer ID"])),
            case(new(), "rejected", "Excel error cell", "customer_id|excel_error", Customer_ID=Err("=NA()", "#N/A")),
            case(new(), "rejected", "first_name required", "first_name|required", First_Name=None),
            case(new(), "rejected", "Excel error cell", "first_name|excel_error", First_Name=Err("=#REF!", "#REF!")),
            case(new(), "rejected", "last_name blank after trimming", "last_name|required", Last_Name="   "),
            case(new(), "rejected", "Excel error cell", "last_name|excel_error", Last_Name=Err('="a"+1', "#VALUE!")),
            case(new(), "valid", "age is optional", Age=None),
            case(new(), "rejected", "age must be 18..100", "age|min", Age=17),
            case(new(), "rejected", "age must be 18..100", "age|max", Age=101),
            case(new(), "rejected", "age must be a whole number", "age|integer", Age="abc"),
            case(new(), "rejected", "age must be a whole number", "age|integer", Age=30.5),
            case(new(), "rejected", "Excel error cell", "age|excel_error", Age=Err("=NA()", "#N/A")),
            case(new(), "rejected", "phone_number required", "phone_number|required", Phone_Number=None),
            case(new(), "rejected", "phone must be 10 digits (9 here)", "phone_number|phone", Phone_Number="987654321"),
            case(new(), "rejected", "phone must be 10 digits (letters)", "phone_number|phone", Phone_Number="98765ABCDE"),
            case(new(), "valid", "phone normalises to 9876543210", Phone_Number="+91 98765-43210"),
            case(new(), "valid", "phone normalises to 9820112233 (leading 0 dropped)", Phone_Number="098-2011-2233"),
            case(new(), "valid", "10-digit phone stored as a number", Phone_Number=9123456789),
            case(
                new(), "rejected", "Excel error cell", "phone_number|excel_error", Phone_Number=Err("=NOSUCHFUNCTION()", "#NAME?")
            ),
            case(
                shared_phone_a,
                "rejected",
                "phone shared with a different customer (1 of 2)",
                "phone_number|unique",
                Phone_Number="9812345678",
            ),
            case(no_salary, "rejected", "Missing Monthly Salary", "monthly_salary|required", Monthly_Salary=None),
            case(new(), "rejected", "monthly_salary must be >= 0", "monthly_salary|min", Monthly_Salary=-5000),
            case(new(), "rejected", "monthly_salary must be a whole number", "monthly_salary|integer", Monthly_Salary=45000.75),
            case(new(), "rejected", "Excel error cell", "monthly_salary|excel_error", Monthly_Salary=Err("=1/0", "#DIV/0!")),
            case(new(), "valid", "number stored as text, trimmed", Monthly_Salary=" 250000 ", Approved_Limit=9_000_000),
            case(
                shared_phone_b,
                "rejected",
                "phone shared with a different customer (2 of 2)",
                "phone_number|unique",
                Phone_Number="9812345678",
            ),
            case(new(), "rejected", "approved_limit required", "approved_limit|required", Approved_Limit=None),
            case(new(), "rejected", "approved_limit must be >= 0", "approved_limit|min", Approved_Limit=-100000),
            case(new(), "rejected", "approved_limit must be a whole number", "approved_limit|integer", Approved_Limit="9 lakh"),
            case(new(), "rejected", "Excel error cell", "approved_limit|excel_error", Approved_Limit=Err("=1/0", "#DIV/0!")),
            case(new(), "valid", "current_debt is optional", Current_Debt=None),
            case(new(), "valid", "number stored as text, trimmed", Current_Debt=" 1500.50 "),
            case(new(), "rejected", "current_debt must be >= 0", "current_debt|min", Current_Debt=-2500),
            case(new(), "rejected", "current_debt must be a number", "current_debt|number", Current_Debt="nil"),
            case(new(), "rejected", "Excel error cell", "current_debt|excel_error", Current_Debt=Err("=NA()", "#N/A")),
            case(
                conflict,
                "rejected",
                "same customer_id, different values (1 of 2)",
                "customer_id|key",
                Monthly_Salary=conflict["Monthly Salary"],
            ),
            again(clean[2], "duplicate", "identical to an earlier row"),
            case(
                conflict,
                "rejected",
                "same customer_id, different values (2 of 2)",
                "customer_id|key",
                Monthly_Salary=conflict["Monthly Salary"] + 5000,
            ),
            blank(),
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
    key_conflict, start_iso, start_time, text_amount, emis_over, end_before, end_time = (loan() for _ in range(7))
    start_iso["End Date"] = add_months(dt.date(2019, 5, 1), start_iso["Tenure"])
    start_time["End Date"] = add_months(dt.date(2018, 3, 4), start_time["Tenure"])
    end_at = dt.datetime.combine(end_time["End Date"], dt.time(17, 45))
    return (
        clean,
        reused,
        [
            case(loan(), "rejected", "customer_id not among customers", "customer_id|foreign_key", Customer_ID=999),
            case(loan(), "rejected", "customer_id required", "customer_id|required", Customer_ID=None),
            case(loan(), "rejected", "customer_id must be a whole number", "customer_id|integer", Customer_ID="C-17"),
            case(loan(), "rejected", "customer_id must be >= 1", "customer_id|min", Customer_ID=-3),
            case(loan(), "rejected", "Excel error cell", "customer_id|excel_error", Customer_ID=Err("=NA()", "#N/A")),
            case(loan(), "rejected", "loan_id required", "loan_id|required", Loan_ID=None),
            case(loan(), "rejected", "loan_id must be >= 1", "loan_id|min", Loan_ID=0),
            case(loan(), "rejected", "loan_id must be a whole number", "loan_id|integer", Loan_ID="L-2041"),
            case(loan(), "rejected", "Excel error cell", "loan_id|excel_error", Loan_ID=Err("=#REF!", "#REF!")),
            case(loan(), "rejected", "loan_amount required", "loan_amount|required", Loan_Amount=None),
            case(loan(), "rejected", "loan_amount must be a number", "loan_amount|number", Loan_Amount="1 lakh"),
            case(loan(), "rejected", "loan_amount must be > 0", "loan_amount|greater_than", Loan_Amount=0),
            case(loan(), "rejected", "Excel error cell", "loan_amount|excel_error", Loan_Amount=Err("=#REF!", "#REF!")),
            case(text_amount, "valid", "number stored as text, trimmed", Loan_Amount=f" {text_amount['Loan Amount']} "),
            case(loan(), "rejected", "tenure required", "tenure|required", Tenure=None),
            case(loan(), "rejected", "tenure must be a whole number", "tenure|integer", Tenure="abc"),
            case(loan(), "rejected", "tenure must be a whole number", "tenure|integer", Tenure=12.5),
            case(loan(), "rejected", "Excel error cell", "tenure|excel_error", Tenure=Err('="a"+1', "#VALUE!")),
            case(loan(), "rejected", "interest_rate required", "interest_rate|required", Interest_Rate=None),
            case(loan(), "rejected", "interest_rate must be a number", "interest_rate|number", Interest_Rate="9.5%"),
            case(loan(), "rejected", "interest_rate must be > 0 and <= 100", "interest_rate|max", Interest_Rate=120),
            case(loan(), "rejected", "interest_rate must be > 0 and <= 100", "interest_rate|greater_than", Interest_Rate=0),
            case(
                loan(),
                "rejected",
                "Excel error cell",
                "interest_rate|excel_error",
                Interest_Rate=Err("=NOSUCHFUNCTION()", "#NAME?"),
            ),
            case(
                key_conflict,
                "rejected",
                "same (customer_id, loan_id), different values (1 of 2)",
                "customer_id+loan_id|key",
                Loan_Amount=key_conflict["Loan Amount"],
            ),
            case(loan(), "rejected", "monthly_repayment required", "monthly_repayment|required", Monthly_payment=None),
            case(loan(), "rejected", "monthly_repayment must be a number", "monthly_repayment|number", Monthly_payment="n/a"),
            case(loan(), "rejected", "monthly_repayment must be > 0", "monthly_repayment|greater_than", Monthly_payment=-1500),
            case(loan(), "rejected", "Excel error cell", "monthly_repayment|excel_error", Monthly_payment=Err("=1/0", "#DIV/0!")),
            case(
                loan(cid=no_salary),
                "rejected",
                "customer_id not in the warehouse: the customer's own row is rejected (Missing Monthly Salary)",
                "customer_id|foreign_key",
                Customer_ID=no_salary,
            ),
            case(
                emis_over,
                "rejected",
                f"emis_paid_on_time must be <= tenure ({emis_over['Tenure']})",
                "emis_within_tenure",
                EMIs_paid_on_Time=emis_over["Tenure"] + 5,
            ),
            case(loan(), "rejected", "emis_paid_on_time must be >= 0", "emis_paid_on_time|min", EMIs_paid_on_Time=-1),
            case(loan(), "rejected", "emis_paid_on_time required", "emis_paid_on_time|required", EMIs_paid_on_Time=None),
            case(
                loan(),
                "rejected",
                "emis_paid_on_time must be a whole number",
                "emis_paid_on_time|integer",
                EMIs_paid_on_Time="all",
            ),
            case(loan(), "rejected", "Excel error cell", "emis_paid_on_time|excel_error", EMIs_paid_on_Time=Err("=NA()", "#N/A")),
            case(start_iso, "valid", "ISO text date", Date_of_Approval="2019-05-01"),
            case(
                start_time,
                "rejected",
                "date with a time of day",
                "start_date|time_of_day",
                Date_of_Approval=dt.datetime(2018, 3, 4, 13, 30),
            ),
            case(loan(), "rejected", "start_date required", "start_date|required", Date_of_Approval=None),
            case(loan(), "rejected", "not an ISO date (day first)", "start_date|date", Date_of_Approval="01/05/2019"),
            case(loan(), "rejected", "Excel error cell", "start_date|excel_error", Date_of_Approval=Err("=#REF!", "#REF!")),
            case(loan(), "rejected", "not a date", "end_date|date", End_Date="31/02/2019"),
            case(end_time, "rejected", "date with a time of day", "end_date|time_of_day", End_Date=end_at),
            case(loan(), "rejected", "Excel error cell", "end_date|excel_error", End_Date=Err('="a"+1', "#VALUE!")),
            case(
                end_before,
                "rejected",
                "end_date must be >= start_date",
                "end_after_start",
                End_Date=add_months(end_before["Date of Approval"], -1),
            ),
            again(clean[1], "duplicate", "identical to an earlier row"),
            case(
                loan(),
                "rejected",
                "two reasons: tenure must be >= 1; end_date required",
                "tenure|min",
                "end_date|required",
                Tenure=0,
                EMIs_paid_on_Time=0,
                End_Date=None,
            ),
            case(
                key_conflict,
                "rejected",
                "same (customer_id, loan_id), different values (2 of 2)",
                "customer_id+loan_id|key",
                Loan_Amount=key_conflict["Loan Amount"] + 100_000,
            ),
            blank(),
        ],
    )


def customer_changes(clean: list) -> tuple:
    """A later delivery of customers, without the optional Current Debt column (not a difference, then)."""
    same, changed, twice, changed_twice, phone_owner = clean[10], clean[11], clean[12], clean[13], clean[14]
    where = "customer_data.xlsx"
    first_twice = stored(twice, "present", "already in the warehouse (1 of 2 identical rows): skipped", where)
    conflict_twice = case(
        changed_twice,
        "rejected",
        "already in the warehouse with another limit (1 of 2 identical rows): a conflict",
        "customer_id|conflict",
        Approved_Limit=changed_twice["Approved Limit"] + 100_000,
    )
    newcomer, thief = customer(901), customer(902)
    cases = [
        stored(same, "present", "already in the warehouse with the same values: skipped", where),
        case(
            changed,
            "rejected",
            "already in the warehouse with another salary: a conflict",
            "customer_id|conflict",
            Monthly_Salary=changed["Monthly Salary"] + 1000,
        ),
        first_twice,
        again(first_twice.row, "duplicate", "already in the warehouse (2 of 2 identical rows): a duplicate"),
        conflict_twice,
        again(
            conflict_twice.row, "rejected", "identical to a row rejected as a conflict: rejected with it", "customer_id|conflict"
        ),
        case(
            thief,
            "rejected",
            f"new customer with the phone of customer {phone_owner['Customer ID']}, in the warehouse",
            "phone_number|unique",
            Phone_Number=phone_owner["Phone Number"],
        ),
        case(newcomer, "valid", "new customer"),
    ]
    return [(c.row, c) for c in cases], newcomer["Customer ID"], thief["Customer ID"]


def loan_changes(clean: list, newcomer: int, thief: int) -> list:
    """A later delivery of loans: rows already present, a changed rate, loans of the new customers."""
    same, changed = clean[20], clean[21]
    cases = [
        stored(same, "present", "already in the warehouse with the same values: skipped", "loan_data.xlsx"),
        case(
            changed,
            "rejected",
            "already in the warehouse with another rate: a conflict",
            "customer_id+loan_id|conflict",
            Interest_Rate=round(changed["Interest Rate"] + 1.25, 2),
        ),
        case(loan(), "valid", "new loan of a customer in the warehouse"),
        case(loan(cid=newcomer), "valid", "loan of the customer new in customer_changes.xlsx"),
        case(
            loan(cid=thief),
            "rejected",
            "loan of the customer rejected in customer_changes.xlsx (phone clash): no parent",
            "customer_id|foreign_key",
        ),
    ]
    return [(c.row, c) for c in cases]


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
    """The summary of a file's first run: clean rows and "valid" cases are inserted, "present" ones skipped."""
    kinds = [c.kind if c else "valid" for _, c in rows]
    total, failed = len(kinds) - kinds.count("blank"), kinds.count("rejected")
    return {
        "total": total,
        "success": total - failed,
        "failed": failed,
        "inserted": kinds.count("valid"),
        "skipped": kinds.count("present"),
        "duplicates": kinds.count("duplicate"),
    }


def excel_rows(rows: list) -> dict:
    """Excel row of each row dict (by identity): index + 2 (header is row 1); blank rows count too."""
    return {id(row): i + 2 for i, (row, _) in enumerate(rows)}


def expected_rules(rows: list) -> dict:
    """{Excel row: the checks it fails} for every rejected row, in the order the cases name them."""
    at = excel_rows(rows)
    return {str(at[id(row)]): list(c.rules) for row, c in rows if c and c.rules}


def table(rows: list, key_columns: list, reused: list) -> list:
    """README table, one line per planted row, with the checks it fails."""
    excel_row = excel_rows(rows)

    def key(row: dict) -> list:
        shown = {type(None): lambda _: "—", str: lambda v: f'"{v}"', Err: lambda v: v.value}
        return [shown.get(type(v), lambda v: v)(v) for v in map(row.get, key_columns)]

    lines = [
        (
            excel_row[id(row)],
            *key(row),
            c.column,
            f"identical copy of row {excel_row[id(c.copy_of)]}" if c.copy_of else c.content,
            f"{c.kind}: {c.why}",
            ", ".join(f"`{r}`".replace("|", "\\|") for r in c.rules) or "—",  # a bare | would end the cell
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
            "—",
        )
        for row, src in reused
    ]
    return [
        f"| Excel row | {' | '.join(key_columns)} | Column | Cell content | Expected outcome | Checks failed |",
        "|---" * (5 + len(key_columns)) + "|",
        *("| " + " | ".join(map(str, ln)) + " |" for ln in sorted(lines)),
    ]


def summary_lines(name: str, s: dict, runs: tuple) -> list:
    """README summary rows; a second run of the same file skips what the first inserted."""
    counts = [s["total"], s["success"], s["failed"]]
    lines = []
    for run in runs:
        inserted, skipped = (s["inserted"], s["skipped"]) if run != "second" else (0, s["inserted"] + s["skipped"])
        lines.append(f"| {name} | {run} | {' | '.join(map(str, counts + [inserted, skipped, s['duplicates']]))} |")
    return lines


def write_folder(folder: Path, books: dict) -> dict:
    """Write each book and the folder's expected_summary.json and expected_rules.json; return the summaries."""
    folder.mkdir(parents=True, exist_ok=True)
    summaries, rules = {}, {}
    for name, (headers, rows, _, _) in books.items():
        write_book(folder / name, headers, rows)
        summaries[name] = summarise(rows)
        rules[name] = expected_rules(rows)
    (folder / "expected_summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
    (folder / "expected_rules.json").write_text(json.dumps(rules, indent=2) + "\n")
    return summaries


def main(out: Path = HERE) -> None:
    reset()
    clean_customers, no_salary, customer_cases = customers()
    clean_loans, reused, loan_cases = loans(no_salary)
    changed_customers, newcomer, thief = customer_changes(clean_customers)
    books = {
        "customer_data.xlsx": (CUSTOMER_HEADERS, place(clean_customers, customer_cases, 5), ["Customer ID"], []),
        "loan_data.xlsx": (LOAN_HEADERS, place(clean_loans, loan_cases, 11), LOAN_HEADERS[:2], reused),
    }
    changes = {
        "customer_changes.xlsx": (CUSTOMER_HEADERS[:-1], changed_customers, ["Customer ID"], []),
        "loan_changes.xlsx": (LOAN_HEADERS, loan_changes(clean_loans, newcomer, thief), LOAN_HEADERS[:2], []),
    }
    expected = write_folder(out, books)
    expected_changes = write_folder(out / "changes", changes)
    readme = [README_HEAD]
    for prefix, group in (("", books), ("changes/", changes)):
        for name, (_, rows, key_columns, reused_ids) in group.items():
            readme += [f"## {prefix}{name}", "", *table(rows, key_columns, reused_ids), ""]
    summary = [line for name, s in expected.items() for line in summary_lines(name, s, ("first", "second"))]
    summary += [line for name, s in expected_changes.items() for line in summary_lines(f"changes/{name}", s, ("then",))]
    (out / "README.md").write_text("\n".join(readme) + README_TAIL + "\n".join(summary) + "\n")
    print(json.dumps({**expected, **expected_changes}, indent=2))


README_HEAD = """# Sample workbooks

`customer_data.xlsx` and `loan_data.xlsx` mimic the reference data (`../shared/data/credit-approval/`): same
headers in the same order (the customers add the optional `Current Debt`, as some copies do), sheet `Sheet1`,
real Excel dates. They hold 200 clean customers and 500 clean loans plus deliberate defects at fixed rows.
`changes/` holds a later delivery of both, ingested after them into the same warehouse: rows already present,
and the defects only the warehouse reveals (a changed row is a conflict, a phone number owned by another
customer). Together they fail **every check the built-in specs define** at least once (`column|check`, the
cross-column rules, key, unique, conflict, foreign key); `tests/test_sample_data.py` asserts it, and that each
row listed below fails exactly the checks it names. Regenerate (deterministic: fixed seeds, fixed workbook
dates, byte-identical output):

    python data/make_samples.py [FOLDER]     # default: data/

This file, `expected_summary.json` and `expected_rules.json` (in this folder and in `changes/`) are written by
that script: edit the script, not them. Rows not listed below are clean and valid. "Expected outcome" says why
in words; "Checks failed" names the checks, as in the summary's `errors[].rule`.
"""

README_TAIL = """## Expected summary

`python -m toolkit ingest data/customer_data.xlsx data/loan_data.xlsx --db w.duckdb`, first on a fresh
warehouse, then again on the same one (the first run is also in `expected_summary.json`); then
`python -m toolkit ingest data/changes/customer_changes.xlsx data/changes/loan_changes.xlsx --db w.duckdb`
(in `changes/expected_summary.json`). `total` counts non-blank data rows; `total == success + failed`,
`success == inserted + skipped + duplicates`. A duplicate (identical row, same key) is a success; rows sharing a
key (or, among customers, a phone) with different values are all rejected. On the second run every valid row is
already in the warehouse: `inserted` is 0, `skipped` equals the first run's `inserted`, `failed` and
`duplicates` do not change.

| File | Run | total | success | failed | inserted | skipped | duplicates |
|---|---|---|---|---|---|---|---|
"""

if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
