"""Table specs: the built-in TOML files, and a clear SpecError for each kind of bad spec."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import polars as pl
import pytest

from toolkit.errors import SpecError
from toolkit.specs import Column, TableSpec, builtin_specs, load_order, load_queue, load_spec, load_specs, parse_spec

GOOD = """
table = "payments"
key = ["payment_id"]

[[columns]]
name = "payment_id"
header = "Payment ID"
type = "integer"
required = true

[[columns]]
name = "amount"
header = "Amount"
type = "decimal(12, 2)"
greater_than = 0

[[columns]]
name = "note"
header = "Note"
type = "text"

[[rules]]
name = "positive"
check = "amount > 0"
"""


def write_spec(folder: Path, text: str, name: str = "payments.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_builtin_specs_load_with_their_keys_and_rules() -> None:
    specs = builtin_specs()

    assert sorted(specs) == ["customers", "loans"]
    customers, loans = specs["customers"], specs["loans"]
    assert customers.key == ("customer_id",)
    assert loans.key == ("customer_id", "loan_id")
    assert customers.unique_columns == ["phone_number"]
    assert [r.name for r in loans.rules] == ["emis_within_tenure", "end_after_start"]
    assert [(fk.columns, fk.references) for fk in loans.foreign_keys] == [(("customer_id",), "customers")]
    assert customers.column("phone_number").normalize == "phone_in"
    assert loans.column("start_date").aliases == ("Start Date", "Approval Date")
    assert Path(customers.source).name == "customers.toml"
    assert repr(loans).startswith("<TableSpec loans (customer_id, loan_id, loan_amount, ") and repr(loans).endswith(
        "key=(customer_id, loan_id)>"
    )


def test_a_user_spec_loads_beside_the_builtin_ones(tmp_path: Path) -> None:
    specs = load_specs([write_spec(tmp_path, GOOD)])

    assert sorted(specs) == ["customers", "loans", "payments"]
    amount = specs["payments"].column("amount")
    assert (amount.sql_type, amount.polars_type) == ("DECIMAL(12,2)", pl.Decimal(12, 2))
    assert amount.header == "Amount" and amount.greater_than == 0


def test_a_folder_of_specs_loads_and_a_later_spec_replaces_a_builtin_one(tmp_path: Path) -> None:
    write_spec(tmp_path, GOOD)
    # loans' foreign key names customers.customer_id: the replacement must keep that column
    write_spec(tmp_path, GOOD.replace('"payments"', '"customers"').replace("payment_id", "customer_id"), name="customers.toml")
    specs = load_specs([tmp_path])

    assert sorted(specs) == ["customers", "loans", "payments"]
    assert specs["customers"].names == ["customer_id", "amount", "note"]


@pytest.mark.parametrize(
    ("column", "sql", "dtype"),
    [
        (Column("a", "A", type="integer"), "BIGINT", pl.Int64()),
        (Column("a", "A", type="integer32"), "INTEGER", pl.Int32()),
        (Column("a", "A", type="number"), "DOUBLE", pl.Float64()),
        (Column("a", "A"), "VARCHAR", pl.String()),
        (Column("a", "A", type="date"), "DATE", pl.Date()),
        (Column("a", "A", type="datetime"), "TIMESTAMP", pl.Datetime("us")),
        (Column("a", "A", type="boolean"), "BOOLEAN", pl.Boolean()),
        (Column("a", "A", type="decimal(18,4)"), "DECIMAL(18,4)", pl.Decimal(18, 4)),
    ],
)
def test_column_types_map_to_duckdb_and_polars_types(column: Column, sql: str, dtype: pl.DataType) -> None:
    assert (column.sql_type, column.polars_type) == (sql, dtype)


FOREIGN_KEY = '[[foreign_keys]]\ncolumns = ["payment_id"]\nreferences = "{table}"\n{extra}\n[[rules]]'
# (case, (text replaced, replacement), what the message says, the line it names)
BAD = [
    (
        "unknown type",
        ('type = "decimal(12, 2)"', 'type = "money"'),
        "column 'amount': unknown type 'money' (use one of integer, ",
        14,
    ),
    (
        "rule does not compile",
        ('check = "amount > 0"', 'check = "amount >>> 0 AND"'),
        "rule 'positive': check 'amount >>> 0 AND' does not compile",
        24,
    ),
    (
        "rule names an unknown column",
        ('check = "amount > 0"', 'check = "amount > fee"'),
        "rule 'positive': check 'amount > fee' names unknown column(s) fee",
        24,
    ),
    (
        "rule compares a number with text",
        ('check = "amount > 0"', "check = \"payment_id > 'abc'\""),
        "rule 'positive': check \"payment_id > 'abc'\" does not fit the column types: cannot compare string with numeric",
        24,
    ),
    (
        "rule does arithmetic on text",
        ('check = "amount > 0"', 'check = "note + 1 > 0"'),
        "rule 'positive': check 'note + 1 > 0' does not fit the column types: arithmetic on dtypes str",
        24,
    ),
    (
        "rule is not true/false",
        ('check = "amount > 0"', 'check = "payment_id"'),
        "rule 'positive': check 'payment_id' gives Int64, not true/false; write a comparison such as 'payment_id > 0'",
        24,
    ),
    ("key column not declared", ('key = ["payment_id"]', 'key = ["payment_ref"]'), "key column 'payment_ref' is not declared", 3),
    ("key not a list", ('key = ["payment_id"]', 'key = "payment_id"'), "'key' must be a list of column names", 3),
    ("duplicate column", ('name = "amount"', 'name = "payment_id"'), "column names declared twice: payment_id", 12),
    (
        "unknown setting",
        ("required = true", "required = true\nnullable = false"),
        "column 'payment_id': unknown setting(s) nullable",
        10,
    ),
    (
        "unknown top-level setting",
        ('key = ["payment_id"]', 'keys = ["payment_id"]'),
        "unknown setting(s) keys (a spec has table,",
        3,
    ),
    (
        "required as text",
        ("required = true", 'required = "false"'),
        "column 'payment_id': required must be true or false (without quotes), got 'false'",
        9,
    ),
    (
        "unique as text",
        ('type = "text"', 'type = "text"\nunique = "no"'),
        "column 'note': unique must be true or false (without quotes), got 'no'",
        21,
    ),
    (
        "bound not a number",
        ("greater_than = 0", 'greater_than = "0"'),
        "column 'amount': greater_than must be a number, got '0'",
        15,
    ),
    ("bound on text", ('type = "text"', 'type = "text"\nmin = 1'), "column 'note': min applies to number columns, not text", 21),
    (
        "decimal too wide",
        ('type = "decimal(12, 2)"', 'type = "decimal(50,2)"'),
        "decimal(50,2) is not a valid decimal: the precision",
        14,
    ),
    (
        "decimal scale over precision",
        ('type = "decimal(12, 2)"', 'type = "decimal(2,5)"'),
        "decimal(2,5) is not a valid decimal",
        14,
    ),
    ("decimal of no digits", ('type = "decimal(12, 2)"', 'type = "decimal(0,0)"'), "decimal(0,0) is not a valid decimal", 14),
    ("unknown normalize", ("required = true", 'required = true\nnormalize = "phone_us"'), "unknown normalize 'phone_us'", 10),
    ("normalize on a number", ("required = true", 'required = true\nnormalize = "phone_in"'), "applies to text columns", 10),
    (
        "bad table name",
        ('table = "payments"', 'table = "pay ments"'),
        "'table' must be a name of letters, digits and _, got 'pay ",
        2,
    ),
    (
        "private table name",
        ('table = "payments"', 'table = "_runs"'),
        "'table' must be a name of letters, digits and _, got '_runs'",
        2,
    ),
    ("bad column name", ('name = "amount"', 'name = "the amount"'), "column name 'the amount' must be letters, digits and _", 12),
    ("not TOML", ("[[rules]]", "[[rules]"), "not valid TOML", 22),
    (
        "foreign key to an unknown table",
        ("[[rules]]", FOREIGN_KEY.format(table="invoices", extra="")),
        "foreign key references unknown table 'invoices'",
        22,
    ),
    (
        "foreign key to columns the parent lacks",
        ("[[rules]]", FOREIGN_KEY.format(table="customers", extra='ref_columns = ["id"]\n')),
        "foreign key to 'customers' names ref_columns 'id' that spec ",
        22,
    ),
]


@pytest.mark.parametrize(("old_new", "problem", "line"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_spec_is_a_spec_error_naming_the_file_the_line_and_the_problem(
    tmp_path: Path, old_new: tuple[str, str], problem: str, line: int
) -> None:
    old, new = old_new
    assert old in GOOD
    path = write_spec(tmp_path, GOOD.replace(old, new, 1))

    with pytest.raises(SpecError) as info:
        load_specs([path])
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ")
    assert "\n" not in message
    assert problem in message


def test_the_good_spec_those_cases_break_loads(tmp_path: Path) -> None:
    assert load_specs([write_spec(tmp_path, GOOD)])["payments"].names == ["payment_id", "amount", "note"]


def test_line_numbers_follow_the_entry_they_belong_to(tmp_path: Path) -> None:
    # The third [[columns]] entry's type, not the first "type =" line of the file.
    text = GOOD.replace('type = "text"', 'type = "txt"')
    with pytest.raises(SpecError, match=rf"^{re.escape(str(tmp_path))}/payments\.toml:20: column 'note': unknown type 'txt'"):
        load_spec(write_spec(tmp_path, text))
    # A multi-line string holding "type = ..." does not shift or fake positions.
    text = GOOD.replace('header = "Amount"', 'header = """Amount\ntype = "money"\n"""').replace('type = "text"', 'type = "txt"')
    with pytest.raises(SpecError, match=r"payments\.toml:22: column 'note'"):
        load_spec(write_spec(tmp_path, text))


def test_a_spec_without_its_text_names_the_source_only() -> None:
    data = {"table": "t", "columns": [{"name": "a", "required": "yes"}]}
    with pytest.raises(SpecError, match=r"^inline: column 'a': required must be true or false"):
        parse_spec(data, source="inline")


def test_rule_columns_are_the_columns_a_failed_check_is_about() -> None:
    loans = builtin_specs()["loans"]
    assert loans.rule_columns("end_after_start") == ("end_date", "start_date")
    assert loans.rule_columns("customer_id+loan_id|key") == ("customer_id", "loan_id")
    assert loans.rule_columns("customer_id+loan_id|conflict") == ("customer_id", "loan_id")
    assert loans.rule_columns("tenure|integer") == ("tenure",)
    assert loans.rule_columns("no_such_rule") == ()


def test_a_missing_spec_file_or_an_empty_folder_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=rf"^{re.escape(str(tmp_path / 'nope.toml'))}: cannot read spec file"):
        load_spec(tmp_path / "nope.toml")
    with pytest.raises(SpecError, match=r"folder holds no \*\.toml spec files"):
        load_specs([tmp_path])


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"table": "t"}, "needs at least one [[columns]] entry"),
        ({"table": "t", "key": ["a"], "columns": [{"header": "A"}]}, "each [[columns]] entry needs a 'name'"),
        ({"table": "t", "key": ["a"], "columns": [{"name": "a"}], "rules": [{"name": "r"}]}, "needs a 'name' and a 'check'"),
        ({"table": "t", "key": ["a"], "columns": [{"name": "a"}], "foreign_keys": [{"columns": ["a"]}]}, "needs 'columns' and"),
        (
            {"table": "t", "key": ["a"], "columns": [{"name": "a"}], "foreign_keys": [{"columns": ["b"], "references": "u"}]},
            "foreign key to 'u': columns ['b'] do not fit this table",
        ),
    ],
)
def test_parse_spec_names_the_source_and_the_problem(data: dict[str, object], problem: str) -> None:
    with pytest.raises(SpecError, match=rf"^inline: .*{re.escape(problem)}"):
        parse_spec(data, source="inline")


def test_load_order_puts_parents_before_children() -> None:
    specs = builtin_specs()

    assert load_order(["loans", "customers"], specs) == ["customers", "loans"]
    assert load_order(["customers", "loans", "loans"], specs) == ["customers", "loans"]
    assert load_order(["loans"], specs) == ["loans"]


def test_load_queue_puts_files_of_parent_tables_first_then_keeps_their_positions() -> None:
    tables = {0: "loans", 2: "customers", 3: "loans", 5: "customers"}
    assert load_queue(tables, builtin_specs()) == [2, 5, 0, 3]


def test_load_order_keeps_the_given_order_for_a_cycle(tmp_path: Path) -> None:
    def table(name: str, parent: str) -> TableSpec:
        data = {
            "table": name,
            "key": ["id"],
            "columns": [{"name": "id"}],
            "foreign_keys": [{"columns": ["id"], "references": parent}],
        }
        return parse_spec(data)

    specs = {"a": table("a", "b"), "b": table("b", "a"), "c": table("c", "c")}

    assert load_order(["c", "b", "a"], specs) == ["c", "b", "a"]
