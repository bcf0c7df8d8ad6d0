"""toolkit.halves cuts a large sheet in two; toolkit.read reads the halves in two processes and joins
them only where that gives exactly what reading the whole sheet gives."""

from __future__ import annotations

import datetime as dt
import errno
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tests.conftest import ODDFILES, ExcelError, rewrite_member, write_workbook
from toolkit import halves, read
from toolkit.errors import ToolkitError
from toolkit.read import Grid

PART = "xl/worksheets/sheet1.xml"
HEADER = ["Name", "Amount", "When"]


def sheet_rows(count: int, *, first: int = 0) -> list[list[Any]]:
    return [[f"n{i}", i * 1.5, dt.date(2020, 1, 1) + dt.timedelta(days=i)] for i in range(first, first + count)]


@pytest.fixture
def any_size_in_halves(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every .xlsx sheet counts as large enough to be read in halves, on any machine."""
    monkeypatch.setattr(halves, "SPLIT_FROM_BYTES", 0)
    monkeypatch.setattr(read, "_usable_cores", lambda: 2)


def whole_read(path: Path, header_row: int = 1) -> Grid:
    return read.read_rows(read.open_sheet(path), header_row=header_row, processes=1)


def halves_in_this_process(path: Path, header_row: int = 1) -> Grid | None:
    """What read_rows' two processes join, both halves read here (no helper process to start)."""
    sheet = read.open_sheet(path)
    assert sheet.part is not None
    with tempfile.TemporaryDirectory() as folder:
        cut = halves.cut(path, sheet.part, header_row=header_row, folder=Path(folder))
        if cut is None:
            return None
        first = read.read_half(sheet, cut.first, header_row, header_row, False)
        second = read.read_half(sheet, cut.second, cut.cut_row - 1, header_row, True)
        if first is None or second is None:
            return None
        return read._joined(first, second, header_row=header_row, cut=cut)


def assert_same_grid(found: Grid, expected: Grid) -> None:
    assert_frame_equal(found.cells, expected.cells)
    assert_frame_equal(found.cell_errors, expected.cell_errors)


def cut_before(path: Path, row: int) -> float:
    """The share of the sheet's XML before row ``row``'s tag: where to look for the cut to cut there."""
    with zipfile.ZipFile(path) as archive:
        xml = archive.read(PART)
    return (xml.index(f'<row r="{row}"'.encode()) - 1) / len(xml)


def test_the_cut_writes_two_workbooks_whose_rows_keep_their_excel_numbers(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "book.xlsx", [HEADER, *sheet_rows(200)], extra_sheets={"Other": [["x"], [1]]})

    cut = halves.cut(path, PART, header_row=1, folder=tmp_path)

    assert cut is not None and 80 < cut.cut_row < 160  # near the middle, past it
    whole = read.read_grid(path).cells
    first, second = read.read_grid(cut.first).cells, read.read_grid(cut.second).cells
    assert_frame_equal(first, whole.filter(pl.col(read.ROW) < cut.cut_row))
    assert second.filter(pl.col(read.ROW) == cut.cut_row - 1).drop(read.ROW).row(0) == tuple(HEADER)
    assert_frame_equal(second.filter(pl.col(read.ROW) >= cut.cut_row), whole.filter(pl.col(read.ROW) >= cut.cut_row))
    with zipfile.ZipFile(cut.second) as written:  # the rows above the header are not there to be parsed
        numbers = [int(n) for n in re.findall(rb'<row r="(\d+)"', written.read(PART))]
    assert numbers[:2] == [cut.cut_row - 1, cut.cut_row]
    with zipfile.ZipFile(path) as original:
        for half in (cut.first, cut.second):
            with zipfile.ZipFile(half) as written:
                assert written.testzip() is None  # every member's CRC holds
                assert written.namelist() == original.namelist()
                for info in original.infolist():
                    if info.filename != PART:  # copied as they were, compressed as they were
                        assert written.read(info.filename) == original.read(info.filename)
                        assert written.getinfo(info.filename).compress_type == info.compress_type
                assert b"<dimension" not in written.read(PART)


def _without_row_numbers(xml: bytes) -> bytes:
    return re.sub(rb'(<row\b[^>]*?)\sr="\d+"', rb"\1", xml)


@pytest.mark.parametrize(
    ("change", "header_row"),
    [
        (lambda xml: xml.replace(b"<sheetData>", b"<x:sheetData>").replace(b"</sheetData>", b"</x:sheetData>"), 1),
        (_without_row_numbers, 1),
        (lambda xml: xml, 7),  # no such header row
        (lambda xml: re.sub(rb'(<row r="1"[^>]*>).*?(</row>)', rb'\1<c r="A1" s="1"/>\2', xml, count=1, flags=re.S), 1),
    ],
    ids=["tags with a namespace prefix", "rows without their numbers", "no header row there", "a header row without a value"],
)
def test_a_sheet_the_cut_cannot_be_sure_of_is_not_cut(tmp_path: Path, change: Any, header_row: int) -> None:
    rows = [HEADER, *sheet_rows(5), [], *sheet_rows(100, first=5)]  # row 7 is empty
    path = rewrite_member(write_workbook(tmp_path / "book.xlsx", rows), PART, change)

    assert halves.cut(path, PART, header_row=header_row, folder=tmp_path) is None


def test_a_sheet_with_no_row_below_its_header_past_the_middle_is_not_cut(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "book.xlsx", [HEADER, ["only", 1, None]])

    assert halves.cut(path, PART, header_row=1, folder=tmp_path) is None


def test_no_room_in_the_temporary_folder_means_the_sheet_is_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_workbook(tmp_path / "book.xlsx", [HEADER, *sheet_rows(100)])

    def full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(halves._StoredZip, "write", full)

    assert halves.cut(path, PART, header_row=1, folder=tmp_path) is None


def test_a_header_row_away_from_the_top_is_carried_over_with_the_title_above_it_in_the_first_half(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "book.xlsx", [["Loans of 2020"], [], HEADER, *sheet_rows(120)])

    joined = halves_in_this_process(path, header_row=3)

    assert joined is not None
    assert_same_grid(joined, whole_read(path, header_row=3))


@pytest.mark.parametrize("data_above", [True, False], ids=["data, then empty rows, then the cut", "only empty rows above it"])
def test_empty_rows_just_above_the_cut_are_rows_of_the_read_as_in_the_whole_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_above: bool
) -> None:
    above = sheet_rows(40) if data_above else []
    rows = [HEADER, *above, *[[]] * 15, *sheet_rows(60, first=40)]
    path = write_workbook(tmp_path / "book.xlsx", rows)
    after_gap = 2 + len(above) + 15
    monkeypatch.setattr(halves, "_CUT_AT", cut_before(path, after_gap))
    cut = halves.cut(path, PART, header_row=1, folder=tmp_path)
    assert cut is not None and cut.cut_row == after_gap  # the first half ends before the empty rows

    joined = halves_in_this_process(path)

    assert joined is not None
    empty = joined.cells.filter(pl.col(read.ROW).is_between(after_gap - 15, after_gap - 1))
    assert empty.height == 15 and empty.drop(read.ROW).null_count().row(0) == (15, 15, 15)
    assert_same_grid(joined, whole_read(path))


def test_halves_that_type_a_column_differently_are_not_joined(tmp_path: Path) -> None:
    rows = [HEADER, *sheet_rows(60), *sheet_rows(60, first=60)]
    rows[100][1] = "about 150"  # a text among the second half's amounts: that half reads them as text
    path = write_workbook(tmp_path / "book.xlsx", rows)

    assert halves_in_this_process(path) is None


@pytest.mark.parametrize(("zeros", "joined"), [((), True), ((5,), False), ((5, 100), True)], ids=["none", "first half", "both"])
def test_a_text_column_whose_numbers_one_half_only_looks_at_again_is_not_joined(
    tmp_path: Path, zeros: tuple[int, ...], joined: bool
) -> None:
    # A zero shown as text may be a number rounded to nothing: its column's numbers are read again,
    # in the whole read for every row, so the halves must both have done it, or neither.
    rows = [HEADER, *sheet_rows(120)]
    rows[1][1] = 7.5  # no zero but those placed
    rows[10][1] = rows[110][1] = "about 15"  # text in both halves: the amounts read as text in both
    for row in zeros:
        rows[row][1] = 0

    found = halves_in_this_process(write_workbook(tmp_path / "book.xlsx", rows))

    assert (found is not None) == joined
    if found is not None:
        assert_same_grid(found, whole_read(tmp_path / "book.xlsx"))


def _moved(path: Path, cell: str, to: str) -> Path:
    """The workbook with the cell reference ``cell`` (in its own row) changed to ``to``, the same length."""
    assert len(cell) == len(to)
    return rewrite_member(path, PART, lambda xml: xml.replace(f'<c r="{cell}"'.encode(), f'<c r="{to}"'.encode(), 1))


@pytest.mark.parametrize("half", ["second", "first"])
def test_a_cell_whose_reference_contradicts_its_row_across_the_cut_is_not_lost(tmp_path: Path, half: str) -> None:
    # A crafted file: the cell sits in one row's element but names another row, across the cut.
    # Read where its reference puts it, it lands above the second half's header (where fastexcel
    # does not look) or below the first half's rows; only the whole read places it.
    rows = [HEADER, *sheet_rows(120)]
    path = write_workbook(tmp_path / "book.xlsx", rows)
    cut = halves.cut(path, PART, header_row=1, folder=tmp_path)
    assert cut is not None and 20 < cut.cut_row < 99  # two-digit rows on both sides
    above, below = 15, cut.cut_row + 10
    rows[above - 1][1] = rows[below - 1][1] = None  # the cell's new place is free in both cases
    if half == "second":
        rows[below - 1][1] = 42.0
    else:
        rows[above - 1][1] = 42.0
    path = write_workbook(tmp_path / "book.xlsx", rows)
    path = _moved(path, f"B{below}", f"B{above}") if half == "second" else _moved(path, f"B{above}", f"B{below}")
    again = halves.cut(path, PART, header_row=1, folder=tmp_path)
    assert again is not None and again.cut_row == cut.cut_row

    assert halves_in_this_process(path) is None
    whole = whole_read(path)
    assert whole.cells.filter(pl.col(read.ROW) == (above if half == "second" else below))["B"].to_list() == [42.0]


def test_a_column_empty_in_one_half_takes_the_other_halfs_type(tmp_path: Path) -> None:
    rows = [[*HEADER, "Note"], *sheet_rows(60), *[[*row, 2.5] for row in sheet_rows(60, first=60)]]
    path = write_workbook(tmp_path / "book.xlsx", rows)

    joined = halves_in_this_process(path)

    assert joined is not None and joined.cells.schema["D"] == pl.Float64
    assert_same_grid(joined, whole_read(path))


def test_a_large_sheet_is_read_by_two_processes_as_the_whole_read_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, any_size_in_halves: None
) -> None:
    rows = [HEADER, *sheet_rows(300)]
    rows[20][1] = True  # Excel row 21: a boolean among numbers, in each half
    rows[250][1] = False
    rows[30][1] = ExcelError("#DIV/0!")
    rows[260][2] = ExcelError("#N/A")
    path = write_workbook(tmp_path / "book.xlsx", rows)
    joined: list[Grid | None] = []
    join = read._joined
    monkeypatch.setattr(read, "_joined", lambda *args, **kwargs: joined.append(join(*args, **kwargs)) or joined[-1])

    found = read.read_rows(read.open_sheet(path), header_row=1)

    assert len(joined) == 1 and joined[0] is not None  # read in halves, not fallen back
    assert_same_grid(found, whole_read(path))
    assert found.cells.filter(pl.col(read.ROW).is_in([21, 251]))["B"].to_list() == ["true", "false"]
    assert found.cell_errors.rows() == [(31, "B", "#DIV/0!"), (261, "C", "#N/A")]


def test_a_half_its_reader_fails_on_falls_back_to_the_whole_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, any_size_in_halves: None
) -> None:
    path = write_workbook(tmp_path / "book.xlsx", [HEADER, *sheet_rows(100)])
    cut = halves.cut

    def broken_second(*args: Any, **kwargs: Any) -> halves.Halves | None:
        found = cut(*args, **kwargs)
        assert found is not None
        found.second.write_bytes(b"not a workbook")  # the helper process's reader fails on it
        return found

    monkeypatch.setattr(halves, "cut", broken_second)

    assert_same_grid(read.read_rows(read.open_sheet(path), header_row=1), whole_read(path))


def test_no_helper_process_to_be_had_means_the_sheet_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, any_size_in_halves: None
) -> None:
    path = write_workbook(tmp_path / "book.xlsx", [HEADER, *sheet_rows(100)])

    def no_process(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(read, "Pool", no_process)

    assert_same_grid(read.read_rows(read.open_sheet(path), header_row=1), whole_read(path))


def test_one_process_or_a_small_sheet_starts_no_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_workbook(tmp_path / "book.xlsx", [HEADER, *sheet_rows(100)])

    def no_pool(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a helper process was started")

    monkeypatch.setattr(read, "Pool", no_pool)
    sheet = read.open_sheet(path)
    read.read_rows(sheet, header_row=1, processes=1)
    read.read_rows(sheet, header_row=1)  # 2, but far below halves.SPLIT_FROM_BYTES
    monkeypatch.setattr(halves, "SPLIT_FROM_BYTES", 0)
    monkeypatch.setattr(read, "_usable_cores", lambda: 1)
    read.read_rows(sheet, header_row=1)  # one core: nothing to gain


def test_the_number_of_read_processes_is_one_or_two(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "book.xlsx", [HEADER, *sheet_rows(3)])

    with pytest.raises(ValueError, match="processes must be 1 or 2, got 3"):
        read.read_rows(read.open_sheet(path), header_row=1, processes=3)


CELLS = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.integers(-(10**6), 10**6),
    st.sampled_from(["text", "+3", "0.333333333", "0", " ", "TRUE"]),
    st.booleans(),
    st.dates(min_value=dt.date(1950, 1, 1), max_value=dt.date(2050, 1, 1)),
    st.sampled_from([ExcelError("#DIV/0!"), ExcelError("#N/A")]),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.lists(st.sampled_from(["number", "date", "mixed", "boolean"]), min_size=1, max_size=3),
    cells=st.lists(CELLS, min_size=20, max_size=20),
    count=st.integers(10, 60),
    where=st.lists(st.integers(0, 10**6), min_size=20, max_size=20),
)
def test_halves_that_are_joined_give_exactly_the_whole_read(
    kinds: list[str], cells: list[object], count: int, where: list[int]
) -> None:
    typical = {"number": lambda i: i * 0.25, "date": lambda i: dt.date(2021, 1, 1) + dt.timedelta(days=i), "mixed": str}
    typical["boolean"] = lambda i: i % 2 == 0
    rows: list[list[Any]] = [[f"c{i}" for i in range(len(kinds))]]
    rows += [[typical[kind](i) for kind in kinds] for i in range(count)]
    for value, place in zip(cells, where, strict=True):  # odd cells anywhere, in either half
        rows[1 + place % count][place % len(kinds)] = value
    with tempfile.TemporaryDirectory() as folder:
        path = write_workbook(Path(folder) / "book.xlsx", rows)
        joined = halves_in_this_process(path)
        event("joined" if joined is not None else "read whole")
        if joined is not None:
            assert_same_grid(joined, whole_read(path))


XLSX_CORPUS = sorted(p for p in ODDFILES.glob("*") if p.suffix.lower() in (".xlsx", ".xlsm")) if ODDFILES.is_dir() else []


@pytest.mark.skipif(not XLSX_CORPUS, reason="../shared/data/oddfiles is not beside this clone")
@pytest.mark.parametrize("path", XLSX_CORPUS, ids=[p.name for p in XLSX_CORPUS])
def test_odd_files_read_in_halves_give_the_whole_read_or_are_read_whole(path: Path) -> None:
    try:
        sheet = read.open_sheet(path)
        cells = sheet.head.cells
        letters = sheet.head.letters
        filled = cells.filter(pl.any_horizontal(pl.col(c).str.strip_chars() != "" for c in letters)) if letters else cells.clear()
        header_row = int(filled[read.ROW][0]) if filled.height else 1  # a header row holds a value
        whole = read.read_rows(sheet, header_row=header_row, processes=1) if filled.height else None
    except ToolkitError:
        return  # refused or unreadable before any read in halves (test_oddfiles pins how)
    if sheet.part is None or whole is None:
        return  # not read from the sheet's XML: never cut
    joined = halves_in_this_process(path, header_row)
    if joined is not None:
        assert_same_grid(joined, whole)
