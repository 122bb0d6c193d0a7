"""Scenario testing: `api`, `worker.drain()` and `clock.advance("7d")`.

    def test_trial_lifecycle(app, tenant):
        s = scenario(app, token=tenant.token, tenant=tenant.id)
        s.api.run("billing.trial.start", {"orgId": org_id, "days": 14})
        s.clock.advance("7d")
        s.worker.drain()

`service_ctx(app, tenant_id)` is a `Context` for setting things up as the platform would
(one unit of work: committed, its jobs and events sent, when the block ends), and
`settle(app)` waits until everything written in the background (run records, pushes to
Redis) has landed, for a test that reads it straight from the database.

`worker.drain()` runs everything that is due — schedules, delayed jobs, retries, workflow
waits — and every queued job, again and again until nothing is left; time only moves when
the test moves `clock`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Flask
from rq import Queue, SimpleWorker

from bunbase import events, jobs, outbox, redis_conn
from bunbase.clock import Clock, clock
from bunbase.context import Context
from bunbase.db import db


class ApiError(AssertionError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body


@dataclass
class Api:
    app: Flask
    token: str | None = None
    tenant: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        out = dict(self.headers)
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        if self.tenant:
            out["X-Tenant-Id"] = self.tenant
        out.update(extra or {})
        return out

    def request(self, method: str, path: str, json: Any = None, **kw: Any) -> Any:
        client = self.app.test_client()
        resp = client.open(path, method=method, json=json, headers=self._headers(kw.get("headers")))
        body = resp.get_json(silent=True)
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, body)
        return body["data"] if isinstance(body, dict) and "data" in body else body

    def run(self, action: str, input: dict[str, Any] | None = None, **kw: Any) -> Any:
        """Run an action through POST /v1/actions/<name>/run; returns `data` or raises."""
        return self.request("POST", f"/v1/actions/{action}/run", json=input or {}, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=json, **kw)


@dataclass
class Worker:
    app: Flask

    def drain(self, max_rounds: int = 200) -> int:
        """Run due work and queued jobs until idle; returns how many jobs ran."""
        from bunbase.scheduler import run_due

        jobs.bind_app(self.app)
        conn = redis_conn.client()
        queues = [Queue(name, connection=conn) for name in jobs.QUEUES]
        total = 0
        for _ in range(max_rounds):
            outbox.settle()  # pushes the courier still holds go out first
            with self.app.app_context():
                outbox.relay(older_than=timedelta(0))
                jobs.relay_lost(older_than=timedelta(0))
                due = run_due()
                db.session.remove()
            pending = sum(q.count for q in queues)
            if not due and not pending:
                with self.app.app_context():
                    lost = events.relay_undispatched(older_than=timedelta(0))
                    db.session.remove()
                if not lost:
                    return total
            worker = SimpleWorker(queues, connection=conn)
            worker.work(burst=True, logging_level="WARNING")
            total += worker.successful_job_count + worker.failed_job_count
        raise AssertionError(f"the queues did not drain in {max_rounds} rounds")


@dataclass
class Scenario:
    api: Api
    worker: Worker
    clock: Clock


def scenario(app: Flask, *, token: str | None = None, tenant: str | None = None) -> Scenario:
    return Scenario(Api(app, token, tenant), Worker(app), clock)


@contextmanager
def service_ctx(
    app: Flask, tenant_id: str, *, trigger: str = "test", hand_over: bool = True
) -> Iterator[Context]:
    """A system `Context` in a tenant, as a job or an action has one: the block is one
    transaction, committed when it ends; its jobs and events are in Redis when the block is
    left (`hand_over=False`: as if the process died right after the commit)."""
    from bunbase import tenancy_cache
    from bunbase.work import unit_of_work

    with app.app_context():
        try:
            with unit_of_work(
                tenancy_cache.tenant_ref(tenant_id), trigger=trigger, hand_over=hand_over
            ) as ctx:
                yield ctx
        finally:
            db.session.remove()
    outbox.settle()  # the pushes have reached Redis when the block is left


def settle(app: Flask) -> None:
    """Everything the platform writes in the background — run records, their logs, access
    decisions, audit entries of failed sign-ins, pushes to Redis — is written now."""
    outbox.settle()
    app.extensions["bunbase"].buffer.flush()
