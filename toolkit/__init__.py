"""Ingest Excel workbooks into a DuckDB warehouse: read, validate, load, report."""

from __future__ import annotations

import logging

__version__ = "0.1.0"

from toolkit.errors import (  # noqa: E402 - __version__ first: modules below record it
    BadInputError,
    HeaderError,
    SheetError,
    SpecError,
    ToolkitError,
    UnreadableFileError,
    WarehouseBusyError,
    WarehouseError,
)
from toolkit.ingest import ingest, ingest_many, prepare, preview  # noqa: E402
from toolkit.load import Progress  # noqa: E402
from toolkit.specs import TableSpec, builtin_specs, load_spec, load_specs  # noqa: E402
from toolkit.summary import IngestSummary  # noqa: E402

# A library logs; the application decides where it goes (see the CLI's --log).
logging.getLogger("toolkit").addHandler(logging.NullHandler())

__all__ = [
    "BadInputError",
    "HeaderError",
    "IngestSummary",
    "Progress",
    "SheetError",
    "SpecError",
    "TableSpec",
    "ToolkitError",
    "UnreadableFileError",
    "WarehouseBusyError",
    "WarehouseError",
    "__version__",
    "builtin_specs",
    "ingest",
    "ingest_many",
    "load_spec",
    "load_specs",
    "prepare",
    "preview",
]
