"""Which process is this, and is another one still alive?

`identity()` names the running process as "host:pid:start" (the start is the kernel's
start time of the process on Linux, so a pid the system has since given to another process
is not mistaken for the first). `is_gone(owner)` is True only when it is certain: the owner
ran on this host and that process no longer exists. From another host nothing is certain;
callers fall back to a timeout.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache

HOST = socket.gethostname()


def _start_of(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or "" where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""  # field 22 of the whole line


@lru_cache(maxsize=4)
def _identity(pid: int) -> str:
    return f"{HOST}:{pid}:{_start_of(pid)}"


def identity() -> str:
    return _identity(os.getpid())  # keyed by pid: a forked child names itself anew


def is_local(owner: str | None) -> bool:
    """Whether `owner` (an `identity()`) ran on this host, where its liveness is known."""
    return bool(owner) and str(owner).partition(":")[0] == HOST


def is_gone(owner: str | None) -> bool:
    if not owner or not is_local(owner):
        return False
    pid_text, _, start = owner.partition(":")[2].partition(":")
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists (another user's process)
    return bool(start) and _start_of(pid) not in ("", start)
