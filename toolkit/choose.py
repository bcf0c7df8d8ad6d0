"""Which sheet of a workbook a read takes: the one rule the size check and both reads follow.

Written once so that the sheet ``toolkit.limits`` judges is the sheet ``toolkit.read`` reads,
whatever the format and however its sheets are listed (``workbook.xml`` or fastexcel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from toolkit.errors import SheetError


def choose_sheet(
    file: str,
    names: Sequence[str],
    state: Callable[[int], str],
    *,
    sheet: str | int | None,
    prefer_sheet: str | None = None,
) -> int:
    """The index of the sheet to read: ``sheet`` by name or number; without one, the sheet named
    ``prefer_sheet`` if there is one, else the first visible one.

    ``state(i)`` is sheet ``i``'s visibility (``visible``, ``hidden``, ``veryHidden``); it is asked
    in sheet order and only as far as the first visible sheet, since a reader may have to load a
    sheet to know it. ``file`` names the workbook in messages.

    Raises:
        SheetError: the workbook has no sheets, every sheet is hidden, or the named or numbered
            sheet does not exist.
    """
    listed = f"(sheets: {', '.join(repr(n) for n in names)})"
    if not names:
        raise SheetError(f"{file}: the workbook has no sheets")
    # A fix-it workbook holds one sheet per table, named after it: --table loans finds its sheet.
    if sheet is None and prefer_sheet in names:
        sheet = prefer_sheet
    if sheet is None:
        # Hidden and very-hidden sheets are ignored unless asked for by name or number.
        visible = next((i for i in range(len(names)) if state(i) == "visible"), None)
        if visible is None:
            raise SheetError(f"{file}: every sheet is hidden; name one with --sheet {listed}")
        return visible
    if isinstance(sheet, int):
        if not 0 <= sheet < len(names):
            raise SheetError(f"{file}: no sheet number {sheet} {listed}")
        return sheet
    if sheet not in names:
        raise SheetError(f"{file}: no sheet named {sheet!r} {listed}")
    return names.index(sheet)
