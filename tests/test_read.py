"""Reading a sheet as raw text with Excel row numbers, and the reader's error boundary."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import threading
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CUSTOMER_HEADERS, DATA, ExcelError, corpus, customer, hidden_first_workbook, write_workbook
from toolkit import read, xlsx
from toolkit.errors import SheetError, UnreadableFileError
from toolkit.match import map_sheet
from toolkit.read import (
    ROW,
    Background,
    _duration_text,
    _reader_boundary,
    as_text,
    column_letter,
    open_sheet,
    read_grid,
    read_rows,
    sheet_names,
)
from toolkit.specs import parse_spec
from toolkit.validate import validate

Workbook = Callable[..., Path]
VISIBILITIES = "fastexcel__fixture-sheets-different-visibilities.xlsx"


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


def test_below_a_row_are_the_rows_after_it_with_their_cell_errors(workbook: Workbook) -> None:
    grid = read_grid(workbook([[ExcelError("#N/A"), "g"], ["a", 1], ["x", ExcelError("#DIV/0!")]]))

    below = grid.below(1)

    assert (below.path, below.sheet) == (grid.path, grid.sheet)
    assert below.cells.rows() == [(2, "a", "1"), (3, "x", "#DIV/0!")]
    assert below.cell_errors.rows() == [(3, "B", "#DIV/0!")]


def test_a_workbook_without_error_cells_has_an_empty_error_list(workbook: Workbook) -> None:
    assert read_grid(workbook([CUSTOMER_HEADERS, customer()])).cell_errors.is_empty()


def test_a_corpus_file_with_a_formula_error_reports_its_position() -> None:
    grid = read_grid(corpus("fastexcel__div0.xlsx"))

    assert grid.cell_errors.rows() == [(2, "C", "#DIV/0!")]


@pytest.mark.parametrize(
    ("name", "row", "durations"),
    [
        ("fastexcel__dates.ods", (2, "2023-06-01", "2023-06-01T02:03:04+02:00", "1:02:03", "2023-06-01T02:03:04"), {}),
        ("python-calamine__base.ods", None, {"H": "10:10:10", "I": "10:10:10.1", "J": "255:10:10"}),
    ],
)
def test_an_ods_duration_is_read_as_hours_minutes_seconds_not_as_an_error(
    name: str, row: tuple[object, ...] | None, durations: dict[str, str]
) -> None:
    grid = read_grid(corpus(name))

    assert grid.cell_errors.is_empty()
    if row is not None:
        assert grid.cells.row(1) == row
    for letter, text in durations.items():
        assert grid.cells[letter].to_list()[-1] == text


@pytest.mark.parametrize(
    ("iso", "text"),
    [("PT01H02M03S", "1:02:03"), ("P1DT2H", "26:00:00"), ("-PT30M", "-0:30:00"), ("PT0.25S", "0:00:00.25"), ("P1Y", "P1Y")],
)
def test_iso_durations_read_as_the_typed_read_shows_them(iso: str, text: str) -> None:
    assert _duration_text(iso) == text


_DURATIONS = [
    (1.5, "36:00:00"),
    (1 / 86400, "0:00:01"),
    (1 / 3, "8:00:00"),
    (100.123456789, "2402:57:46.667"),
    (2.0000001, "48:00:00.009"),
]


def _duration_book(path: Path, *, with_text: bool) -> Path:
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    elapsed = book.add_format({"num_format": "[h]:mm:ss"})
    sheet.write_row(0, 0, ["spent"])
    for row, (days, _) in enumerate(_DURATIONS, start=1):
        sheet.write_number(row, 0, days, elapsed)
    if with_text:
        sheet.write_string(len(_DURATIONS) + 1, 0, "later")  # a column the typed read cannot take: read as text
    book.close()
    return path


def test_an_xlsx_duration_cell_reads_the_same_in_the_typed_and_the_text_read(tmp_path: Path) -> None:
    # The text read shows a duration as a date-time on Excel's day zero (36 hours: 1900-01-01 12:00:00).
    typed = read_rows(open_sheet(_duration_book(tmp_path / "typed.xlsx", with_text=False)), header_row=1)
    mixed = _duration_book(tmp_path / "mixed.xlsx", with_text=True)
    expected = [text for _, text in _DURATIONS]

    assert typed.cells.schema["A"] == pl.Duration("ms")
    assert typed.cells.select(as_text(pl.col("A"), typed.cells.schema["A"]))["A"].to_list() == expected
    assert read_rows(open_sheet(mixed), header_row=1).cells["A"].to_list() == [*expected, "later"]
    assert read_grid(mixed).cells["A"].to_list() == ["spent", *expected, "later"]


# --- sheets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["xls", "xlsb", "ods", "xlsx"])
def test_every_format_reads_text_numbers_booleans_and_dates_as_the_same_text(suffix: str) -> None:
    path = corpus(f"python-calamine__base.{suffix}")
    if not path.exists():
        pytest.skip(f"corpus file {path} is not available (../shared/data/oddfiles)")

    grid = read_grid(path)

    assert (grid.sheet, grid.letters) == ("Sheet1", list("ABCDEFGHIJ"))
    [values] = grid.cells.filter(pl.col(ROW) == 2).select("A", "B", "C", "D", "E").rows()
    assert values == ("String", "1", "1.1", "true", "false")
    # a date cell: xls, xlsb and xlsx hold a serial number (read as a midnight date-time), ods an ISO date
    assert grid.cells.filter(pl.col(ROW) == 2)["F"].item() in {"2010-10-10 00:00:00", "2010-10-10"}


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
    hidden_first_workbook(path)

    assert read_grid(path).sheet == "Shown"
    assert read_grid(path, sheet="Sheet1").cells["A"].to_list() == ["hidden"]


def test_the_sheets_loaded_to_find_the_first_visible_one_are_loaded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[object] = []

    class Counting:
        def __init__(self, reader: Any) -> None:
            self.sheet_names = reader.sheet_names
            self._reader = reader

        def load_sheet(self, which: object, **options: object) -> Any:
            loads.append(which)
            return self._reader.load_sheet(which, **options)

    real = read._open
    monkeypatch.setattr(read, "_open", lambda path: Counting(real(path)))

    assert read_grid(hidden_first_workbook(tmp_path / "hidden-first.xlsx")).cells["A"].to_list() == ["shown"]
    assert loads == [0, 1]


@pytest.mark.parametrize(("sheet", "text"), [(None, "visible 1"), ("Hidden", "hidden 1"), ("VeryHidden", "very hidden 1")])
def test_hidden_and_very_hidden_sheets_of_the_corpus_load_only_by_name(sheet: str | None, text: str) -> None:
    grid = read_grid(corpus(VISIBILITIES), sheet=sheet)

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
        read_grid(corpus(name))


@pytest.mark.parametrize("suffix", ["xlsx", "xlsb", "ods"])
def test_a_zero_byte_workbook_from_the_corpus_is_unreadable(suffix: str) -> None:
    with pytest.raises(UnreadableFileError, match="the file is empty"):
        read_grid(corpus(f"python-calamine__empty_file.{suffix}"))


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


# --- the typed read: open_sheet + read_rows ---------------------------------------------------


def _rows(path: Path, header_row: int = 1, **options: object) -> pl.DataFrame:
    return read_rows(open_sheet(path, **options), header_row=header_row).cells  # type: ignore[arg-type]


def test_xlsx_heads_come_from_the_sheet_xml_and_other_formats_from_the_text_read(workbook: Workbook) -> None:
    quick = open_sheet(workbook([["h"], [1]]))
    slow = open_sheet(corpus("python-calamine__base.ods"))

    assert (quick.part, quick.whole) == ("xl/worksheets/sheet1.xml", False)
    assert quick.head.cells.rows() == [(1, "h"), (2, "1")]
    assert (slow.part, slow.whole) == (None, True)


def test_opening_an_xlsx_sheet_lists_the_workbooks_sheets_once(workbook: Workbook, monkeypatch: pytest.MonkeyPatch) -> None:
    # The size check finds the sheet it judges; the head is read from that same part.
    listed: list[object] = []
    real = xlsx.sheets
    monkeypatch.setattr(xlsx, "sheets", lambda source: listed.append(source) or real(source))

    sheet = open_sheet(workbook([["first"]], extra_sheets={"loans": [["h"], [1]]}), prefer_sheet="loans")

    assert (sheet.name, sheet.part, len(listed)) == ("loans", "xl/worksheets/sheet2.xml", 1)


def test_a_column_of_one_kind_of_cell_keeps_its_type_and_exact_values(workbook: Workbook) -> None:
    rows = [["n", "d", "b", "t"], [1 / 3, dt.date(2020, 1, 15), True, "x"], [2.0, dt.date(2020, 1, 16), False, "y"]]
    cells = _rows(workbook(rows))

    assert cells.schema == {ROW: pl.Int64, "A": pl.Float64, "B": pl.Datetime("ms"), "C": pl.Boolean, "D": pl.String}
    assert cells.rows() == [
        (2, 1 / 3, dt.datetime(2020, 1, 15), True, "x"),
        (3, 2.0, dt.datetime(2020, 1, 16), False, "y"),
    ]


def test_the_text_read_rounds_what_the_typed_read_keeps(workbook: Workbook) -> None:
    path = workbook([["n"], [3.14159265358979], [1 / 3]])

    assert read_grid(path).cells["A"].to_list()[1:] == ["3.141592654", "0.333333333"]
    assert _rows(path)["A"].to_list() == [3.14159265358979, 1 / 3]


def test_a_column_mixing_kinds_is_text(workbook: Workbook) -> None:
    cells = _rows(workbook([["m"], [12], ["twelve"], [dt.date(2020, 1, 15)]]))

    assert cells.schema["A"] == pl.String
    assert cells["A"].to_list() == ["12", "twelve", "2020-01-15 00:00:00"]


def test_a_boolean_among_numbers_comes_back_as_its_text_not_as_one(workbook: Workbook) -> None:
    # fastexcel's type guess would read TRUE as 1.0 in a column of numbers: the scan finds it.
    cells = _rows(workbook([["amount"], [1.5], [True], [1 / 3], [False]]))

    assert cells["A"].to_list() == ["1.5", "true", "0.3333333333333333", "false"]


def test_error_cells_in_a_typed_column_come_back_as_their_text_and_are_listed(workbook: Workbook) -> None:
    path = workbook([["n", "m"], [1.5, 2.5], [ExcelError("#DIV/0!"), 3.5], [4.25, ExcelError("#N/A")]])
    grid = read_rows(open_sheet(path), header_row=1)

    assert grid.cells.rows() == [(2, "1.5", "2.5"), (3, "#DIV/0!", "3.5"), (4, "4.25", "#N/A")]
    assert sorted(grid.cell_errors.rows()) == [(3, "A", "#DIV/0!"), (4, "B", "#N/A")]


def test_row_numbers_stay_the_excel_ones_for_a_table_away_from_a1_with_blank_rows(workbook: Workbook) -> None:
    path = workbook([["a", "b"], [1, "x"], [None, None], [2, "y"]], first_cell=(3, 2))  # header on C4

    cells = _rows(path, header_row=4)

    assert cells.rows() == [(5, 1.0, "x"), (6, None, None), (7, 2.0, "y")]
    assert list(cells.columns) == [ROW, "C", "D"]


@pytest.mark.parametrize(
    "cell",
    [ExcelError("#NAME?")],  # fastexcel's type guess raises on #NAME? cells
)
def test_cells_the_type_guess_cannot_take_fall_back_to_the_text_read(workbook: Workbook, cell: object) -> None:
    grid = read_rows(open_sheet(workbook([["n"], [1.5], [cell]])), header_row=1)

    assert grid.cells.rows() == [(2, "1.5"), (3, "#NAME?")]
    assert grid.cell_errors.rows() == [(3, "A", "#NAME?")]


def test_a_fall_back_the_type_guess_forces_does_not_wait_for_the_boolean_scan(
    workbook: Workbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, finished = threading.Event(), threading.Event()

    def slow_scan(path: str, part: str, tally: object = None) -> dict[str, list[int]]:
        release.wait(timeout=5)  # long enough to notice a wait, short enough not to hang the suite
        finished.set()
        return {}

    monkeypatch.setattr(xlsx, "boolean_cells", slow_scan)
    sheet = open_sheet(workbook([["n"], [1.5], [ExcelError("#NAME?")]]))

    assert read_rows(sheet, header_row=1).cells.rows() == [(2, "1.5"), (3, "#NAME?")]
    assert not finished.is_set()
    release.set()


def test_work_in_the_background_gives_its_value_or_raises_its_error_when_asked() -> None:
    def fail() -> None:
        raise UnreadableFileError("x.xlsx: cannot read the file")

    assert Background(lambda a, b: a + b, 2, 3, name="adding").result() == 5
    with pytest.raises(UnreadableFileError, match="cannot read the file"):
        Background(fail, name="failing").result()


def test_work_in_the_background_holds_no_one_back_who_does_not_ask_for_it() -> None:
    release = threading.Event()
    started = Background(release.wait, 5, name="waiting")  # a daemon thread: exit does not wait either

    assert started._thread.daemon and started._thread.is_alive()
    release.set()
    assert started.result() is True


def test_a_head_that_disagrees_with_fastexcel_falls_back_to_the_text_read(workbook: Workbook) -> None:
    path = workbook([["n"], [1 / 3]])
    sheet = open_sheet(path)
    other_header = sheet.head.cells.with_columns(A=pl.lit("other"))
    wrong = dataclasses.replace(sheet, head=dataclasses.replace(sheet.head, cells=other_header))

    assert read_rows(wrong, header_row=1).cells.rows() == [(2, "0.3333333333333333")]  # text: the text read, its number in full


def test_a_scan_that_cannot_place_a_boolean_falls_back_to_the_text_read(
    workbook: Workbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xlsx, "boolean_cells", lambda path, part, tally=None: None)

    assert _rows(workbook([["n"], [1 / 3]])).rows() == [(2, "0.3333333333333333")]  # text: the text read, its number in full


def _p(value: object) -> str:
    return f"<text:p>{value}</text:p>"


def _write_ods(path: Path, rows: list[list[object]]) -> Path:
    """A minimal OpenDocument spreadsheet (xlsxwriter writes no .ods): floats, booleans, text."""

    def cell(value: object) -> str:
        if value is None:
            return "<table:table-cell/>"
        if isinstance(value, bool):
            flag = "true" if value else "false"
            return f'<table:table-cell office:value-type="boolean" office:boolean-value="{flag}">{_p(flag)}</table:table-cell>'
        if isinstance(value, float):
            return f'<table:table-cell office:value-type="float" office:value="{value!r}">{_p(value)}</table:table-cell>'
        return f'<table:table-cell office:value-type="string">{_p(value)}</table:table-cell>'

    body = "".join("<table:table-row>" + "".join(cell(v) for v in row) + "</table:table-row>" for row in rows)
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f'<office:body><office:spreadsheet><table:table table:name="Sheet1">{body}</table:table>'
        "</office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>'
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/manifest.xml", manifest)
        archive.writestr("content.xml", content)
    return path


@pytest.mark.parametrize("suffix", ["xlsx", "ods"])
def test_a_file_is_checked_once_when_read_rows_falls_back_to_the_text_read(
    tmp_path: Path, workbook: Workbook, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    path = workbook([["n"], [1 / 3]]) if suffix == "xlsx" else _write_ods(tmp_path / "book.ods", [["n"], [1 / 3]])
    checked: list[Path] = []
    real = read.refuse_oversized
    monkeypatch.setattr(read, "refuse_oversized", lambda path, **caps: checked.append(path) or real(path, **caps))
    monkeypatch.setattr(xlsx, "boolean_cells", lambda path, part, tally=None: None)  # the xlsx typed read gives up
    monkeypatch.setattr(read, "_text_booleans", lambda sheet: None)  # and so does the ods one

    rows = read_rows(open_sheet(path), header_row=1).cells.rows()
    assert rows == [(2, "0.3333333333333333")]  # text: the text read, its number in full
    assert checked == [path]


def test_other_formats_are_typed_too_with_their_booleans_found_in_the_text_read(tmp_path: Path) -> None:
    path = _write_ods(tmp_path / "book.ods", [["exact", "flagged"], [1 / 3, 1.5], [2.0, True], [None, 2.5]])
    sheet = open_sheet(path)

    cells = read_rows(sheet, header_row=1).cells

    assert sheet.whole and sheet.part is None
    assert read_grid(path).cells["A"].to_list()[1:] == ["0.333333333", "2", None]
    assert cells.rows() == [(2, 1 / 3, "1.5"), (3, 2.0, "true"), (4, None, "2.5")]


_ROUNDED_BY_FASTEXCEL = [(1 / 3, "0.3333333333333333"), (1e-10, "1e-10"), (2 / 3 + 10, "10.66666666666667"), (0.5, "0.5")]
_TEXTS = ["later", "+3", "1e3", "0.333333333", "0"]


def _numbers_and_texts(path: Path, *, name_error: bool) -> Path:
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["n", "note"])
    for row, (number, _) in enumerate(_ROUNDED_BY_FASTEXCEL, start=1):
        sheet.write_number(row, 0, number)
        sheet.write_string(row, 1, "ok")
    for row, text in enumerate(_TEXTS, start=len(_ROUNDED_BY_FASTEXCEL) + 1):
        sheet.write_string(row, 0, text)
    if name_error:  # a cell the type guess cannot take: the sheet goes through the text read
        sheet.write_formula(1, 1, "=NOSUCH()", None, "#NAME?")
    book.close()
    return path


@pytest.mark.parametrize("name_error", [False, True], ids=["typed read", "text read"])
def test_numbers_in_a_column_with_text_keep_every_digit_and_the_texts_stay_as_typed(tmp_path: Path, name_error: bool) -> None:
    # fastexcel shows such numbers rounded to nine decimals: 0.333333333, and 1e-10 as 0.
    path = _numbers_and_texts(tmp_path / "mixed.xlsx", name_error=name_error)

    cells = read_rows(open_sheet(path), header_row=1).cells

    assert cells["A"].to_list() == [text for _, text in _ROUNDED_BY_FASTEXCEL] + _TEXTS
    assert read_grid(path).cells["A"].to_list()[1:3] == ["0.333333333", "0"]  # what the plain text read shows


@pytest.mark.parametrize("text_read", [False, True], ids=["typed read", "text read"])
def test_numbers_keep_every_digit_in_a_table_that_starts_away_from_a1(
    workbook: Workbook, monkeypatch: pytest.MonkeyPatch, text_read: bool
) -> None:
    path = workbook([["n", "note"], [1 / 3, "x"], ["later", "y"]], first_cell=(2, 2))
    if text_read:
        monkeypatch.setattr(xlsx, "boolean_cells", lambda path, part, tally=None: None)  # the typed read gives up

    cells = read_rows(open_sheet(path), header_row=3).cells

    assert cells.select(ROW, "C").rows() == [(4, "0.3333333333333333"), (5, "later")]


def test_the_text_read_gives_every_number_the_text_the_typed_read_gives_it(
    workbook: Workbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rounded to nine decimals, 0.1000000000001 would read as 0.1: a column of two decimals would take it.
    path = workbook([["n"], [0.1000000000001], [2]])
    typed = read_rows(open_sheet(path), header_row=1).cells
    monkeypatch.setattr(xlsx, "boolean_cells", lambda path, part, tally=None: None)  # the typed read gives up

    text = read_rows(open_sheet(path), header_row=1).cells

    assert text.schema["A"] == pl.String
    assert text["A"].to_list() == typed.select(as_text(pl.col("A"), typed.schema["A"]))["A"].to_list()
    assert text["A"].to_list() == ["0.1000000000001", "2"]


def test_a_column_with_text_whose_numbers_cannot_have_been_rounded_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_workbook(tmp_path / "plain.xlsx", [["n"], [12], [2.5], ["later"]])
    opened = open_sheet(path)
    reads = []
    real_open = read._open

    def counting(at: Path) -> Any:
        reads.append(at)
        return real_open(at)

    monkeypatch.setattr(read, "_open", counting)

    assert read_rows(opened, header_row=1).cells["A"].to_list() == ["12", "2.5", "later"]
    assert len(reads) == 1


# A differential property: on sheets of every kind of cell, validation through the typed read
# judges every row exactly as validation through the text read does (same accepted rows, same
# failed checks). Numbers have at most 9 decimals, which the text read keeps exactly.
_CELLS = st.one_of(
    st.none(),
    st.integers(min_value=-(10**9), max_value=10**9),
    st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False).map(float),
    st.sampled_from(["12", " 12 ", "abc", "", "  ", "2020-01-15", "12.5", "9876543210", "+91 98765 43210"]),
    st.booleans(),
    st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2030, 1, 1)),
    st.just(dt.datetime(2020, 1, 15, 13, 30)),
    st.sampled_from([ExcelError("#DIV/0!"), ExcelError("#N/A")]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(columns=st.lists(st.lists(_CELLS, min_size=6, max_size=6), min_size=4, max_size=4))
def test_typed_and_text_reads_judge_every_row_alike(tmp_path_factory: pytest.TempPathFactory, columns: list[list[Any]]) -> None:
    spec = parse_spec(
        tomllib.loads(
            """
        table = "things"
        key = []
        [[columns]]
        name = "whole"
        header = "Whole"
        type = "integer"
        [[columns]]
        name = "amount"
        header = "Amount"
        type = "number"
        [[columns]]
        name = "day"
        header = "Day"
        type = "date"
        [[columns]]
        name = "phone"
        header = "Phone"
        type = "text"
        normalize = "phone_in"
        """
        )
    )
    rows = [["Whole", "Amount", "Day", "Phone"], *(list(row) for row in zip(*columns, strict=True))]
    path = write_workbook(tmp_path_factory.mktemp("diff") / "sheet.xlsx", rows)

    typed = validate(map_sheet(open_sheet(path), {"things": spec}))
    text = validate(map_sheet(read_grid(path), {"things": spec}))

    assert typed.accepted.sort(ROW).rows() == text.accepted.sort(ROW).rows()
    assert typed.errors.select("row", "column", "rule").sort("row", "rule").rows() == text.errors.select(
        "row", "column", "rule"
    ).sort("row", "rule").rows()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.timedelta(hours=1, minutes=2, seconds=3), "1:02:03"),
        (dt.timedelta(hours=30, milliseconds=100), "30:00:00.100"),
        (dt.datetime(2020, 1, 15, 13, 30, 15, 500000), "2020-01-15 13:30:15.500"),
        (dt.datetime(2020, 1, 15), "2020-01-15 00:00:00"),
        (12.0, "12"),
        (1 / 3, "0.3333333333333333"),
        (True, "true"),
    ],
)
def test_typed_cells_read_as_text_the_way_the_sheet_shows_them(value: object, text: str) -> None:
    frame = pl.DataFrame({"c": [value, None]})

    assert frame.select(as_text(pl.col("c"), frame.schema["c"])).to_series().to_list() == [text, None]
