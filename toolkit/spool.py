"""Prepared sheets as files in a folder shared by the read workers and the warehouse writer.

Layout of a spool folder::

    entries/<id>/manifest.json   the Prepared's non-frame fields, as tagged JSON
    entries/<id>/frame-N.arrow   each polars frame of the Prepared (Arrow IPC, lz4)
    entries/<id>/loaded.json     written by the writer once the entry's run has committed
    batches/<task id>.json       loads the writer has started (what it resumes after a crash)
    inbox/<sha256>/<name>        workbooks copied in by ``submit --spool`` for workers to read
    tmp/                         writes in progress, renamed into place when complete

The codec walks dataclass fields generically (frames -> IPC files, everything else -> JSON), so
a field added to ``Prepared``, ``Validated`` or ``MappedSheet`` travels without a change here; a
value of a type it does not know raises ``TypeError`` naming the field. Table specs are frozen
dataclasses too, so they travel inside the entry: the writer needs no spec files of its own.
Only ``toolkit`` dataclasses are rebuilt from a manifest (a spool on a share is input too).

Every write is atomic (a folder or file in ``tmp/`` renamed into place), so a worker killed
mid-write leaves no half entry, and two workers writing the same entry leave exactly one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from toolkit import __version__
from toolkit.errors import SpoolError
from toolkit.ingest import Prepared
from toolkit.read import file_sha256
from toolkit.specs import TableSpec

FORMAT = 1


class Spool:
    """A spool folder (created on first write)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"<Spool {self.root}>"

    def entry(self, entry_id: str) -> Path:
        if not entry_id.isalnum():  # ids are hex digests; never a path that leaves the spool
            raise SpoolError(f"{self.root}: {entry_id!r} is not a spool entry id")
        return self.root / "entries" / entry_id

    def has(self, entry_id: str) -> bool:
        return (self.entry(entry_id) / "manifest.json").is_file()

    def write(self, entry_id: str, prepared: Prepared) -> bool:
        """Store ``prepared`` as entry ``entry_id``; False when the entry already existed (kept as is)."""
        if self.has(entry_id):
            return False
        tmp = self._tmp(f"entry-{entry_id}")
        tmp.mkdir()
        try:
            frames = _Frames(tmp)
            manifest = {
                "format": FORMAT,
                "toolkit_version": __version__,
                "file": str(prepared.path),
                "spec": encode(prepared.validated.spec),
                "prepared": encode(prepared, frames, where="prepared"),
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
            target = self.entry(entry_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                tmp.rename(target)
            except OSError:  # another worker renamed the same entry into place first: theirs is as good
                if not self.has(entry_id):
                    raise
                return False
            return True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def read(self, entry_id: str) -> Prepared:
        folder = self.entry(entry_id)
        manifest = self._manifest(entry_id)
        try:
            prepared = decode(manifest["prepared"], folder)
        except (TypeError, KeyError, OSError, pl.exceptions.PolarsError) as exc:
            raise SpoolError(
                f"spool entry {entry_id} ({manifest.get('toolkit_version')}): cannot be rebuilt ({exc}); submit the file again"
            ) from exc
        if not isinstance(prepared, Prepared):
            raise SpoolError(f"spool entry {entry_id}: holds a {type(prepared).__name__}, not a prepared sheet")
        return prepared

    def read_spec(self, entry_id: str) -> TableSpec:
        """The entry's table spec, without reading its frames (for ordering loads)."""
        spec = decode(self._manifest(entry_id)["spec"])
        if not isinstance(spec, TableSpec):
            raise SpoolError(f"spool entry {entry_id}: its spec is a {type(spec).__name__}")
        return spec

    def source(self, entry_id: str) -> str:
        """The path the entry's workbook was read from."""
        return str(self._manifest(entry_id)["file"])

    def loaded(self, entry_id: str) -> dict[str, Any] | None:
        """What the writer recorded when it loaded the entry, or None."""
        try:
            record: dict[str, Any] = json.loads((self.entry(entry_id) / "loaded.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return record

    def mark_loaded(self, entry_id: str, record: Mapping[str, Any]) -> None:
        self._write_json(self.entry(entry_id) / "loaded.json", record)

    def claim(self, task_id: str, record: Mapping[str, Any]) -> None:
        """Note that the writer started the batch ``task_id`` (resumed after a crash until released)."""
        self._write_json(self._batch(task_id), record)

    def release(self, task_id: str) -> None:
        self._batch(task_id).unlink(missing_ok=True)

    def claimed(self) -> list[dict[str, Any]]:
        """Batches started and not finished, oldest first."""
        folder = self.root / "batches"
        files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
        return [json.loads(p.read_text(encoding="utf-8")) for p in files]

    def stage(self, path: str | Path) -> str:
        """Copy a workbook into ``inbox/`` (once per content); returns its path relative to the spool."""
        path = Path(path)
        digest = file_sha256(path)
        relative = Path("inbox") / digest / path.name
        target = self.root / relative
        if not target.is_file():
            tmp = self._tmp(f"stage-{digest}")
            shutil.copyfile(path, tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        return relative.as_posix()

    def resolve(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise SpoolError(f"{relative!r} is outside the spool {self.root}")
        return path

    def _manifest(self, entry_id: str) -> dict[str, Any]:
        try:
            manifest: dict[str, Any] = json.loads((self.entry(entry_id) / "manifest.json").read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise SpoolError(f"{self.root}: no spool entry {entry_id} (was the spool cleaned?); submit the file again") from exc
        except (OSError, ValueError) as exc:
            raise SpoolError(f"spool entry {entry_id}: unreadable manifest ({exc})") from exc
        if manifest.get("format") != FORMAT:
            raise SpoolError(f"spool entry {entry_id}: format {manifest.get('format')!r}, this toolkit reads {FORMAT}")
        return manifest

    def _batch(self, task_id: str) -> Path:
        if not task_id.replace("-", "").isalnum():
            raise SpoolError(f"{task_id!r} is not a task id")
        return self.root / "batches" / f"{task_id}.json"

    def _tmp(self, stem: str) -> Path:
        folder = self.root / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{stem}-{uuid.uuid4().hex}"

    def _write_json(self, path: Path, record: Mapping[str, Any]) -> None:
        tmp = self._tmp(path.stem)
        tmp.write_text(json.dumps(record, ensure_ascii=False, default=str), encoding="utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)


def entry_id(file_sha256: str, options: Mapping[str, Any], specs: Mapping[str, TableSpec]) -> str:
    """The entry of a file read with these options under these specs: the same request, the same id,
    so a retried or duplicated task reuses it. Spec file locations do not count, only their content."""
    key = {
        "file": file_sha256,
        "options": dict(options),
        "specs": fingerprint(dict(specs)),
        "toolkit_version": __version__,
        "format": FORMAT,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]


def fingerprint(value: Any) -> Any:
    """``encode`` without dataclass fields that do not take part in equality (a spec's ``source``)."""
    return encode(value, compare_only=True)


class _Frames:
    """Writes each distinct frame once (``Validated.raw`` is ``MappedSheet.raw``) and names it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: dict[int, str] = {}
        self.kept: list[pl.DataFrame] = []  # keeps ids stable while encoding

    def add(self, frame: pl.DataFrame) -> str:
        if id(frame) not in self.names:
            name = f"frame-{len(self.names)}.arrow"
            frame.write_ipc(self.folder / name, compression="lz4")
            self.names[id(frame)] = name
            self.kept.append(frame)
        return self.names[id(frame)]


def encode(value: Any, frames: _Frames | None = None, *, where: str = "value", compare_only: bool = False) -> Any:
    """``value`` as JSON-ready data with tagged types; frames go to ``frames`` (required if any)."""

    def enc(item: Any, at: str) -> Any:
        return encode(item, frames, where=at, compare_only=compare_only)

    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, pl.DataFrame):
        if frames is None:
            raise TypeError(f"{where}: a polars frame needs a spool entry folder to be written to")
        return {"$frame": frames.add(value)}
    if isinstance(value, Path):
        return {"$path": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, tuple):
        return {"$tuple": [enc(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [enc(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {"$dict": [[enc(k, f"{where} key"), enc(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kind = type(value)
        fields = {
            f.name: enc(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
            if f.init and (f.compare or not compare_only)
        }
        return {"$dataclass": f"{kind.__module__}:{kind.__qualname__}", "fields": fields}
    raise TypeError(f"{where}: the spool cannot store a {type(value).__name__}; teach toolkit.spool.encode this type")


def decode(data: Any, folder: Path | None = None) -> Any:
    """The inverse of :func:`encode`; frames are read from ``folder``, each once."""
    return _decode(data, folder, {})


def _decode(data: Any, folder: Path | None, frames: dict[str, pl.DataFrame]) -> Any:
    if isinstance(data, list):
        return [_decode(v, folder, frames) for v in data]
    if not isinstance(data, dict):
        return data
    if "$frame" in data:
        if folder is None:
            raise TypeError("a frame needs the spool entry folder it was written to")
        name = Path(data["$frame"]).name
        if name not in frames:
            # Read as bytes: no memory map of a file on a network share that another host may replace.
            frames[name] = pl.read_ipc((folder / name).read_bytes())
        return frames[name]
    if "$path" in data:
        return Path(data["$path"])
    if "$datetime" in data:
        return datetime.fromisoformat(data["$datetime"])
    if "$date" in data:
        return date.fromisoformat(data["$date"])
    if "$tuple" in data:
        return tuple(_decode(v, folder, frames) for v in data["$tuple"])
    if "$dict" in data:
        return {_decode(k, folder, frames): _decode(v, folder, frames) for k, v in data["$dict"]}
    if "$dataclass" in data:
        kind = _dataclass(data["$dataclass"])
        return kind(**{name: _decode(v, folder, frames) for name, v in data["fields"].items()})
    raise TypeError(f"untagged object in a spool manifest: {sorted(data)}")


def _dataclass(name: str) -> type:
    module, _, qualname = name.partition(":")
    if module != "toolkit" and not module.startswith("toolkit."):
        raise TypeError(f"{name}: only toolkit dataclasses are rebuilt from a spool")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and dataclasses.is_dataclass(found)):
        raise TypeError(f"{name} is not a dataclass")
    return found
