"""`make run`: one command for web + worker + scheduler on embedded SQLite and Redis.

The command supervises the three: one that exits is restarted (at once if it had run a
while, else after 1, 2, 4 ... up to 30 s), each runs in its own process group that is
cleared when it exits, and each dies with the supervisor even if that is killed
(`bunbase.process.die_with_parent`). Ctrl-C stops everything, the embedded Redis last.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import func, select

from bunbase import process, redis_conn
from bunbase.config import ROOT
from bunbase.db import db
from bunbase.models import Tenant

CREDENTIALS = "demo-credentials.json"


def seed_demo(app: Flask) -> dict[str, Any]:
    """Seed the demo tenants on first start; return the Studio login."""
    from bunbase.seed import create_tenant

    settings = app.extensions["bunbase"].settings
    path: Path = settings.instance_dir / CREDENTIALS
    if path.exists() and (db.session.scalar(select(func.count()).select_from(Tenant)) or 0):
        return dict(json.loads(path.read_text()))
    demo = create_tenant(
        "demo",
        "Demo Company",
        admin_email="operator@bunbase.local",
        admin_name="Platform Operator",
        operator=True,
    )
    create_tenant("acme", "Acme Inc", admin_email="admin@acme.test", admin_name="Acme Admin")
    from bunbase import hooks, tenancy_cache
    from bunbase.tenancy import tenant_scope

    with tenant_scope(demo.tenant_id):
        hooks.fire("demo_seed", tenancy_cache.tenant_ref(demo.tenant_id), demo)
        db.session.commit()
    creds = {
        "tenant": demo.slug,
        "tenant_id": demo.tenant_id,
        "email": demo.admin_email,
        "password": demo.admin_password,
    }
    path.write_text(json.dumps(creds, indent=2))
    path.chmod(0o600)
    return creds


#: a process that ran at least this long before dying is restarted at once
STABLE_AFTER = 30.0
MAX_BACKOFF = 30.0
STOP_GRACE = 10.0


@dataclass
class Child:
    """One supervised process of the dev stack and when it may start again."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    start_at: float = 0.0

    def start(self, env: dict[str, str]) -> None:
        # its own session: Ctrl-C reaches the supervisor only, and the whole group (the
        # worker's RQ child with it) can be signalled at once
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=process.child_env(env), start_new_session=True)
        self.started = time.monotonic()

    def exited(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def reap(self, now: float) -> float:
        """After an exit: clear what is left of its process group, and say how long to wait
        before starting it again (doubling while it keeps dying young)."""
        assert self.proc is not None
        _signal_group(self.proc.pid, signal.SIGKILL)
        self.failures = 0 if now - self.started >= STABLE_AFTER else self.failures + 1
        self.proc = None
        delay = min(MAX_BACKOFF, 2.0 ** (self.failures - 1)) if self.failures else 0.5
        self.start_at = now + delay
        return delay


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _commands(app: Flask, host: str, port: int) -> list[Child]:
    bindir = Path(sys.executable).parent
    timeout = str(app.extensions["bunbase"].settings.request_timeout)
    web = [
        str(bindir / "gunicorn"),
        "--bind",
        f"{host}:{port}",
        "--workers",
        "1",
        "--threads",
        "8",
        "--worker-class",
        "gthread",
        "--graceful-timeout",
        "5",
        "--timeout",
        timeout,
        "--config",
        "python:bunbase.gunicorn_conf",
        "app:create_app()",
    ]
    flask = [str(bindir / "flask"), "--app", "app", "bunbase"]
    return [Child("web", web), Child("worker", [*flask, "worker"]), Child("scheduler", [*flask, "scheduler"])]


def run_dev(app: Flask, *, host: str, port: int) -> None:
    """Migrate, seed, then run web + worker + scheduler until Ctrl-C, restarting whichever
    dies (with backoff); nothing is left running when it stops, or when it is killed."""
    upgrade(revision="heads")
    creds = seed_demo(app)
    env = dict(os.environ, REDIS_URL=redis_conn.url(), PYTHONUNBUFFERED="1")
    # links in mails (invitations) point at the address this stack serves, whatever PORT is
    env.setdefault("BUNBASE_PUBLIC_URL", f"http://{host}:{port}")
    children = _commands(app, host, port)
    for child in children:
        child.start(env)
    url = f"http://{host}:{port}"
    click.echo(
        "\n  Bunbase is running.\n"
        f"  API     {url}/v1   (OpenAPI: {url}/v1/openapi.json)\n"
        f"  Studio  {url}/studio\n"
        f"  Login   {creds['email']} / {creds['password']}  (workspace: {creds['tenant']})\n"
        "  Stop    Ctrl-C\n"
    )
    stopping = False

    def _stop(_sig: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping:
            _supervise_once(children, env)
            time.sleep(0.3)
    finally:
        _stop_all(children)
        app.extensions["bunbase"].buffer.close()
        redis_conn.stop_embedded()
        click.echo("stopped web, worker, scheduler and the embedded Redis")


def _supervise_once(children: list[Child], env: dict[str, str]) -> None:
    now = time.monotonic()
    for child in children:
        if child.proc is None:
            if now >= child.start_at:
                child.start(env)
                click.echo(f"  {child.name} started again (pid {child.proc.pid if child.proc else '?'})")
            continue
        code = child.exited()
        if code is not None:
            delay = child.reap(now)
            click.echo(f"  {child.name} exited (code {code}); restarting in {delay:g} s", err=True)


def _stop_all(children: list[Child]) -> None:
    """SIGTERM to every group, then SIGKILL to what is still there after STOP_GRACE."""
    running = [c.proc for c in children if c.proc is not None and c.proc.poll() is None]
    for proc in running:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        _signal_group(proc.pid, signal.SIGKILL)  # its whole group: the worker's child too
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
