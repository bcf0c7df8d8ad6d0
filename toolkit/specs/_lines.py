"""Where a setting sits in a spec file, so an error can say ``path:line``.

tomllib keeps no positions, so the text is scanned: each ``[[columns]]``, ``[[rules]]`` or
``[[foreign_keys]]`` header starts entry *n* of its array (as tomllib numbers them), and each
``key = value`` line below it is a setting of that entry. Settings written another way (inline
tables, dotted keys) are not located; the error then names the file only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_-]+)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\s*\[[^\[]")
_SETTING = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")

#: (array name or None for the top level, entry index, setting or None for the entry itself) -> line
Position = tuple[str | None, int, str | None]


@dataclass(frozen=True)
class Lines:
    """1-based line numbers of a spec file's entries and settings."""

    found: dict[Position, int] = field(default_factory=dict)

    @classmethod
    def scan(cls, text: str) -> Lines:
        found: dict[Position, int] = {}
        entries: dict[str, int] = {}
        section: str | None = None
        index = 0
        open_string: str | None = None  # inside a multi-line string: its delimiter
        for number, line in enumerate(text.splitlines(), start=1):
            if open_string:
                if open_string in line:
                    open_string = None
                continue
            if header := _ARRAY_HEADER.match(line):
                section = header[1]
                index = entries.get(section, 0)
                entries[section] = index + 1
                found.setdefault((section, index, None), number)
            elif _TABLE_HEADER.match(line):
                section, index = "[table]", 0  # a plain table: nothing a spec error points into
            elif setting := _SETTING.match(line):
                found.setdefault((section, index, setting[1]), number)
                rest = line[setting.end() :]
                open_string = next((q for q in ('"""', "'''") if rest.count(q) == 1), None)
        return cls(found)

    def line(self, section: str | None, index: int = 0, setting: str | None = None) -> int | None:
        """The line of a setting, else of its entry, else of the top-level setting naming the array."""
        for position in ((section, index, setting), (section, index, None), (None, 0, section)):
            if position in self.found:
                return self.found[position]
        return None
