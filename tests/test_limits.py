"""toolkit.limits: zip bombs and oversized sheets are refused before the reader parses them."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import toolkit
from tests.conftest import CUSTOMER_HEADERS, ODDFILES, customer, declare_size, hidden_first_workbook, rewrite_member
from toolkit.errors import UnreadableFileError
from toolkit.limits import dimension_cells, refuse_oversized
from toolkit.read import open_sheet, read_grid

Workbook = Callable[..., Path]
SHEET = "xl/worksheets/sheet1.xml"
EXCEL_ROWS = 1_048_576


def with_dimension(path: Path, ref: str | None, member: str = SHEET) -> Path:
    """The workbook with its sheet's <dimension> replaced by ``ref`` (None: removed)."""
    new = b"" if ref is None else f'<dimension ref="{ref}"/>'.encode()
    return rewrite_member(path, member, lambda xml: re.sub(rb"<dimension [^>]*/>", new, xml, count=1))


@pytest.mark.parametrize(
    ("ref", "cells"),
    [("A1:C10", 30), ("B2", 1), ("$A$1:$T$1048576", EXCEL_ROWS * 20), ("C4:A1", 12), ("nonsense", None), ("A1:B2:C3", None)],
)
def test_dimension_cells_counts_the_range(ref: str, cells: int | None) -> None:
    assert dimension_cells(ref) == cells


def test_a_dimension_declaring_a_billion_cells_is_refused_before_parsing(workbook: Workbook, db: Path) -> None:
    path = with_dimension(workbook([CUSTOMER_HEADERS, customer(1)], name="bomb.xlsx"), "A1:CV10000000")

    with pytest.raises(
        UnreadableFileError,
        match=r"^bomb\.xlsx, sheet 'Sheet1': 1,000,000,000 cells \(dimension A1:CV10000000\), over the limit of "
        r"50,000,000 cells; if the file is trusted, raise it with --max-cells N \(max_cells in Python\)$",
    ):
        toolkit.ingest(path, db=db)
    assert not db.exists()
    with pytest.raises(UnreadableFileError, match="1,000,000,000 cells"):
        toolkit.prepare(path)


def test_a_full_height_sheet_of_20_columns_passes_the_defaults(workbook: Workbook) -> None:
    # Excel's own limit, declared by the dimension and by a sheet part of a realistic size.
    path = with_dimension(workbook([CUSTOMER_HEADERS, customer(1)], name="tall.xlsx"), "A1:T1048576")
    declare_size(path, SHEET, EXCEL_ROWS * 20 * 32)

    refuse_oversized(path, sheet=None)
    assert read_grid(path).cells.height == 2


def test_many_real_cells_over_a_low_cap_are_refused_and_a_higher_cap_lets_them_in(workbook: Workbook, db: Path) -> None:
    path = workbook([CUSTOMER_HEADERS, *(customer(i) for i in range(1, 101))], name="many.xlsx")  # 7 x 101 cells

    with pytest.raises(
        UnreadableFileError, match=r"^many\.xlsx, sheet 'Sheet1': 707 cells \(dimension A1:G101\), over the limit of 500"
    ):
        toolkit.ingest(path, db=db, max_cells=500)
    assert not db.exists()
    assert toolkit.ingest(path, db=db, max_cells=1000).inserted == 100


def test_without_a_dimension_the_sheet_parts_size_still_caps_the_cells(workbook: Workbook) -> None:
    path = with_dimension(workbook([CUSTOMER_HEADERS, *(customer(i) for i in range(1, 101))], name="nodim.xlsx"), None)

    with pytest.raises(
        UnreadableFileError, match=r"^nodim\.xlsx, sheet 'Sheet1': about [\d,]+ cells \(from \d+ KiB of sheet data\)"
    ):
        read_grid(path, max_cells=50)
    assert read_grid(path, max_cells=5000).cells.height == 101


def test_a_dimension_that_understates_the_sheet_is_caught_by_the_parts_size(workbook: Workbook) -> None:
    path = with_dimension(workbook([["a"], ["b"]], name="liar.xlsx"), "A1")
    declare_size(path, SHEET, 200 * 1024**2)

    with pytest.raises(UnreadableFileError, match=r"about 6,553,600 cells \(from 200 MiB of sheet data\)"):
        read_grid(path, max_cells=1_000_000)


def test_the_sheet_that_will_be_read_is_judged_not_another(workbook: Workbook) -> None:
    path = workbook([["small"]], name="two.xlsx", extra_sheets={"Big": [["big"]]})
    with_dimension(path, "A1:CV10000000", member="xl/worksheets/sheet2.xml")

    assert read_grid(path).sheet == "Sheet1"
    with pytest.raises(UnreadableFileError, match=r"^two\.xlsx, sheet 'Big': 1,000,000,000 cells"):
        read_grid(path, sheet="Big")
    with pytest.raises(UnreadableFileError, match=r"sheet 'Big'"):
        read_grid(path, sheet=1)


def test_the_sheet_named_after_the_table_is_judged_when_it_is_the_one_read(workbook: Workbook) -> None:
    # ingest --table loans reads the sheet named loans (prefer_sheet): that sheet is the one judged.
    path = workbook([["small"]], name="fixit.xlsx", extra_sheets={"loans": [["big"]]})
    with_dimension(path, "A1:CV10000000", member="xl/worksheets/sheet2.xml")

    assert read_grid(path, prefer_sheet="other").sheet == "Sheet1"
    with pytest.raises(UnreadableFileError, match=r"^fixit\.xlsx, sheet 'loans': 1,000,000,000 cells"):
        read_grid(path, prefer_sheet="loans")
    with pytest.raises(UnreadableFileError, match=r"^fixit\.xlsx, sheet 'loans': 1,000,000,000 cells"):
        open_sheet(path, prefer_sheet="loans")
    assert open_sheet(path, sheet="Sheet1", prefer_sheet="loans").name == "Sheet1"  # --sheet still wins


def test_a_hidden_first_sheet_is_not_judged_when_the_first_visible_one_is_read(tmp_path: Path) -> None:
    path = tmp_path / "hidden.xlsx"
    hidden_first_workbook(path)
    with_dimension(path, "A1:CV10000000")

    assert read_grid(path).sheet == "Shown"
    with pytest.raises(UnreadableFileError, match="sheet 'Sheet1': 1,000,000,000 cells"):
        read_grid(path, sheet="Sheet1")


def test_a_zip_declaring_gigabytes_unpacked_is_refused_with_the_defaults(workbook: Workbook) -> None:
    path = workbook([["a"]], name="zip-bomb.xlsx")
    declare_size(path, SHEET, 0xFFFF0000)
    declare_size(path, "xl/styles.xml", 0xFFFF0000)

    with pytest.raises(
        UnreadableFileError,
        match=r"^zip-bomb\.xlsx: unpacks to 8,192 MiB, over the limit of 4,096 MiB; if the file is trusted, raise it "
        r"with --max-unpacked-mb N \(max_uncompressed_bytes in Python\)$",
    ):
        toolkit.prepare(path)


def test_a_real_deflate_bomb_is_refused_by_the_unpacked_cap(workbook: Workbook) -> None:
    # 64 MiB of whitespace inside the sheet XML packs into a few dozen KiB.
    path = rewrite_member(
        workbook([["a"]], name="deflate.xlsx"),
        SHEET,
        lambda xml: xml.replace(b"</worksheet>", b" " * 64 * 1024**2 + b"</worksheet>"),
    )
    assert path.stat().st_size < 1024**2

    with pytest.raises(UnreadableFileError, match=r"^deflate\.xlsx: unpacks to 64 MiB, over the limit of 16 MiB"):
        read_grid(path, max_uncompressed_bytes=16 * 1024**2)


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("python-calamine__base.ods", r"from \d+ KiB of content\.xml"),
        ("python-calamine__base.xlsb", r"from \d+ KiB of sheet data"),
        ("python-calamine__base.xls", r"from the file size"),
    ],
)
def test_other_formats_are_capped_by_their_declared_or_file_size(tmp_path: Path, name: str, source: str) -> None:
    if not (ODDFILES / name).exists():
        pytest.skip(f"corpus file {name} is not available (../shared/data/oddfiles)")
    path = Path(shutil.copy(ODDFILES / name, tmp_path / name))

    with pytest.raises(
        UnreadableFileError, match=rf"^{re.escape(name)}: about [\d,]+ cells \({source}\), over the limit of 10 cells"
    ):
        read_grid(path, max_cells=10)
    assert read_grid(path).cells.height >= 1
