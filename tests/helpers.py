"""Small helpers shared by the kernel tests: counting rows across tenants, Redis state."""

from __future__ import annotations

from typing import Any

from flask import Flask
from rq import Queue
from sqlalchemy import func, select

from bunbase import redis_conn
from bunbase.db import db
from bunbase.tenancy import unscoped

JOBS_KEY = "testkit:jobs"


def count(app: Flask, model: Any, *where: Any) -> int:
    """Rows of `model` in the database, across every tenant."""
    with app.app_context(), unscoped():
        n = db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0
        db.session.remove()
    return int(n)


def rows(app: Flask, model: Any, *where: Any) -> list[Any]:
    """Rows of `model` (detached), across every tenant."""
    with app.app_context(), unscoped():
        found = list(db.session.scalars(select(model).where(*where)))
        db.session.expunge_all()
        db.session.remove()
    return found


def queue_len(name: str = "default") -> int:
    return int(Queue(name, connection=redis_conn.client()).count)


def recorded_jobs() -> list[str]:
    return [v.decode() for v in redis_conn.client().lrange(JOBS_KEY, 0, -1)]


def run_jobs(app: Flask) -> None:
    from bunbase import outbox
    from bunbase.worker import run_worker

    outbox.settle()  # the courier pushes after commit, in the background

    run_worker(app, ["default"], burst=True)


def assert_failure(resp: Any, status: int, code: str) -> dict[str, Any]:
    """The failure envelope, exactly: {"ok": false, "error": {code, message, details}, trace_id}."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"ok", "error", "trace_id"}, body
    assert body["ok"] is False
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["trace_id"], str) and body["trace_id"]
    assert resp.headers["X-Trace-Id"] == body["trace_id"]
    return body


def assert_success(resp: Any, *, is_run: bool = True) -> dict[str, Any]:
    """The success envelope, exactly: {"ok": true, "data", "run_id", "trace_id"}.

    `is_run=False` for platform endpoints that are not actions (their run_id is null).
    """
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"ok", "data", "run_id", "trace_id"}, body
    assert body["ok"] is True
    if is_run:
        assert body["run_id"].startswith("run_")
        assert resp.headers["X-Run-Id"] == body["run_id"]
    else:
        assert body["run_id"] is None
    assert resp.headers["X-Trace-Id"] == body["trace_id"]
    return body
