"""Is a process still running? Used to recognise what killed processes left behind.

A process killed with SIGKILL cannot clean up: its temp files stay (:mod:`customer_value.io`) and its
MLflow runs stay RUNNING (:mod:`customer_value.tracking`). Both record the writer's pid, and, where
it matters across pid reuse, the process start time, so a later process can tell.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["process_start", "pid_alive"]


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None without /proc."""
    fields = _stat(pid)
    return None if fields is None else fields[19]


def pid_alive(pid: int, started: str | None = None) -> bool:
    """Whether ``pid`` runs (and, given ``started``, is still the process that started then).

    A zombie (killed, not yet reaped by its parent) counts as dead; so does a new process that
    reuses the pid (its start time differs). Without /proc, ``kill(pid, 0)`` decides.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    fields = _stat(pid)
    if fields is None:
        return True
    if fields[0] in ("Z", "X"):
        return False
    return not started or started == fields[19]
