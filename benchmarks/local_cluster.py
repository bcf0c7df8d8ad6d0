"""The processes of a cluster on this machine, for benchmarks/cluster.py and tests/test_tasks.py.

Redis on a free loopback port and ``python -m toolkit worker`` processes, each started in a
process group of its own (so a kill takes its pool children too) and logging to a file; every
wait polls with a deadline. Celery is imported only by :func:`redis_up`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, message: Callable[[], str]) -> Any:
    """``condition()``'s first true value, polled every 0.1 s; after ``timeout`` s, TimeoutError(message())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise TimeoutError(message())


def redis_command(broker: str) -> list[str]:
    """A throw-away redis-server for ``broker`` (redis://127.0.0.1:PORT/N): loopback only, nothing saved."""
    port = broker.rsplit(":", 1)[1].split("/")[0]
    return ["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


def redis_up(broker: str) -> bool:
    from toolkit.cluster import redis_time
    from toolkit.errors import ClusterError

    try:
        redis_time(broker)
    except ClusterError:
        return False
    return True


def worker_ready(log: Path) -> bool:
    """Whether the worker logging to ``log`` has said it is ready (Celery's ``... ready.`` line)."""
    return " ready." in log.read_text(errors="replace")


def spawn(command: Sequence[str], log: Path, *, cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``command`` in a new process group, its output (both streams) into ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process's whole group (a worker and its pool), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
