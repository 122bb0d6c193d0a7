"""Which process is this, and is another one still alive?

`identity()` names the running process as "host:pid:start" (the start is the kernel's
start time of the process on Linux, so a pid the system has since given to another process
is not mistaken for the first). `is_gone(owner)` is True only when it is certain: the owner
ran on this host and that process no longer exists. From another host nothing is certain;
callers fall back to a timeout.

`child_env()` and `die_with_parent()` keep supervised processes (the dev stack's web,
worker and scheduler, the worker's RQ child) from outliving their supervisor.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
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


#: set by a supervising process in its children's environment: the pid they must not outlive
PARENT_ENV = "BUNBASE_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child that must die with this process (see `die_with_parent`)."""
    return {**(env if env is not None else os.environ), PARENT_ENV: str(os.getpid())}


def die_with_parent() -> None:
    """If a supervisor started this process (`child_env`), have the kernel send it SIGTERM
    when that supervisor dies — even by SIGKILL — so it is never left orphaned. If the
    supervisor is already gone, exit now. Linux only (elsewhere nothing happens)."""
    parent = os.environ.get(PARENT_ENV, "")
    if not parent.isdigit() or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(parent):  # it died before the line above took effect
        os.kill(os.getpid(), signal.SIGTERM)
