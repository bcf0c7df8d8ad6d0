"""Execute notebooks and keep only the outputs nbval checks: ``python notebooks/refresh.py notebooks/*.ipynb``.

Run after changing a notebook or the sample data. Cells marked ``# NBVAL_CHECK_OUTPUT`` keep their
outputs and execution counts (nbval compares them); every other cell is committed without output,
and the widget state nbclient records is dropped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CHECKED = "# NBVAL_CHECK_OUTPUT"


def refresh(path: Path, *, timeout: int = 120) -> None:
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        if CHECKED not in cell.source:
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    book.metadata.pop("widgets", None)
    book.metadata["language_info"] = {"name": "python"}
    nbformat.write(book, path)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        refresh(Path(name))
        print(f"refreshed {name}")
