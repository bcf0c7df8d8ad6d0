"""Test hooks for tests/test_tasks.py, put into worker processes through PYTHONPATH, never into toolkit.

With $TOOLKIT_TEST_HOOKS set to a folder, the first ``prepare`` of a file named ``pause-read*`` and
the first load of a file named ``pause-load*`` (after its first committed batch) write
``<file name>.paused`` holding the process id into that folder, then sleep: the test then kills
that process at a known point. Later attempts at the same file (the redelivered task) run normally.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

FLAGS = os.environ.get("TOOLKIT_TEST_HOOKS")
PAUSE_SECONDS = 120  # bounded: a test that forgot to kill still ends


def _pause_once(name: str) -> None:
    assert FLAGS is not None
    try:
        with open(Path(FLAGS) / f"{name}.paused", "x", encoding="utf-8") as flag:
            flag.write(str(os.getpid()))
    except FileExistsError:
        return
    time.sleep(PAUSE_SECONDS)


if FLAGS:
    import toolkit.ingest  # noqa: F401 - imported for sys.modules below

    pipeline = sys.modules["toolkit.ingest"]  # the package attribute `ingest` is the function
    original_prepare, original_load = pipeline.prepare, pipeline.load_prepared

    def prepare(path: Any, **options: Any) -> Any:
        if Path(path).name.startswith("pause-read"):
            _pause_once(Path(path).name)
        return original_prepare(path, **options)

    def load_prepared(prepared: Any, warehouse: Any, **options: Any) -> Any:
        name, report = prepared.path.name, options.get("on_progress")
        if name.startswith("pause-load"):

            def paused(progress: Any) -> None:
                if report is not None:
                    report(progress)
                _pause_once(name)

            options["on_progress"] = paused
        return original_load(prepared, warehouse, **options)

    pipeline.prepare, pipeline.load_prepared = prepare, load_prepared
