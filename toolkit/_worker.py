"""Entry point of a worker process (``python -m toolkit._worker``); see ``toolkit.workers``.

A module of its own, imported by nothing: running ``toolkit.workers`` itself with ``-m`` would
execute a module the package has already imported, which Python warns about.
"""

import os
import sys

# Already imported with the package (its __init__ runs before this module): no work of its own.
from toolkit.workers import READER_NICENESS, serve

# Readers run at a lower priority than the one writer, which is what a multi-file ingest waits
# on. In one-off profiles (the README's Performance section), two readers at equal priority on
# two cores slowed the writer's 1000-row loads to a third of their speed; niced, the writer kept
# its speed and the readers took what was left (8 files of 100k rows: 6.9 s -> 5.6 s). Set before
# the reader's work: fastexcel parses on this thread, and the threads a read starts inherit it. (The
# package's imports, which Python runs before this module, start only idle ones: jemalloc's, polars'
# cleaner.) A helper reading half of one large sheet (toolkit.read) is what its caller waits on:
# it keeps the caller's priority (``--keep-priority``).
if hasattr(os, "nice") and "--keep-priority" not in sys.argv[1:]:  # POSIX; elsewhere readers keep the writer's priority
    os.nice(READER_NICENESS)

serve()
