"""The processes below a process, from Linux's /proc: for the benchmark's memory of a process tree
and for the browser test's clean-up of a notebook server's kernels."""

from __future__ import annotations

import os
from pathlib import Path


def descendants(pid: int) -> set[int]:
    """The process ids of every process below ``pid`` (children, theirs...), now; empty without /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if Path("/proc").is_dir() else []:
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue  # ended meanwhile
            parent = int(stat[stat.rindex(b")") + 2 :].split()[1])  # after the command, which may hold spaces
            children.setdefault(parent, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found
