"""`make run`'s stack survives a crash and leaves nothing behind (issue 11, finding 11).

The probe: killing the worker supervisor stopped web and scheduler too and orphaned the RQ
child. Here the real dev stack (`flask --app app bunbase dev`, on its own SQLite file and
embedded Redis) is started, its worker supervisor is SIGKILLed: its RQ child goes with it,
a new worker comes up, and the web server answers throughout. Then Ctrl-C (SIGINT) stops
every process the stack started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bunbase.config import ROOT

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, None when it is gone (zombies count as gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (None if fields[0] in ("Z", "X") else (fields[0], int(fields[1])))  # type: ignore[return-value]


def _alive(pid: int) -> bool:
    return _stat(pid) is not None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[1] == pid:
                found.append(int(entry.name))
    return found


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            out.add(child)
            todo.append(child)
    return out


def _wait(what: str, check: Callable[[], object], timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v1/system/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _worker(stack: int, exclude: set[int] = frozenset()) -> tuple[int, int] | None:  # type: ignore[assignment]
    """(supervisor pid, its RQ child pid) of the stack's worker, once both run."""
    for pid in _children(stack):
        if pid not in exclude and " worker" in _cmdline(pid):
            kids = [k for k in _children(pid) if "--no-supervise" in _cmdline(k)]
            if kids:
                return pid, kids[0]
    return None


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(BUNBASE_INSTANCE_DIR=str(tmp_path), SECRET_KEY="devstack-test", PYTHONUNBUFFERED="1",
               BUNBASE_LOG_LEVEL="WARNING", PORT=str(port))
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "flask"), "--app", "app", "bunbase", "dev", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            for pid in _descendants(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.wait(timeout=10)


def test_a_killed_worker_supervisor_is_replaced_and_ctrl_c_stops_everything(stack):
    proc, url = stack
    _wait("the web server", lambda: _healthy(url), timeout=120)
    supervisor, rq_child = _wait("the worker and its RQ child", lambda: _worker(proc.pid))  # type: ignore[misc]
    web_and_scheduler = {p for p in _children(proc.pid) if p != supervisor}
    assert len(web_and_scheduler) == 2, [_cmdline(p) for p in web_and_scheduler]

    os.kill(supervisor, signal.SIGKILL)
    _wait("the orphaned RQ child to go", lambda: not _alive(rq_child), timeout=20)
    new_supervisor, new_child = _wait(  # type: ignore[misc]
        "a new worker", lambda: _worker(proc.pid, exclude={supervisor}), timeout=60)
    assert new_supervisor != supervisor and new_child != rq_child
    assert _healthy(url)  # the web server never stopped
    assert all(_alive(p) for p in web_and_scheduler)  # nor did the scheduler
    assert proc.poll() is None

    everything = _descendants(proc.pid)
    assert {new_supervisor, new_child} <= everything
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    _wait("every process of the stack to stop", lambda: not any(_alive(p) for p in everything), timeout=20)


def test_a_supervised_child_dies_with_its_supervisor(tmp_path):
    """`die_with_parent`: a child whose supervisor is SIGKILLed gets SIGTERM from the kernel."""
    script = (
        "import os, subprocess, sys, time\n"
        "from bunbase import process\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'from bunbase import process; import time; process.die_with_parent(); time.sleep(60)'], "
        "env=process.child_env())\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        time.sleep(1.0)  # let the child set its death signal
        assert _alive(child)
        parent.kill()
        parent.wait(timeout=10)
        _wait("the child to die with its parent", lambda: not _alive(child), timeout=10)
    finally:
        parent.kill()
        parent.wait(timeout=10)
        if parent.stdout is not None:
            parent.stdout.close()


def test_a_cli_command_in_a_second_terminal_leaves_the_stack_running(stack, tmp_path):
    """Issue 12: `tenant seed` next to `make run` joined the embedded Redis and stopped it on
    exit, taking the whole stack down. Now it leaves it running, and its tenants sign in."""
    import http.cookiejar
    import json
    import re

    proc, url = stack
    _wait("the web server", lambda: _healthy(url), timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(BUNBASE_INSTANCE_DIR=str(tmp_path), SECRET_KEY="devstack-test", BUNBASE_LOG_LEVEL="WARNING")
    out = subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "app", "bunbase", "tenant", "seed",
         "--count", "2", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    seeded = json.loads(out[out.index("["):])
    assert len(seeded) == 2
    time.sleep(1.0)
    assert _healthy(url) and proc.poll() is None  # Redis and the stack are still there
    for tenant in seeded:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"{url}/studio/login").read().decode()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"email": tenant["admin_email"], "password": tenant["admin_password"],
                                       "workspace": tenant["slug"], "csrf_token": csrf}).encode()
        landed = opener.open(f"{url}/studio/login", data=form)
        assert landed.geturl().rstrip("/").endswith("/studio"), landed.geturl()
