"""Fixtures: a real database (SQLite file, or a fresh Postgres database when DATABASE_URL
points at Postgres), a real Redis (embedded, or the REDIS_URL db), one migrated app per
session, and a clean slate between tests.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bunbase import outbox, redis_conn, tenancy_cache
from bunbase.clock import clock
from bunbase.config import Settings
from bunbase.db import db
from bunbase.testing import settle
from modules.rbac import grants_cache


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    base = make_url(url)
    name = f"{base.database or 'bunbase'}_t{uuid.uuid4().hex[:10]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        client = redis.Redis.from_url(url)
        client.flushdb()
        yield url
        client.flushdb()
        client.close()
        return
    yield redis_conn.start_embedded(tmp_path_factory.mktemp("redis") / "redis.rdb")
    redis_conn.stop_embedded()


@dataclass
class Mailbox:
    """Messages received by the test SMTP server (aiosmtpd on loopback)."""

    url: str
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.messages.append(msg)
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def last_token(self, address: str) -> str:
        """The `bbi_...` invitation code of the latest message to `address`."""
        found = self.to(address)
        assert found, f"no mail to {address}; got {[m['To'] for m in self.messages]}"
        body = found[-1].get_content()
        tokens = re.findall(r"Invitation code: (bbi_[A-Za-z0-9_-]+)", body)
        assert tokens, body
        return tokens[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server on a free loopback port; the app sends its mail here."""
    from aiosmtpd.controller import Controller

    port = _free_port()
    box = Mailbox(url=f"smtp://127.0.0.1:{port}")
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: Mailbox) -> Mailbox:
    smtp_server.clear()
    return smtp_server


@pytest.fixture(scope="session")
def app(
    database_url: str,
    redis_url: str,
    smtp_server: Mailbox,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Flask]:
    from flask_migrate import upgrade

    from app import create_app

    settings = Settings(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY="test-secret",
        BUNBASE_INSTANCE_DIR=tmp_path_factory.mktemp("instance"),
        BUNBASE_EXTRA_MODULES="tests.fixture_modules",
        BUNBASE_BUFFER_INTERVAL=0.2,
        BUNBASE_LOG_LEVEL=os.environ.get("TEST_LOG_LEVEL", "CRITICAL"),
        SMTP_URL=smtp_server.url,
    )
    flask_app = create_app(settings, TESTING=True)
    with flask_app.app_context():
        upgrade(revision="heads")
    yield flask_app
    flask_app.extensions["bunbase"].buffer.close()
    with flask_app.app_context():
        db.session.remove()
        db.engine.dispose()


def _wipe(app: Flask) -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            # DELETE beats TRUNCATE on a few dozen near-empty tables (no file rewrites);
            # one round trip, children before parents
            db.session.execute(text("; ".join(f'DELETE FROM "{t}"' for t in tables)))
        else:
            for table in tables:
                db.session.execute(text(f'DELETE FROM "{table}"'))
        db.session.commit()
        db.session.remove()


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with empty tables, an empty Redis db and the real clock."""
    yield
    if "app" not in request.fixturenames:
        return
    app: Flask = request.getfixturevalue("app")
    outbox.settle()  # this test's pushes land before the wipe, not in the next test's Redis
    settle(app)
    _wipe(app)
    redis_conn.client().flushdb()
    clock.reset()
    tenancy_cache.invalidate()
    with app.app_context():
        grants_cache.changed()  # the wipe was raw SQL: no session saw the grants go


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Tenant:
    id: str
    slug: str
    email: str
    password: str
    token: str
    org_id: str = ""

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "X-Tenant-Id": self.id, **extra}

    def ticket(self, **overrides: Any) -> dict[str, Any]:
        """The handbook's ticket, in this tenant's org."""
        return {**TICKET, "orgId": self.org_id, **overrides}


def make_tenant(app: Flask, slug: str) -> Tenant:
    from bunbase.seed import create_tenant

    with app.app_context():
        seeded = create_tenant(slug, slug.title(), admin_email=f"admin@{slug}.test")
        db.session.remove()
    resp = app.test_client().post(
        "/v1/auth/login",
        json={"email": seeded.admin_email, "password": seeded.admin_password},
        headers={"X-Tenant-Id": seeded.slug},
    )
    assert resp.status_code == 200, resp.json
    tenant = Tenant(seeded.tenant_id, slug, seeded.admin_email, seeded.admin_password,
                    resp.json["data"]["token"])
    org = app.test_client().post("/v1/orgs", json={"name": f"{slug.title()} Org"},
                                 headers=tenant.headers())
    assert org.status_code == 200, org.json
    tenant.org_id = org.json["data"]["orgId"]
    return tenant


@pytest.fixture
def tenant_a(app: Flask) -> Tenant:
    return make_tenant(app, "alpha")


@pytest.fixture
def tenant_b(app: Flask) -> Tenant:
    return make_tenant(app, "bravo")


TICKET: dict[str, Any] = {
    "orgId": "org_1",
    "subject": "Cannot login",
    "body": "SSO redirect loop",
    "priority": "high",
}
