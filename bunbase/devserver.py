"""`make run`: one command for web + worker + scheduler on embedded SQLite and Redis."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import func, select

from bunbase import redis_conn
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


def run_dev(app: Flask, *, host: str, port: int) -> None:
    upgrade(revision="heads")
    creds = seed_demo(app)
    env = dict(os.environ, REDIS_URL=redis_conn.url(), PYTHONUNBUFFERED="1")
    # links in mails (invitations) point at the address this stack serves, whatever PORT is
    env.setdefault("BUNBASE_PUBLIC_URL", f"http://{host}:{port}")
    bindir = Path(sys.executable).parent
    commands = [
        [
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
            str(app.extensions["bunbase"].settings.request_timeout),
            "app:create_app()",
        ],
        [str(bindir / "flask"), "--app", "app", "bunbase", "worker"],
        [str(bindir / "flask"), "--app", "app", "bunbase", "scheduler"],
    ]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True) for cmd in commands]
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
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.3)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)  # its whole group: the worker's child too
                p.wait(timeout=5)
        app.extensions["bunbase"].buffer.close()
        redis_conn.stop_embedded()
        click.echo("stopped web, worker, scheduler and the embedded Redis")
