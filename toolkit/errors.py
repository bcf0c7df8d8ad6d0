"""The toolkit's exceptions: structural problems raise, bad rows become data.

Hierarchy::

    ToolkitError                 anything the toolkit refuses, with a one-line message
    ├── BadInputError            the file cannot be ingested as it is (CLI exit 2)
    │   ├── UnreadableFileError      not a workbook, encrypted, corrupt, empty file, reader panic
    │   ├── SheetError               the sheet is missing, empty, or has no header row
    │   └── HeaderError              required columns missing, two headers for one column,
    │                                no table spec matches the headers
    ├── SpecError                a table spec is malformed (names the spec and what is wrong)
    ├── WarehouseError           the DuckDB warehouse cannot be used
    │   ├── WarehouseBusyError       another process holds the warehouse's write lock
    │   └── SchemaChangeError        a spec change the warehouse table cannot take
    └── ClusterError             the task queue (Redis) or the workers cannot be used (toolkit.cluster, toolkit.tasks)
        └── SpoolError               a spool entry is missing, unreadable or from another toolkit

Third-party errors (fastexcel, calamine, duckdb, Rust panics) are translated where the toolkit
calls them, with ``raise ... from exc`` so the cause stays inspectable.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """Base class: the message is one line that names the file, sheet, column or row."""


class BadInputError(ToolkitError):
    """The input file cannot be ingested; nothing was written for it."""


class UnreadableFileError(BadInputError):
    """The file is not a readable workbook (corrupt, encrypted, empty, wrong format)."""


class SheetError(BadInputError):
    """The requested sheet does not exist, or holds no header row."""


class HeaderError(BadInputError):
    """The headers do not fit a table spec: missing required columns, clashes, no match."""


class SpecError(ToolkitError):
    """A table spec is malformed."""


class WarehouseError(ToolkitError):
    """The warehouse cannot be opened or written."""


class WarehouseBusyError(WarehouseError):
    """Another process is writing to the warehouse."""


class SchemaChangeError(WarehouseError):
    """A spec change the existing table cannot take (narrowing, new required column, new key)."""


class ClusterError(ToolkitError):
    """The task queue cannot be reached, or a submission did not finish in time."""


class SpoolError(ClusterError):
    """A spool entry is missing, unreadable, or cannot be rebuilt by this toolkit."""
