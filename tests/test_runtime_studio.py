"""Studio → Runtime → Jobs without a browser: per queue the depth, the age of the oldest
waiting job and the running count. A job waits from the moment it became due, so a delayed
(or retried, or replayed) job is not counted as old as its creation."""

from __future__ import annotations

import re
import time
from typing import Any

from rq.registry import StartedJobRegistry

from bunbase import jobs, redis_conn
from bunbase.clock import clock
from bunbase.db import db
from bunbase.tenancy import tenant_scope
from bunbase.testing import service_ctx, settle
from modules.runtime import services
from tests.test_users import studio_client


def _enqueue(app, tenant_id: str, name: str, payload: dict[str, Any], **options: Any) -> str:
    with service_ctx(app, tenant_id) as ctx:
        return jobs.enqueue(ctx, name, payload, **options)


def _stats(app, tenant_id: str) -> dict[str, dict[str, Any]]:
    with app.app_context(), tenant_scope(tenant_id):
        out = {q["name"]: q for q in services.queue_stats(db.session)}
        db.session.remove()
    return out


def test_jobs_page_shows_depth_oldest_age_and_running_per_queue(app, tenant_a):
    _enqueue(app, tenant_a.id, "testkit.record", {"note": "later"}, priority="high", delay="1h")
    _enqueue(app, tenant_a.id, "testkit.record", {"note": "now"})
    clock.advance("1h")
    with app.app_context():
        assert jobs.enqueue_due() == 1  # the delayed job is due: queued on "high" now
        db.session.remove()
    clock.advance("2m")
    # a worker holds one job of the low queue
    low = jobs.queue("low")
    redis_conn.client().zadd(StartedJobRegistry(queue=low).key, {"job_busy": time.time() + 3600})

    stats = _stats(app, tenant_a.id)
    assert (stats["default"]["depth"], stats["default"]["queued"]) == (1, 1)
    assert round(stats["default"]["oldest_age"]) == 3720  # created 62 minutes ago
    assert (stats["high"]["depth"], stats["high"]["queued"]) == (1, 1)
    assert round(stats["high"]["oldest_age"]) == 120  # due for 2 minutes, not 62
    assert stats["low"]["running"] == 1 and stats["low"]["oldest_age"] is None

    page = studio_client(app, tenant_a).get("/studio/m/runtime/jobs").get_data(as_text=True)
    cards = dict(re.findall(r'data-queue="(\w+)">(.*?)</a>', page, re.S))
    assert set(cards) == {"high", "default", "low"}
    assert 'data-kpi="depth">1<' in cards["high"]
    assert '<span data-kpi="oldest">2m</span>' in cards["high"]
    assert '<span data-kpi="oldest">1h</span>' in cards["default"]
    assert '<span data-kpi="queue-running">1</span> running' in cards["low"]
    assert re.search(r'data-kpi="running">1<', page)  # the total over the queues


def test_jobs_page_finds_a_job_by_id_or_trace_and_keeps_the_search_for_bulk(app, tenant_a):
    first = _enqueue(app, tenant_a.id, "testkit.record", {"note": "one"})
    second = _enqueue(app, tenant_a.id, "testkit.record", {"note": "two"})
    (row,) = [r for r in _rows(app, first)]
    studio = studio_client(app, tenant_a)
    for needle in (first, row.trace_id):
        page = studio.get(f"/studio/m/runtime/jobs?q={needle}").get_data(as_text=True)
        assert f'data-job-id="{first}"' in page and f'data-job-id="{second}"' not in page
        assert f'name="q" value="{needle}"' in page  # the search box and the bulk form keep it
    page = studio.get("/studio/m/runtime/jobs?q=job_nothing").get_data(as_text=True)
    assert "No jobs match these filters" in page


def _rows(app, job_id: str) -> list[Any]:
    from bunbase.runtime_models import JobRun
    from tests.helpers import rows
    return rows(app, JobRun, JobRun.id == job_id)


def test_a_studio_page_shows_a_run_right_after_it_ran(app, client, tenant_a, monkeypatch):
    """Run records are written in batches; Studio writes what is pending before it builds a
    page, so an operator sees the call they just made without waiting for the batch."""
    studio = studio_client(app, tenant_a)
    settle(app)
    buffer = app.extensions["bunbase"].buffer
    monkeypatch.setattr(buffer, "interval", 3600.0)  # no timed flush during the test
    resp = client.post("/v1/support/tickets", json=tenant_a.ticket(), headers=tenant_a.headers())
    run_id = resp.get_json()["run_id"]
    assert buffer._size() >= 1  # the run is still waiting for its batch
    page = studio.get(f"/studio/runtime/actions/{run_id}")
    assert page.status_code == 200 and "support.ticket.create" in page.get_data(as_text=True)
