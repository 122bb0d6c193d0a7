"""The honest baselines of `bench/api.py`: a separate plain Flask app, not Bunbase.

`gunicorn 'bench.baseline:baseline_app()'` (the same worker settings as the Bunbase app)
serves two routes:

* `GET /bare`: `{"ok": true}` from a plain Flask app with no hooks at all;
* `POST /tickets`: what `support.ticket.create` does, written by hand with the database
  driver and no platform: look the bearer session up (live, not revoked, its user active),
  check that the caller's role in the org grants `ticket:create`, insert the ticket, its
  audit entry and the `ticket.created` event in one transaction, answer JSON. One
  connection per worker, kept open, as a hand-written service would; psycopg on Postgres,
  sqlite3 (WAL, `BEGIN IMMEDIATE`, a busy timeout) on SQLite.

It reads the database Bunbase uses (DATABASE_URL, else `<BUNBASE_INSTANCE_DIR>/bunbase.db`)
so both write the same tables.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request

GRANTING = ("ticket:create", "ticket:*", "*:create", "*")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _id(prefix: str) -> str:
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    return prefix + "_" + "".join(_CROCKFORD[(value >> s) & 31] for s in range(125, -1, -5))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Store:
    """One connection and the four statements, with the driver's own parameter style."""

    def __init__(self) -> None:
        url = os.environ.get("DATABASE_URL", "")
        self.postgres = url.startswith("postgres")
        if self.postgres:
            import psycopg

            self.conn: Any = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
            self.mark = "%s"
        else:
            path = Path(os.environ["BUNBASE_INSTANCE_DIR"]) / "bunbase.db"
            self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.mark = "?"

    def sql(self, text: str) -> str:
        """`%s` a parameter, `%j` a JSON parameter (Postgres casts it)."""
        return text.replace("%j", "%s::json" if self.postgres else "%s").replace("%s", self.mark)

    def create_ticket(self, token: str, tenant: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        c = self.conn
        now = _now()
        if self.postgres:
            c.execute("BEGIN")
        else:
            c.execute("BEGIN IMMEDIATE")
        try:
            found = c.execute(self.sql(
                "SELECT s.user_id FROM auth_sessions s JOIN users u ON u.id = s.user_id "
                "WHERE s.token_hash = %s AND s.tenant_id = %s AND s.revoked_at IS NULL "
                "AND s.expires_at > %s AND u.is_active"),
                (hashlib.sha256(token.encode()).hexdigest(), tenant, now)).fetchone()
            if found is None:
                c.execute("ROLLBACK")
                return 401, {"ok": False, "error": {"code": "unauthenticated"}}
            user_id, org_id = found[0], str(body.get("orgId", ""))
            marks = ", ".join([self.mark] * len(GRANTING))
            allowed = c.execute(self.sql(
                "SELECT 1 FROM memberships m JOIN rbac_role_permissions p ON p.role_id = m.role_id "
                "WHERE m.tenant_id = %s AND m.org_id = %s AND m.principal_type = 'user' "
                f"AND m.principal_id = %s AND p.permission IN ({marks}) LIMIT 1"),
                (tenant, org_id, user_id, *GRANTING)).fetchone()
            if allowed is None:
                c.execute("ROLLBACK")
                return 404, {"ok": False, "error": {"code": "not_found"}}
            ticket_id = _id("tkt")
            c.execute(self.sql(
                "INSERT INTO support_tickets (tenant_id, id, org_id, subject, body, priority, status, "
                "created_by, created_at) VALUES (%s, %s, %s, %s, %s, %s, 'open', %s, %s)"),
                (tenant, ticket_id, org_id, body["subject"], body["body"], body.get("priority", "normal"),
                 user_id, now))
            diff = json.dumps({"after": {"subject": body["subject"], "status": "open"}})
            c.execute(self.sql(
                "INSERT INTO audit_entries (tenant_id, id, actor_type, actor_id, action, target_type, "
                "target_id, org_id, diff, created_at) VALUES (%s, %s, 'user', %s, "
                "'support.ticket.create', 'ticket', %s, %s, %j, %s)"),
                (tenant, _id("aud"), user_id, ticket_id, org_id, diff, now))
            payload = json.dumps({"ticketId": ticket_id, "orgId": org_id, "subject": body["subject"],
                                  "priority": body.get("priority", "normal")})
            c.execute(self.sql(
                "INSERT INTO events (tenant_id, id, name, payload, created_at) "
                "VALUES (%s, %s, 'ticket.created', %j, %s)"),
                (tenant, _id("evt"), payload, now))
            c.execute("COMMIT")
        except Exception:
            c.execute("ROLLBACK")
            raise
        return 200, {"ok": True, "data": {"ticketId": ticket_id, "status": "open"},
                     "trace_id": secrets.token_hex(16)}


def baseline_app() -> Flask:
    app = Flask("bench_baseline")
    store: list[Store] = []  # one per worker, opened on first use (after the fork)

    @app.get("/bare")
    def bare() -> Response:
        return jsonify({"ok": True})

    @app.post("/tickets")
    def tickets() -> tuple[Response, int]:
        if not store:
            store.append(Store())
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        status, body = store[0].create_ticket(token, request.headers.get("X-Tenant-Id", ""),
                                              json.loads(request.get_data()))
        return jsonify(body), status

    ready_dir = os.environ.get("BENCH_READY_DIR")
    if ready_dir:
        Path(ready_dir, f"baseline-{os.getpid()}").touch()
    return app
