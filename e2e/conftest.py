"""Browser fixtures: the app served on loopback by a real WSGI server in a thread, and
Debian's Chromium driven by Playwright. Every page fails its test on a JavaScript error.
"""

from __future__ import annotations

import email
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import make_server

from bunbase.seed import create_tenant

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def live_server(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    pg.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    pg.set_default_timeout(10_000)
    yield pg
    context.close()
    assert errors == [], errors


@pytest.fixture
def operator(app: Flask) -> dict[str, Any]:
    """A platform operator in tenant "demo" who owns org "Demo Support" (`org_id`), a bearer
    `token` for the API, and a second tenant "acme"."""
    from bunbase.db import db

    with app.app_context():
        demo = create_tenant("demo", "Demo Company", admin_email="operator@bunbase.local",
                             admin_password="operator-pass-1", operator=True)
        acme = create_tenant("acme", "Acme Inc", admin_email="admin@acme.test",
                             admin_password="acme-pass-1")
        db.session.remove()
    client = app.test_client()
    login = client.post("/v1/auth/login", headers={"X-Tenant-Id": "demo"},
                        json={"email": demo.admin_email, "password": demo.admin_password})
    assert login.status_code == 200, login.json
    token = login.json["data"]["token"]
    org = client.post("/v1/orgs", json={"name": "Demo Support"},
                      headers={"Authorization": f"Bearer {token}", "X-Tenant-Id": "demo"})
    assert org.status_code == 200, org.json
    return {"demo": demo, "acme": acme, "token": token, "org_id": org.json["data"]["orgId"]}


def sign_in(page: Page, email: str, password: str, workspace: str = "") -> None:
    page.goto("/studio/login")
    page.fill("#email", email)
    page.fill("#password", password)
    if workspace:
        page.fill("#workspace", workspace)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/studio/")


def mail_bodies(app: Flask, to: str, request: pytest.FixtureRequest) -> list[str]:
    """Deliver queued mail (a burst worker), then the bodies of the messages to `to`, oldest
    first: from the test SMTP server when SMTP_URL is set, else from the .eml files."""
    from rq import Queue

    from bunbase import outbox, redis_conn
    from bunbase.worker import run_worker

    names = ["high", "default", "low"]
    for _ in range(10):  # a job may queue the next (the mail job after a fan-out, say)
        outbox.settle()  # the courier pushes after commit, in the background: wait for it
        if not any(Queue(n, connection=redis_conn.client()).count for n in names):
            break
        run_worker(app, names, burst=True)
    settings = app.extensions["bunbase"].settings
    if settings.smtp_url:
        return [m.get_content() for m in request.getfixturevalue("smtp_server").to(to)]
    folder = settings.instance_dir / "mail"
    paths = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
    messages = [email.message_from_bytes(p.read_bytes()) for p in paths]
    return [m.get_payload(decode=True).decode() for m in messages if m["To"] == to]
