"""Entry point of a worker process (``python -m toolkit._worker``); see ``toolkit.workers``.

A module of its own, imported by nothing: running ``toolkit.workers`` itself with ``-m`` would
execute a module the package has already imported, which Python warns about.
"""

from toolkit.workers import serve

serve()
