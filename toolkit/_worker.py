"""Entry point of a worker process (``python -m toolkit._worker``); see ``toolkit.workers``.

A module of its own, imported by nothing: running ``toolkit.workers`` itself with ``-m`` would
execute a module the package has already imported, which Python warns about.
"""

import os

# Readers run at a lower priority than the one writer, which is what a multi-file ingest waits
# on: at equal priority, two readers on two cores slowed the writer's commits (each a wake-up
# after DuckDB's write) to a third of their speed; niced, the writer keeps its speed and the
# readers take what is left (8 files: 6.9 s -> 5.6 s, benchmarks). Set before anything else
# is imported, so every thread the reader starts later inherits it.
READER_NICENESS = 10
if hasattr(os, "nice"):  # POSIX; elsewhere readers keep the writer's priority
    os.nice(READER_NICENESS)

from toolkit.workers import serve  # noqa: E402 - after the priority is set

serve()
