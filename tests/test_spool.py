from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.conftest import CUSTOMER_HEADERS, DATA, LOAN_HEADERS, customer, loan
from toolkit.errors import SpoolError, ToolkitError
from toolkit.ingest import prepare
from toolkit.specs import load_spec, load_specs
from toolkit.spool import Spool, decode, entry_id


def assert_same(left: Any, right: Any, where: str = "prepared") -> None:
    """Equal field by field, frames compared whole (types, order, nulls)."""
    if isinstance(left, pl.DataFrame):
        assert_frame_equal(left, right)
    elif dataclasses.is_dataclass(left) and not isinstance(left, type):
        assert type(left) is type(right), where
        for field in dataclasses.fields(left):
            assert_same(getattr(left, field.name), getattr(right, field.name), f"{where}.{field.name}")
    else:
        assert left == right, where
        assert type(left) is type(right), where


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


@pytest.mark.parametrize("name", ["customer_data.xlsx", "loan_data.xlsx"])
def test_round_trip_gives_back_every_field_and_frame(spool: Spool, name: str) -> None:
    prepared = prepare(DATA / name)
    assert spool.write("e1", prepared)
    back = spool.read("e1")
    assert_same(prepared, back)
    assert back.validated.raw is back.sheet.raw  # one frame written once, shared again
    assert spool.read_spec("e1") == prepared.validated.spec
    assert spool.source("e1") == str(DATA / name)


def test_round_trip_of_edge_cases(spool: Spool, workbook: Any) -> None:
    # Errors of every stage, an optional column missing, duplicates and a custom spec with rules.
    rows = [CUSTOMER_HEADERS, customer(1), customer(1), customer(2, Age="abc"), customer(3, Phone_Number=None)]
    prepared = prepare(workbook(rows))
    assert not prepared.validated.duplicates.is_empty() and not prepared.validated.errors.is_empty()
    spool.write("e2", prepared)
    assert_same(prepared, spool.read("e2"))
    empty = prepare(workbook([LOAN_HEADERS]))  # no data rows: empty frames keep their schema
    spool.write("e3", empty)
    assert_same(empty, spool.read("e3"))


def test_a_field_added_to_a_dataclass_travels(spool: Spool, workbook: Any) -> None:
    # Another field, of any supported type, in any dataclass of the Prepared: no spool change needed.
    prepared = prepare(workbook([LOAN_HEADERS, loan(1, 10)]))
    extra = pl.DataFrame({"a": [1, None]}, schema={"a": pl.Int32})
    prepared = dataclasses.replace(prepared, header_order=("x", extra, {"k": (1.5, None)}))  # type: ignore[arg-type]
    spool.write("e4", prepared)
    assert_same(prepared.header_order[1], spool.read("e4").header_order[1])
    assert spool.read("e4").header_order[2] == {"k": (1.5, None)}


def test_a_value_it_cannot_store_names_the_field(spool: Spool, workbook: Any) -> None:
    prepared = dataclasses.replace(prepare(workbook([LOAN_HEADERS, loan()])), header_order={"a set"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"prepared\.header_order: the spool cannot store a set"):
        spool.write("e5", prepared)
    assert not spool.has("e5") and not list((spool.root / "tmp").iterdir())  # nothing half-written


def test_only_toolkit_dataclasses_are_rebuilt() -> None:
    with pytest.raises(TypeError, match="only toolkit dataclasses"):
        decode({"$dataclass": "subprocess:Popen", "fields": {"args": "rm"}})


def test_writing_an_existing_entry_keeps_the_first(spool: Spool, workbook: Any) -> None:
    first = prepare(workbook([LOAN_HEADERS, loan(1, 10)]))
    second = prepare(workbook([LOAN_HEADERS, loan(2, 20)]))
    assert spool.write("e6", first)
    assert not spool.write("e6", second)
    assert_same(first, spool.read("e6"))


def test_concurrent_writers_leave_one_whole_entry(spool: Spool, workbook: Any) -> None:
    prepared = prepare(workbook([CUSTOMER_HEADERS, *[customer(i) for i in range(1, 300)]]))
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(spool.write("e7", prepared))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [False, False, False, True]
    assert_same(prepared, spool.read("e7"))
    assert not list((spool.root / "tmp").iterdir())


def test_entry_id_is_the_request(tmp_path: Path) -> None:
    specs = load_specs()
    same = entry_id("abc", {"table": None}, specs)
    assert entry_id("abc", {"table": None}, specs) == same
    assert entry_id("abd", {"table": None}, specs) != same
    assert entry_id("abc", {"table": "loans"}, specs) != same
    # A spec's content counts, not where its file is.
    moved = tmp_path / "elsewhere.toml"
    moved.write_text((Path(specs["loans"].source)).read_text(encoding="utf-8"), encoding="utf-8")
    assert entry_id("abc", {"table": None}, {**specs, "loans": load_spec(moved)}) == same
    changed = dataclasses.replace(specs["loans"], description="changed")
    assert entry_id("abc", {"table": None}, {**specs, "loans": changed}) != same


def test_loaded_marker_and_claims(spool: Spool) -> None:
    assert spool.loaded("e8") is None
    spool.mark_loaded("e8", {"stamp": 1.5, "summary": {"total": 1}})
    assert spool.loaded("e8") == {"stamp": 1.5, "summary": {"total": 1}}
    spool.claim("task-1", {"task_id": "task-1", "outcomes": []})
    spool.claim("task-2", {"task_id": "task-2", "outcomes": []})
    assert [c["task_id"] for c in spool.claimed()] == ["task-1", "task-2"]
    spool.release("task-1")
    assert [c["task_id"] for c in spool.claimed()] == ["task-2"]


def test_staged_files_land_once_in_the_inbox(spool: Spool, workbook: Any) -> None:
    book = workbook([LOAN_HEADERS, loan()], name="in.xlsx")
    relative = spool.stage(book)
    assert relative.startswith("inbox/") and relative.endswith("/in.xlsx")
    assert spool.stage(book) == relative
    assert spool.resolve(relative).read_bytes() == book.read_bytes()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.read("0123abcd"), "no spool entry 0123abcd"),
        (lambda s: s.entry("../etc"), "is not a spool entry id"),
        (lambda s: s.resolve("../outside.xlsx"), "is outside the spool"),
        (lambda s: s.stage("/no/such/file.xlsx"), r"file.xlsx: cannot read the file"),
    ],
)
def test_errors_are_one_line(spool: Spool, call: Any, message: str) -> None:
    with pytest.raises(ToolkitError, match=message) as raised:
        call(spool)
    assert "\n" not in str(raised.value)


def test_an_entry_from_another_format_is_refused(spool: Spool, workbook: Any) -> None:
    spool.write("e9", prepare(workbook([LOAN_HEADERS, loan()])))
    manifest = spool.entry("e9") / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format": 99}))
    with pytest.raises(SpoolError, match="format 99"):
        spool.read("e9")
