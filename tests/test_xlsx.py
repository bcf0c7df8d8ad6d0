"""The quick look inside .xlsx files: sheet parts, the head rows as text, the boolean-cell scan."""

from __future__ import annotations

import datetime as dt
import platform
import re
import zipfile
import zlib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
import xlsxwriter
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

from tests.conftest import ODDFILES, ExcelError, declare_size
from toolkit import xlsx
from toolkit.read import read_grid

Workbook = Callable[..., Path]


def test_sheets_lists_names_visibility_and_parts_in_workbook_order(workbook: Workbook) -> None:
    path = workbook([["a"]], extra_sheets={"Hidden": [["b"]], "Third": [["c"]]}, hidden=["Hidden"])

    found = xlsx.sheets(str(path))

    assert found == [
        xlsx.SheetPart("Sheet1", "visible", "xl/worksheets/sheet1.xml"),
        xlsx.SheetPart("Hidden", "hidden", "xl/worksheets/sheet2.xml"),
        xlsx.SheetPart("Third", "visible", "xl/worksheets/sheet3.xml"),
    ]


@pytest.mark.parametrize("constant_memory", [False, True], ids=["shared strings", "inline strings"])
def test_head_undoes_the_ooxml_escapes_as_the_full_read_does(tmp_path: Path, constant_memory: bool) -> None:
    texts = ["Customer\x00ID", "First\r\nName", "bell\x07", "_x0041_ stays _x0041_", "plain"]
    path = tmp_path / "escaped.xlsx"
    book = xlsxwriter.Workbook(str(path), {"constant_memory": constant_memory})
    sheet = book.add_worksheet()
    for col, text in enumerate(texts):
        sheet.write_string(0, col, text)
    book.close()
    assert b"_x0000_" in zipfile.ZipFile(path).read("xl/sharedStrings.xml" if not constant_memory else "xl/worksheets/sheet1.xml")

    head = xlsx.head(str(path), "xl/worksheets/sheet1.xml", rows=5)

    assert head is not None
    assert list(head.rows[0].values()) == texts == list(read_grid(path).cells.row(0)[1:])


def test_sheets_are_found_whatever_the_namespaces_and_the_case_of_member_names(tmp_path: Path) -> None:
    # Strict OOXML namespaces, prefixed tags, a target in another case, an absolute target with "..".
    book = (
        '<x:workbook xmlns:x="http://purl.oclc.org/ooxml/spreadsheetml/main" '
        'xmlns:r="http://purl.oclc.org/ooxml/officeDocument/relationships"><x:sheets>'
        '<x:sheet name="Data" sheetId="1" r:id="rId1"/><x:sheet name="Old" sheetId="2" state="hidden" r:id="rId2"/>'
        "</x:sheets></x:workbook>"
    )
    rels = (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="Worksheets/Sheet1.XML"/>'
        '<Relationship Id="rId2" Target="/xl/worksheets/../worksheets/sheet2.xml"/></Relationships>'
    )
    path = tmp_path / "strict.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("XL/Workbook.xml", book)
        archive.writestr("xl/_rels/workbook.xml.rels", rels)
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
        archive.writestr("xl/worksheets/sheet2.xml", "<worksheet/>")
    expected = [
        xlsx.SheetPart("Data", "visible", "xl/worksheets/sheet1.xml"),
        xlsx.SheetPart("Old", "hidden", "xl/worksheets/sheet2.xml"),
    ]

    assert xlsx.sheets(str(path)) == expected
    with zipfile.ZipFile(path) as archive:
        assert xlsx.sheets(archive) == expected


def test_sheets_leaves_an_index_larger_than_any_real_one_unparsed(workbook: Workbook) -> None:
    path = declare_size(workbook([["a"]]), "xl/workbook.xml", 17 * 1024**2)

    with zipfile.ZipFile(path) as archive:  # an open archive: a read that fails would raise
        assert xlsx.sheets(archive) is None


def test_sheets_is_none_for_a_zip_that_is_no_workbook(tmp_path: Path) -> None:
    path = tmp_path / "fake.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")

    assert xlsx.sheets(str(path)) is None


def test_head_reads_shared_and_inline_strings_numbers_booleans_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "kinds.xlsx"
    for constant_memory in (False, True):  # shared strings, then inline strings
        book = xlsxwriter.Workbook(str(path), {"constant_memory": constant_memory})
        sheet = book.add_worksheet()
        sheet.write_row(0, 0, ["Name", "Amount", "Flag", "Oops"])
        sheet.write_string(1, 0, "Asha")
        sheet.write_number(1, 1, 12)
        sheet.write_boolean(1, 2, False)
        sheet.write_formula(1, 3, "=1/0", None, "#DIV/0!")
        sheet.write_number(2, 1, 2.5)
        book.close()

        head = xlsx.head(str(path), "xl/worksheets/sheet1.xml", rows=20)

        assert head is not None
        assert head.rows == [
            {"A": "Name", "B": "Amount", "C": "Flag", "D": "Oops"},
            {"A": "Asha", "B": "12", "C": "false", "D": "#DIV/0!"},
            {"B": "2.5"},
        ]
        assert head.errors == {(2, "D"): "#DIV/0!"}


def test_head_stops_after_the_rows_asked_for(workbook: Workbook) -> None:
    path = workbook([["h"], *([i] for i in range(100))])

    head = xlsx.head(str(path), "xl/worksheets/sheet1.xml", rows=5)

    assert head is not None
    assert [row["A"] for row in head.rows] == ["h", "0", "1", "2", "3"]


def test_head_reaches_the_first_filled_row_of_a_table_far_down(workbook: Workbook) -> None:
    path = workbook([["title far down"], ["x"]], first_cell=(40, 1))

    head = xlsx.head(str(path), "xl/worksheets/sheet1.xml", rows=20)

    assert head is not None
    assert len(head.rows) == 41
    assert head.rows[40] == {"B": "title far down"}


def test_head_is_none_for_a_missing_part(workbook: Workbook) -> None:
    assert xlsx.head(str(workbook([["a"]])), "xl/worksheets/nope.xml", rows=20) is None


def test_boolean_cells_are_found_with_their_places(workbook: Workbook) -> None:
    path = workbook([["n", "m"], [1.5, True], [False, 2], [3, None]])

    assert xlsx.boolean_cells(str(path), "xl/worksheets/sheet1.xml") == {"B": [2], "A": [3]}


def test_boolean_cells_across_chunk_boundaries_are_each_found_once(workbook: Workbook, monkeypatch: pytest.MonkeyPatch) -> None:
    rows: list[list[object]] = [["flag", "n"], *([True if i % 3 == 0 else i, i] for i in range(300))]
    path = workbook(rows)
    expected = [r + 2 for r in range(300) if r % 3 == 0]
    monkeypatch.setattr(xlsx, "_CHUNK", 97)  # a prime: marks fall across chunk edges

    assert xlsx.boolean_cells(str(path), "xl/worksheets/sheet1.xml") == {"A": expected}


def test_a_boolean_cell_without_a_reference_makes_the_scan_give_up(tmp_path: Path) -> None:
    path = tmp_path / "noref.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        sheet = '<worksheet><sheetData><row r="1"><c t="b"><v>1</v></c></row></sheetData></worksheet>'
        archive.writestr("xl/worksheets/sheet1.xml", sheet)

    assert xlsx.boolean_cells(str(path), "xl/worksheets/sheet1.xml") is None


_SHEET = "xl/worksheets/sheet1.xml"


def _boolean_sheet(rows: int, *, quote: str = '"') -> bytes:
    """Column A: a boolean cell per row (its type attribute in ``quote``s); B: text full of b's."""
    cells = "".join(
        f'<row r="{r}"><c r="A{r}" t={quote}b{quote}><v>1</v></c>'
        f'<c r="B{r}" t="inlineStr"><is><t>a big bob {r}</t></is></c></row>'
        for r in range(1, rows + 1)
    )
    return f"<worksheet><sheetData>{cells}</sheetData></worksheet>".encode()


def _sheet_archive(path: Path, sheet: bytes, *, compression: int = zipfile.ZIP_DEFLATED, before: bytes = b"") -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr(_SHEET, sheet)
    if before:  # bytes before the archive, as a self-extracting archive has: offsets move
        path.write_bytes(before + path.read_bytes())
    return path


def _isal_required() -> bool:
    """Whether the toolkit as installed requires isal on this machine (pyproject.toml's marker)."""
    for line in metadata.requires("toolkit") or []:
        requirement = Requirement(line)
        if requirement.name == "isal":
            return requirement.marker is None or requirement.marker.evaluate({"extra": ""})
    return False


@pytest.fixture(params=["isal", "zlib"])
def inflate(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The scans inflate with ISA-L, or with zlib where isal has no wheel: both are tested."""
    if request.param == "zlib":
        monkeypatch.setattr(xlsx, "_inflate", zlib)
    elif not _isal_required():
        pytest.skip(f"isal is not installed on {platform.machine()} machines: the scans use zlib")
    else:
        assert xlsx._inflate.__name__ == "isal.isal_zlib"
    return str(request.param)


@pytest.mark.parametrize("piece", [97, 4 * 1024 * 1024])
@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2], ids=["stored", "deflated", "bzip2"]
)
def test_a_member_streams_the_bytes_zipfile_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inflate: str, compression: int, piece: int
) -> None:
    path = _sheet_archive(tmp_path / "book.xlsx", _boolean_sheet(2000), compression=compression)
    monkeypatch.setattr(xlsx, "_RAW_CHUNK", 101)  # tails left over in almost every piece

    with zipfile.ZipFile(path) as archive, xlsx.open_member(archive, _SHEET) as stream:
        pieces = list(iter(lambda: stream.read(piece), b""))
        expected = archive.read(_SHEET)

    assert b"".join(pieces) == expected
    assert all(0 < len(p) <= piece for p in pieces)


def test_boolean_cells_are_found_in_an_archive_after_other_bytes(tmp_path: Path, inflate: str) -> None:
    path = _sheet_archive(tmp_path / "sfx.xlsx", _boolean_sheet(50), before=b"MZ" + bytes(4000))

    assert xlsx.boolean_cells(str(path), _SHEET) == {"A": list(range(1, 51))}


@pytest.mark.parametrize("hits", [1, 3, 4096], ids=lambda n: f"{n} anchor hits a window")
@pytest.mark.parametrize("quote", ['"', "'"])
def test_boolean_marks_among_many_bs_are_each_found_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hits: int, quote: str
) -> None:
    # Each row's text has four b's, each an anchor hit that is no mark: the search for the marks
    # themselves takes over in every window once the hits allowed are used up.
    path = _sheet_archive(tmp_path / "bs.xlsx", _boolean_sheet(300, quote=quote))
    monkeypatch.setattr(xlsx, "_ANCHOR_HITS", hits)
    monkeypatch.setattr(xlsx, "_CHUNK", 997)

    assert xlsx.boolean_cells(str(path), _SHEET) == {"A": list(range(1, 301))}


def test_a_member_whose_bytes_do_not_match_its_crc_makes_the_scan_give_up(tmp_path: Path, inflate: str) -> None:
    path = _sheet_archive(tmp_path / "crc.xlsx", _boolean_sheet(20), compression=zipfile.ZIP_STORED)
    path.write_bytes(path.read_bytes().replace(b"a big bob 7<", b"a big bib 7<"))  # same size, other bytes

    assert xlsx.boolean_cells(str(path), _SHEET) is None


def test_corrupt_deflated_data_makes_the_scan_give_up(tmp_path: Path, inflate: str) -> None:
    path = _sheet_archive(tmp_path / "corrupt.xlsx", _boolean_sheet(2000))
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(_SHEET)
    data = bytearray(path.read_bytes())
    start = info.header_offset + xlsx._LOCAL_HEADER.size + len(_SHEET.encode()) + info.compress_size // 3  # no extra field
    data[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))

    assert xlsx.boolean_cells(str(path), _SHEET) is None


def test_an_archive_ending_inside_the_member_is_an_error(tmp_path: Path, inflate: str) -> None:
    path = _sheet_archive(tmp_path / "whole.xlsx", _boolean_sheet(2000))
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(_SHEET)
    cut = tmp_path / "cut.xlsx"
    cut.write_bytes(path.read_bytes()[: info.header_offset + info.compress_size // 2])

    # The directory of the whole file, the bytes of the cut one.
    with pytest.raises(EOFError, match="the archive ends inside the member"), xlsx._Inflating(str(cut), info) as stream:
        while stream.read(4096):
            pass


def _durations_book(path: Path, rows: int = 3, *, constant_memory: bool = False) -> Path:
    """Column A: durations ([h]:mm:ss, then [mm]:ss); B: times of day; C: text in a duration style;
    D: text that reads like a style attribute; row 2 carries a duration style of its own."""
    book = xlsxwriter.Workbook(str(path), {"constant_memory": constant_memory})
    sheet = book.add_worksheet()
    hours, minutes = book.add_format({"num_format": "[h]:mm:ss"}), book.add_format({"num_format": "[mm]:ss"})
    sheet.set_row(1, None, hours)  # <row r="2" s="..."> : a row's style, no cell's
    sheet.write_row(0, 0, ["spent", "at", "note", "text"])
    for row in range(1, rows + 1):
        sheet.write_number(row, 0, row + 0.5, hours if row % 2 else minutes)
        sheet.write_number(row, 1, 0.25, book.add_format({"num_format": "hh:mm"}))
        sheet.write_string(row, 2, "later", hours)
        sheet.write_string(row, 3, ' s="1" s="2" s="3"')
    book.close()
    return path


@pytest.mark.parametrize("constant_memory", [False, True], ids=["shared strings", "inline strings"])
def test_duration_cells_are_found_with_their_places_and_values(tmp_path: Path, constant_memory: bool) -> None:
    path = _durations_book(tmp_path / "durations.xlsx", constant_memory=constant_memory)

    assert xlsx.duration_cells(str(path), "Sheet1") == {(2, "A"): 1.5, (3, "A"): 2.5, (4, "A"): 3.5}


def test_duration_cells_across_chunk_boundaries_are_each_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _durations_book(tmp_path / "many.xlsx", rows=300)
    monkeypatch.setattr(xlsx, "_CHUNK", 97)  # a prime: marks fall across chunk edges
    monkeypatch.setattr(xlsx, "_CARRY", 400)
    monkeypatch.setattr(xlsx, "_BACK", 200)

    assert xlsx.duration_cells(str(path), "Sheet1") == {(r + 1, "A"): r + 0.5 for r in range(1, 301)}


def test_a_workbook_without_a_duration_style_has_its_sheet_left_unread(workbook: Workbook) -> None:
    path = workbook([["n", "when"], [1.5, dt.datetime(2020, 1, 1, 12)]])

    assert xlsx.duration_cells(str(path), "No such sheet") == {}  # the sheet is not even looked for


def test_duration_cells_of_a_sheet_the_workbook_does_not_list_cannot_be_placed(tmp_path: Path) -> None:
    path = _durations_book(tmp_path / "durations.xlsx")

    assert xlsx.duration_cells(str(path), "No such sheet") is None


def _rewrite_sheet(path: Path, change: Callable[[bytes], bytes]) -> None:
    with zipfile.ZipFile(path) as original:
        members = {info.filename: original.read(info) for info in original.infolist()}
    members["xl/worksheets/sheet1.xml"] = change(members["xl/worksheets/sheet1.xml"])
    with zipfile.ZipFile(path, "w") as rewritten:
        for name, data in members.items():
            rewritten.writestr(name, data)


def test_a_duration_cell_without_a_reference_makes_the_scan_give_up(tmp_path: Path) -> None:
    path = _durations_book(tmp_path / "noref.xlsx")
    _rewrite_sheet(path, lambda xml: xml.replace(b'<c r="A3"', b"<c", 1))

    assert xlsx.duration_cells(str(path), "Sheet1") is None


def test_a_duration_cell_holding_no_finite_number_of_a_sane_size_is_left_alone(tmp_path: Path) -> None:
    path = _durations_book(tmp_path / "odd-values.xlsx")
    _rewrite_sheet(path, lambda xml: xml.replace(b"<v>2.5</v>", b"<v>1e300</v>").replace(b"<v>3.5</v>", b"<v>NaN</v>"))

    assert xlsx.duration_cells(str(path), "Sheet1") == {(2, "A"): 1.5}


def test_a_duration_style_written_after_a_cells_tag_is_not_taken_for_its_style(tmp_path: Path) -> None:
    # Malformed on purpose: stray text after the time-of-day cell's tag reads like a duration style.
    path = _durations_book(tmp_path / "stray.xlsx")
    with zipfile.ZipFile(path) as archive:
        found = re.search(rb'<c r="A2" s="(\d+)"', archive.read("xl/worksheets/sheet1.xml"))
    assert found is not None
    stray = b' s="' + found[1] + b'" <f>A1</f>'
    _rewrite_sheet(path, lambda xml: re.sub(rb'(<c r="B2" s="\d+">)', lambda tag: tag[1] + stray, xml))

    assert xlsx.duration_cells(str(path), "Sheet1") == {(2, "A"): 1.5, (3, "A"): 2.5, (4, "A"): 3.5}


@pytest.mark.parametrize("name", sorted(p.name for p in ODDFILES.glob("*.xlsx")))
def test_the_corpus_never_crashes_the_probe(name: str) -> None:
    parts = xlsx.sheets(str(ODDFILES / name))
    for part in parts or []:
        xlsx.head(str(ODDFILES / name), part.part, rows=20)
        xlsx.boolean_cells(str(ODDFILES / name), part.part)


def test_error_cells_written_by_the_fixture_show_as_their_text(workbook: Workbook) -> None:
    path = workbook([["a"], [ExcelError("#N/A")]])

    head = xlsx.head(str(path), "xl/worksheets/sheet1.xml", rows=20)

    assert head is not None
    assert head.errors == {(2, "A"): "#N/A"}


TAG_PARTS = st.lists(st.sampled_from([b"<v", b"<is", b"<", b"v", b"i", b"s", b">", b"x"]), max_size=40)


@settings(max_examples=200, deadline=None)
@given(parts=TAG_PARTS, seams=st.lists(st.integers(0, 200), max_size=6))
def test_a_tag_count_counts_tags_split_between_pieces_once(parts: list[bytes], seams: list[int]) -> None:
    whole = b"".join(parts)
    cuts = sorted({min(at, len(whole)) for at in seams})
    tally = xlsx.TagCount(xlsx.VALUE_TAGS)
    for start, stop in zip([0, *cuts], [*cuts, len(whole)], strict=True):
        tally.add(whole[start:stop])

    assert tally.total == sum(whole.count(tag) for tag in xlsx.VALUE_TAGS)


def test_the_boolean_scan_tallies_every_byte_of_the_sheet_it_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = xlsxwriter.Workbook(str(tmp_path / "b.xlsx"))
    sheet = book.add_worksheet()
    for row in range(3000):
        sheet.write_row(row, 0, [row, f"text {row}", row % 2 == 0])
    book.close()
    monkeypatch.setattr(xlsx, "_CHUNK", 997)  # the XML in many pieces, tags split between them
    tally = xlsx.TagCount(xlsx.VALUE_TAGS)

    found = xlsx.boolean_cells(str(tmp_path / "b.xlsx"), "xl/worksheets/sheet1.xml", tally=tally)

    with zipfile.ZipFile(tmp_path / "b.xlsx") as archive:
        xml = archive.read("xl/worksheets/sheet1.xml")
    assert found is not None and len(found["C"]) == 3000
    assert tally.total == xml.count(b"<v") + xml.count(b"<is") == 9000
