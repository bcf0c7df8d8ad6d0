"""Reading a sheet as raw text with Excel row numbers, and the reader's error boundary."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import xlsxwriter
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import CUSTOMER_HEADERS, DATA, ODDFILES, ExcelError, customer
from toolkit.errors import SheetError, UnreadableFileError
from toolkit.read import ROW, _reader_boundary, column_letter, read_grid, sheet_names

Workbook = Callable[..., Path]
VISIBILITIES = ODDFILES / "fastexcel__fixture-sheets-different-visibilities.xlsx"


@pytest.mark.parametrize(("index", "letter"), [(0, "A"), (1, "B"), (25, "Z"), (26, "AA"), (51, "AZ"), (701, "ZZ"), (702, "AAA")])
def test_column_letter(index: int, letter: str) -> None:
    assert column_letter(index) == letter


@given(st.integers(min_value=0, max_value=16_383))  # Excel's last column is XFD
def test_column_letters_count_in_base_26_without_a_zero(index: int) -> None:
    number = 0
    for char in column_letter(index):
        number = number * 26 + ord(char) - ord("A") + 1
    assert number == index + 1


def test_cells_are_raw_text_named_by_letter_and_numbered_by_excel_row(workbook: Workbook) -> None:
    grid = read_grid(workbook([["id", "when", "amount"], [1, dt.date(2020, 1, 15), " 12 "], [], [2.5, "x", True]]))

    assert grid.sheet == "Sheet1"
    assert grid.letters == ["A", "B", "C"]
    assert grid.cells.rows() == [
        (1, "id", "when", "amount"),
        (2, "1", "2020-01-15 00:00:00", " 12 "),
        (3, None, None, None),
        (4, "2.5", "x", "true"),
    ]


def test_a_table_away_from_a1_keeps_absolute_letters_and_row_numbers(workbook: Workbook) -> None:
    grid = read_grid(workbook([["a", "b"], [1, ExcelError("#N/A")]], first_cell=(3, 2)))  # starts at C4

    assert grid.letters == ["C", "D"]
    assert grid.cells.filter(grid.cells[ROW] == 5).row(0) == (5, "1", "#N/A")
    assert grid.cell_errors.rows() == [(5, "D", "#N/A")]


@pytest.mark.parametrize("error", ["#DIV/0!", "#N/A", "#REF!", "#NAME?", "#VALUE!"])
def test_excel_error_cells_come_back_as_their_text_and_are_listed(workbook: Workbook, error: str) -> None:
    grid = read_grid(workbook([["h", "g"], ["ok", ExcelError(error)]]))

    assert grid.cells.row(1) == (2, "ok", error)
    assert grid.cell_errors.rows() == [(2, "B", error)]


def test_a_workbook_without_error_cells_has_an_empty_error_list(workbook: Workbook) -> None:
    assert read_grid(workbook([CUSTOMER_HEADERS, customer()])).cell_errors.is_empty()


def test_a_corpus_file_with_a_formula_error_reports_its_position() -> None:
    grid = read_grid(ODDFILES / "fastexcel__div0.xlsx")

    assert grid.cell_errors.rows() == [(2, "C", "#DIV/0!")]


@pytest.mark.parametrize(
    ("name", "row", "durations"),
    [
        ("fastexcel__dates.ods", (2, "2023-06-01", "2023-06-01T02:03:04+02:00", "PT01H02M03S", "2023-06-01T02:03:04"), {}),
        ("python-calamine__base.ods", None, {"H": "PT10H10M10S", "I": "PT10H10M10.1S", "J": "PT255H10M10S"}),
    ],
)
def test_an_ods_duration_is_read_as_its_iso_text_not_as_an_error(
    name: str, row: tuple[object, ...] | None, durations: dict[str, str]
) -> None:
    grid = read_grid(ODDFILES / name)

    assert grid.cell_errors.is_empty()
    if row is not None:
        assert grid.cells.row(1) == row
    for letter, text in durations.items():
        assert grid.cells[letter].to_list()[-1] == text


# --- sheets -----------------------------------------------------------------------------------


def test_a_sheet_is_chosen_by_name_or_number(workbook: Workbook) -> None:
    path = workbook([["first"]], extra_sheets={"Loans": [["second"]]})

    assert sheet_names(path) == ["Sheet1", "Loans"]
    assert read_grid(path).sheet == "Sheet1"
    assert read_grid(path, sheet="Loans").cells["A"].to_list() == ["second"]
    assert read_grid(path, sheet=1).sheet == "Loans"


def test_a_missing_sheet_is_a_sheet_error_listing_the_sheets(workbook: Workbook) -> None:
    path = workbook([["first"]], name="book.xlsx", extra_sheets={"Loans": [["second"]]})

    with pytest.raises(SheetError, match=r"^book\.xlsx: no sheet named 'Customers' \(sheets: 'Sheet1', 'Loans'\)$"):
        read_grid(path, sheet="Customers")
    with pytest.raises(SheetError, match=r"^book\.xlsx: no sheet number 2 \(sheets: 'Sheet1', 'Loans'\)$"):
        read_grid(path, sheet=2)


def test_hidden_sheets_are_skipped_by_default_but_load_by_name(tmp_path: Path) -> None:
    path = tmp_path / "hidden-first.xlsx"
    book = xlsxwriter.Workbook(str(path))
    hidden, shown = book.add_worksheet("Sheet1"), book.add_worksheet("Shown")
    hidden.write(0, 0, "hidden")
    shown.write(0, 0, "shown")
    shown.activate()  # xlsxwriter will not hide the active sheet
    hidden.hide()
    book.close()

    assert read_grid(path).sheet == "Shown"
    assert read_grid(path, sheet="Sheet1").cells["A"].to_list() == ["hidden"]


@pytest.mark.parametrize(("sheet", "text"), [(None, "visible 1"), ("Hidden", "hidden 1"), ("VeryHidden", "very hidden 1")])
def test_hidden_and_very_hidden_sheets_of_the_corpus_load_only_by_name(sheet: str | None, text: str) -> None:
    grid = read_grid(VISIBILITIES, sheet=sheet)

    assert grid.sheet == (sheet or "Visible")
    assert grid.cells["A"].to_list() == [text]


# --- unreadable files -------------------------------------------------------------------------


def _zero_bytes(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _text(path: Path) -> Path:
    path.write_text("Customer ID,First Name\n1,Asha\n")
    return path


def _truncated(path: Path) -> Path:
    data = (DATA / "customer_data.xlsx").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _random_bytes(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 40)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_zero_bytes, r"^bad\.xlsx: the file is empty \(0 bytes\); it is not a workbook$"),
        (_text, r"^bad\.xlsx: not a readable workbook, or the file is corrupt \(.+\)$"),
        (_truncated, r"^bad\.xlsx: not a readable workbook, or the file is corrupt \(.+\)$"),
        (_random_bytes, r"^bad\.xlsx: .+"),
    ],
)
def test_an_unreadable_file_is_one_clean_line(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    with pytest.raises(UnreadableFileError, match=message) as info:
        read_grid(make(tmp_path / "bad.xlsx"))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("suffix", ["xlsx", "xlsb", "xls", "ods"])
def test_a_password_protected_workbook_says_so(suffix: str) -> None:
    name = f"python-calamine__password.{suffix}"
    with pytest.raises(UnreadableFileError, match=rf"^{name}: the workbook is password-protected; save an unprotected copy"):
        read_grid(ODDFILES / name)


@pytest.mark.parametrize("suffix", ["xlsx", "xlsb", "ods"])
def test_a_zero_byte_workbook_from_the_corpus_is_unreadable(suffix: str) -> None:
    with pytest.raises(UnreadableFileError, match="the file is empty"):
        read_grid(ODDFILES / f"python-calamine__empty_file.{suffix}")


def test_a_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match=r"nope\.xlsx: no such file$"):
        read_grid(tmp_path / "nope.xlsx")


def test_a_workbook_that_unpacks_past_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = shutil.copy(DATA / "customer_data.xlsx", tmp_path / "big.xlsx")

    with pytest.raises(
        UnreadableFileError, match=r"^big\.xlsx: unpacks to .* MiB, over the limit of 0 MiB; .* --max-unpacked-mb N"
    ):
        read_grid(path, max_uncompressed_bytes=1000)
    assert read_grid(path).cells.height > 1


# --- the reader boundary: Rust panics (issue 8.10) --------------------------------------------


class PanicException(BaseException):
    """Stands in for pyo3's PanicException, which derives from BaseException."""


def test_a_reader_panic_becomes_one_line_folding_the_panicked_at_report(capfd: pytest.CaptureFixture[str]) -> None:
    before = os.fstat(2)
    report = (
        b"\nthread '<unnamed>' panicked at calamine/src/xlsx/mod.rs:412:27:\n"
        b"index out of bounds: the len is 3 but the index is 7\n"
        b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"
    )

    with pytest.raises(UnreadableFileError) as info, _reader_boundary(Path("/somewhere/odd.xlsx")):
        os.write(2, report)
        raise PanicException("index out of bounds: the len is 3 but the index is 7")

    assert str(info.value) == (
        "odd.xlsx: the reader crashed on this file; it is probably corrupt (index out of bounds: the len is 3 "
        "but the index is 7; thread '<unnamed>' panicked at calamine/src/xlsx/mod.rs:412:27)"
    )
    assert isinstance(info.value.__cause__, PanicException)
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    os.write(2, b"after the reader\n")
    assert capfd.readouterr().err == "after the reader\n"  # the panic report did not leak; fd 2 works again


def test_a_panic_without_a_report_quotes_the_exception() -> None:
    with pytest.raises(
        UnreadableFileError, match=r"^odd\.xlsx: the reader crashed on this file; it is probably corrupt \(boom\)$"
    ):
        with _reader_boundary(Path("odd.xlsx")):
            raise PanicException("boom")


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3)])
def test_interrupts_pass_through_the_boundary(exc: BaseException) -> None:
    before = os.fstat(2)
    with pytest.raises(type(exc)), _reader_boundary(Path("odd.xlsx")):
        raise exc
    assert os.fstat(2).st_ino == before.st_ino


def test_toolkit_errors_pass_through_the_boundary_unchanged() -> None:
    error = SheetError("book.xlsx: no sheet named 'x'")
    with pytest.raises(SheetError) as info, _reader_boundary(Path("book.xlsx")):
        raise error
    assert info.value is error


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (ValueError("calamine error: Xls error: Workbook is password protected"), "the workbook is password-protected"),
        (
            RuntimeError("calamine error: Zip error: invalid Zip archive"),
            r"not a readable workbook, or the file is corrupt \(Zip error",
        ),
        (OSError("calamine error: something odd\nsecond line"), r"cannot read the workbook \(something odd\)$"),
    ],
)
def test_other_reader_errors_become_one_line(raised: BaseException, message: str) -> None:
    with pytest.raises(UnreadableFileError, match=rf"^odd\.xlsx: {message}"), _reader_boundary(Path("odd.xlsx")):
        raise raised
