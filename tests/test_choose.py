"""The one rule for which sheet a read takes (the size check and both reads follow it)."""

from __future__ import annotations

import pytest

from toolkit.choose import choose_sheet
from toolkit.errors import SheetError

NAMES = ["Cover", "customers", "loans"]
STATES = ["hidden", "visible", "visible"]


def choose(sheet: str | int | None, prefer_sheet: str | None = None, states: list[str] = STATES) -> int:
    return choose_sheet("book.xlsx", NAMES, states.__getitem__, sheet=sheet, prefer_sheet=prefer_sheet)


@pytest.mark.parametrize(
    ("sheet", "prefer_sheet", "index"),
    [
        (None, None, 1),  # the first visible sheet
        (None, "loans", 2),  # the sheet named after the table
        (None, "other", 1),  # no sheet of that name: the first visible one
        ("customers", "loans", 1),  # a sheet asked for wins
        (0, "loans", 0),  # by number, hidden or not
        ("Cover", None, 0),  # by name, hidden or not
    ],
)
def test_the_sheet_asked_for_else_the_tables_else_the_first_visible(
    sheet: str | int | None, prefer_sheet: str | None, index: int
) -> None:
    assert choose(sheet, prefer_sheet) == index


def test_visibility_is_asked_in_order_and_no_further_than_the_first_visible_sheet() -> None:
    asked: list[int] = []

    def state(index: int) -> str:
        asked.append(index)
        return STATES[index]

    assert choose_sheet("book.xlsx", NAMES, state, sheet=None) == 1
    assert asked == [0, 1]
    choose_sheet("book.xlsx", NAMES, state, sheet="loans", prefer_sheet="customers")
    assert asked == [0, 1]


@pytest.mark.parametrize(
    ("names", "sheet", "message"),
    [
        ([], None, r"^book\.xlsx: the workbook has no sheets$"),
        (NAMES, "Customers", r"^book\.xlsx: no sheet named 'Customers' \(sheets: 'Cover', 'customers', 'loans'\)$"),
        (NAMES, 3, r"^book\.xlsx: no sheet number 3 \(sheets: 'Cover', 'customers', 'loans'\)$"),
        (NAMES, -1, r"^book\.xlsx: no sheet number -1 "),
        (NAMES, None, r"^book\.xlsx: every sheet is hidden; name one with --sheet \(sheets: 'Cover', 'customers', 'loans'\)$"),
    ],
)
def test_a_sheet_that_cannot_be_chosen_is_a_sheet_error_listing_the_sheets(
    names: list[str], sheet: str | int | None, message: str
) -> None:
    with pytest.raises(SheetError, match=message):
        choose_sheet("book.xlsx", names, lambda index: "hidden", sheet=sheet)
