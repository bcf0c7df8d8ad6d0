"""Table specs: the built-in TOML files, and a clear SpecError for each kind of bad spec."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import polars as pl
import pytest

from toolkit.errors import SpecError
from toolkit.specs import Column, TableSpec, builtin_specs, load_order, load_spec, load_specs, parse_spec

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
    write_spec(tmp_path, GOOD.replace('"payments"', '"customers"'), name="customers.toml")
    specs = load_specs([tmp_path])

    assert sorted(specs) == ["customers", "loans", "payments"]
    assert specs["customers"].names == ["payment_id", "amount"]


@pytest.mark.parametrize(
    ("column", "sql", "dtype"),
    [
        (Column("a", "A", type="integer"), "BIGINT", pl.Int64()),
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


BAD = [
    (
        "unknown type",
        ('type = "decimal(12, 2)"', 'type = "money"'),
        "column 'amount': unknown type 'money' (use one of integer, ",
    ),
    (
        "rule does not compile",
        ('check = "amount > 0"', 'check = "amount >>> 0 AND"'),
        "rule 'positive': check 'amount >>> 0 AND' does not compile",
    ),
    (
        "rule names an unknown column",
        ('check = "amount > 0"', 'check = "amount > fee"'),
        "rule 'positive': check 'amount > fee' names unknown column(s) fee",
    ),
    (
        "key column not declared",
        ('key = ["payment_id"]', 'key = ["payment_ref"]'),
        "key column 'payment_ref' is not declared in [[columns]]",
    ),
    ("duplicate column", ('name = "amount"', 'name = "payment_id"'), "column names declared twice: payment_id"),
    (
        "unknown setting",
        ("required = true", "required = true\nnullable = false"),
        "column 'payment_id': unknown setting(s) nullable",
    ),
    ("bound not a number", ("greater_than = 0", 'greater_than = "0"'), "column 'amount': greater_than must be a number, got '0'"),
    (
        "unknown normalize",
        ("required = true", 'required = true\nnormalize = "phone_us"'),
        "column 'payment_id': unknown normalize 'phone_us'",
    ),
    (
        "bad table name",
        ('table = "payments"', 'table = "pay ments"'),
        "'table' must be a name of letters, digits and _, got 'pay ments'",
    ),
    (
        "private table name",
        ('table = "payments"', 'table = "_runs"'),
        "'table' must be a name of letters, digits and _, got '_runs'",
    ),
    ("bad column name", ('name = "amount"', 'name = "the amount"'), "column name 'the amount' must be letters, digits and _"),
    ("not TOML", ("[[rules]]", "[[rules]"), "not valid TOML"),
    (
        "foreign key to an unknown table",
        ("[[rules]]", '[[foreign_keys]]\ncolumns = ["payment_id"]\nreferences = "invoices"\n\n[[rules]]'),
        None,
    ),
]


@pytest.mark.parametrize(("old_new", "problem"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_spec_is_a_spec_error_naming_the_file_and_the_problem(
    tmp_path: Path, old_new: tuple[str, str], problem: str | None
) -> None:
    old, new = old_new
    assert old in GOOD
    path = write_spec(tmp_path, GOOD.replace(old, new, 1))

    with pytest.raises(SpecError) as info:
        load_specs([path])
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    assert problem is None or problem in message
    if problem is None:
        assert message == f"{path}: foreign key references unknown table 'invoices'"


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
