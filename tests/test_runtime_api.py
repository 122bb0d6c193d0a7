"""The runtime module's HTTP API: jobs (enqueue, get, list, replay, discard, bulk by filter),
schedules, workflow runs (start, get, pause, resume, cancel, replay) and events, scoped to
the caller's tenant and to tenant administrators."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from bunbase import Contract
from bunbase.clock import clock
from bunbase.context import Context
from bunbase.db import db
from bunbase.jobs import PermanentError, job
from bunbase.models import AuditEntry
from bunbase.tenancy import tenant_scope
from bunbase.testing import Worker, service_ctx
from bunbase.workflows import step, wait, workflow
from modules.audit.services import diff_rows
from tests.fixtures import Tenant
from tests.helpers import rows as all_rows

FLAGS: dict[str, bool] = {}


@job("rtapi.echo", retries=1, api=True)
def echo(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"echo": payload}


@job("rtapi.flaky", retries=3, api=True)
def flaky(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if not FLAGS.get(payload.get("flag", "fixed")):
        raise PermanentError("the upstream said no")
    return {"ok": True, "payload": payload}


class OrderInput(Contract):
    order_id: str
    amount: int = 1


def _reserve(input: OrderInput, ctx: Context) -> dict[str, Any]:
    return {"reserved": input.order_id}


def _charge(input: OrderInput, ctx: Context) -> dict[str, Any]:
    if not FLAGS.get("charge"):
        raise PermanentError("card declined")
    return {"charged": input.amount}


workflow(
    "rtapi.order",
    input=OrderInput,
    steps={"reserve": _reserve, "hold": wait.for_duration("1h"), "charge": _charge},
)


def _refund(input: OrderInput, ctx: Context) -> None:
    raise ConnectionError("the refund service is down")


workflow(
    "rtapi.saga",
    input=OrderInput,
    steps={"reserve": step(_reserve, compensate=_refund), "charge": _charge},
)


@pytest.fixture(autouse=True)
def _flags() -> Any:
    FLAGS.clear()
    yield
    FLAGS.clear()


def call(app: Flask, t: Tenant, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    resp = app.test_client().open(path, method=method, json=body, headers=t.headers())
    return resp.status_code, resp.get_json()


def ok(app: Flask, t: Tenant, method: str, path: str, body: Any = None) -> Any:
    status, payload = call(app, t, method, path, body)
    assert status == 200, payload
    return payload["data"]


def drain(app: Flask) -> None:
    Worker(app).drain()


# -- jobs --------------------------------------------------------------------------------------
def test_enqueue_get_and_list(app: Flask, tenant_a: Tenant) -> None:
    data = ok(app, tenant_a, "POST", "/v1/jobs", {"name": "rtapi.echo", "payload": {"n": 1}})
    assert data["status"] == "queued" and data["jobId"].startswith("job_")
    drain(app)
    got = ok(app, tenant_a, "GET", f"/v1/jobs/{data['jobId']}")
    assert got["status"] == "succeeded"
    assert got["attempts"] == 1 and got["maxAttempts"] == 2
    assert got["payload"] == {"n": 1} and got["result"] == {"echo": {"n": 1}}
    assert got["error"] is None and got["traceId"]
    assert [a["status"] for a in got["history"]["attempts"]] == ["succeeded"]
    assert got["timings"]["durationMs"] is not None and got["timings"]["startedAt"]
    assert got["source"] == "action:runtime.job.enqueue"

    listed = ok(app, tenant_a, "GET", "/v1/jobs?status=succeeded&name=rtapi.echo")
    assert listed["total"] == 1 and listed["items"][0]["jobId"] == data["jobId"]
    assert "payload" not in listed["items"][0]
    assert ok(app, tenant_a, "GET", "/v1/jobs?status=dead")["total"] == 0
    assert ok(app, tenant_a, "GET", "/v1/jobs?queue=high")["total"] == 0


def test_enqueue_options_and_validation(app: Flask, tenant_a: Tenant) -> None:
    delayed = ok(app, tenant_a, "POST", "/v1/jobs",
                 {"name": "rtapi.echo", "payload": {}, "delay": "2h", "priority": "high"})
    assert delayed["status"] == "scheduled"
    got = ok(app, tenant_a, "GET", f"/v1/jobs/{delayed['jobId']}")
    assert got["queue"] == "high" and got["runAt"]

    first = ok(app, tenant_a, "POST", "/v1/jobs", {"name": "rtapi.echo", "idempotencyKey": "k-1"})
    again = ok(app, tenant_a, "POST", "/v1/jobs", {"name": "rtapi.echo", "idempotencyKey": "k-1"})
    assert first["jobId"] == again["jobId"]

    status, body = call(app, tenant_a, "POST", "/v1/jobs", {"name": "no.such.job"})
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = call(app, tenant_a, "POST", "/v1/jobs", {"name": "rtapi.echo", "delay": "soon"})
    assert status == 400 and body["error"]["code"] == "validation_error"
    status, body = call(app, tenant_a, "POST", "/v1/jobs", {"name": "rtapi.echo", "priority": "urgent"})
    assert status == 400 and body["error"]["details"][0]["field"] == "priority"


def test_list_paginates_newest_first(app: Flask, tenant_a: Tenant) -> None:
    ids = [ok(app, tenant_a, "POST", "/v1/jobs", {"name": "rtapi.echo", "payload": {"i": i},
                                                  "idempotencyKey": f"page-{i}"})["jobId"]
           for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = ok(app, tenant_a, "GET", "/v1/jobs?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert page["total"] == 5
        seen += [i["jobId"] for i in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    # idempotent jobs have hash ids, yet the list is in creation order
    assert seen == list(reversed(ids))


def test_dead_job_replay_with_edited_payload_then_discard(app: Flask, tenant_a: Tenant) -> None:
    job_id = ok(app, tenant_a, "POST", "/v1/jobs", {"name": "rtapi.flaky", "payload": {"flag": "a"}})["jobId"]
    drain(app)
    dead = ok(app, tenant_a, "GET", f"/v1/jobs/{job_id}")
    assert dead["status"] == "dead" and "the upstream said no" in dead["error"]
    assert dead["attempts"] == 1  # PermanentError skips the retries

    FLAGS["b"] = True
    replayed = ok(app, tenant_a, "POST", f"/v1/jobs/{job_id}/replay", {"payload": {"flag": "b"}})
    assert replayed["status"] == "scheduled" and replayed["payload"] == {"flag": "b"}
    drain(app)
    done = ok(app, tenant_a, "GET", f"/v1/jobs/{job_id}")
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert len(done["history"]["replays"]) == 1
    assert done["result"] == {"ok": True, "payload": {"flag": "b"}}

    status, body = call(app, tenant_a, "POST", f"/v1/jobs/{job_id}/discard")
    assert status == 409 and body["error"]["code"] == "conflict"

    other = ok(app, tenant_a, "POST", "/v1/jobs", {"name": "rtapi.flaky", "payload": {"flag": "x"}})["jobId"]
    drain(app)
    assert ok(app, tenant_a, "POST", f"/v1/jobs/{other}/discard")["status"] == "discarded"
    status, _ = call(app, tenant_a, "POST", f"/v1/jobs/{other}/discard")
    assert status == 409

    # the audit entry carries before / after
    entries = all_rows(app, AuditEntry, AuditEntry.action == "runtime.job.discard")
    assert [(d.key, d.before, d.after) for d in diff_rows(entries[-1].diff)] == [
        ("status", "dead", "discarded")
    ]


def test_jobs_are_found_by_job_trace_or_run_id_and_bulk_honours_the_search(
        app: Flask, tenant_a: Tenant, tenant_b: Tenant) -> None:
    body = {"name": "rtapi.flaky", "payload": {"flag": "find"}}
    first = ok(app, tenant_a, "POST", "/v1/jobs", body)["jobId"]
    ok(app, tenant_a, "POST", "/v1/jobs", body)
    b_job = ok(app, tenant_b, "POST", "/v1/jobs", body)["jobId"]
    drain(app)
    job = ok(app, tenant_a, "GET", f"/v1/jobs/{first}")
    for needle in (first, job["traceId"], job["parentRunId"]):
        found = ok(app, tenant_a, "GET", f"/v1/jobs?search={needle}")
        assert [i["jobId"] for i in found["items"]] == [first], needle
    assert ok(app, tenant_a, "GET", f"/v1/jobs?search={b_job}")["total"] == 0  # another tenant's
    assert ok(app, tenant_a, "GET", "/v1/jobs?status=dead")["total"] == 2
    out = ok(app, tenant_a, "POST", "/v1/jobs/discard",
             {"filter": {"status": "dead", "search": first}, "expectedCount": 1})
    assert out["jobIds"] == [first] and out["remaining"] == 0
    assert ok(app, tenant_a, "GET", "/v1/jobs?status=dead")["total"] == 1


def test_bulk_replay_and_discard_by_filter_and_ids(app: Flask, tenant_a: Tenant, tenant_b: Tenant) -> None:
    body = {"name": "rtapi.flaky", "payload": {"flag": "bulk"}}
    ids = [ok(app, tenant_a, "POST", "/v1/jobs", body)["jobId"] for _ in range(3)]
    ok(app, tenant_b, "POST", "/v1/jobs", body)
    drain(app)
    assert ok(app, tenant_a, "GET", "/v1/jobs?status=dead")["total"] == 3

    # the count the operator confirmed must still hold
    status, body = call(app, tenant_a, "POST", "/v1/jobs/replay",
                        {"filter": {"status": "dead", "name": "rtapi.flaky"}, "expectedCount": 2})
    assert status == 409 and body["error"]["details"] == {"matching": 3, "expected": 2}
    status, body = call(app, tenant_a, "POST", "/v1/jobs/replay", {})
    assert status == 400

    FLAGS["bulk"] = True
    out = ok(app, tenant_a, "POST", "/v1/jobs/replay",
             {"filter": {"status": "dead", "name": "rtapi.flaky"}, "expectedCount": 3})
    assert out["count"] == 3 and out["remaining"] == 0 and sorted(out["jobIds"]) == sorted(ids)
    drain(app)
    assert ok(app, tenant_a, "GET", "/v1/jobs?status=succeeded")["total"] == 3
    # tenant b's dead job was not touched
    assert ok(app, tenant_b, "GET", "/v1/jobs?status=dead")["total"] == 1

    FLAGS.clear()
    more = [ok(app, tenant_a, "POST", "/v1/jobs", {"name": "rtapi.flaky", "payload": {"flag": "no"}})["jobId"]
            for _ in range(2)]
    drain(app)
    b_dead = ok(app, tenant_b, "GET", "/v1/jobs?status=dead")["items"][0]["jobId"]
    out = ok(app, tenant_a, "POST", "/v1/jobs/discard", {"jobIds": [more[0], ids[0], b_dead]})
    # the succeeded job and tenant b's job are skipped, never touched
    assert out["count"] == 1 and out["skipped"] == 2 and out["jobIds"] == [more[0]]
    assert ok(app, tenant_b, "GET", f"/v1/jobs/{b_dead}")["status"] == "dead"
    out = ok(app, tenant_a, "POST", "/v1/jobs/discard", {"filter": {}})  # status defaults to dead
    assert out["count"] == 1
    assert ok(app, tenant_a, "GET", "/v1/jobs?status=discarded")["total"] == 2


def test_other_tenants_jobs_are_404(app: Flask, tenant_a: Tenant, tenant_b: Tenant) -> None:
    job_id = ok(app, tenant_a, "POST", "/v1/jobs", {"name": "rtapi.flaky", "payload": {"flag": "z"}})["jobId"]
    drain(app)
    for method, path in [("GET", f"/v1/jobs/{job_id}"), ("POST", f"/v1/jobs/{job_id}/replay"),
                         ("POST", f"/v1/jobs/{job_id}/discard")]:
        status, body = call(app, tenant_b, method, path)
        assert status == 404 and body["error"]["code"] == "not_found", (method, path)
    assert ok(app, tenant_b, "GET", "/v1/jobs")["total"] == 0
    assert ok(app, tenant_a, "GET", f"/v1/jobs/{job_id}")["status"] == "dead"


def test_non_admins_are_forbidden(app: Flask, tenant_a: Tenant) -> None:
    from bunbase import identity
    from bunbase.models import User

    with app.app_context(), tenant_scope(tenant_a.id):
        user = User(email="plain@alpha.test", name="Plain", password_hash=identity.hash_password("pw-123456"))
        db.session.add(user)
        db.session.flush()
        token, _ = identity.create_session(db.session, user, ttl=timedelta(hours=1))
        db.session.commit()
        db.session.remove()
    plain = Tenant(tenant_a.id, tenant_a.slug, "plain@alpha.test", "pw-123456", token)
    for method, path, body in [
        ("GET", "/v1/jobs", None),
        ("POST", "/v1/jobs", {"name": "rtapi.echo"}),
        ("POST", "/v1/jobs/replay", {"filter": {"status": "dead"}}),
        ("GET", "/v1/schedules", None),
        ("POST", "/v1/workflows/rtapi.order/start", {"orderId": "o-1"}),
        ("GET", "/v1/events", None),
    ]:
        status, payload = call(app, plain, method, path, body)
        assert status == 403 and payload["error"]["code"] == "forbidden", (method, path)
    resp = app.test_client().get("/v1/jobs", headers={"X-Tenant-Id": tenant_a.id})
    assert resp.status_code == 401


# -- schedules ---------------------------------------------------------------------------------
def test_schedules_list_pause_resume_trigger(app: Flask, tenant_a: Tenant, tenant_b: Tenant) -> None:
    with service_ctx(app, tenant_a.id) as ctx:
        ctx.scheduler.cron("nightly", cron="0 3 * * *", timezone="Europe/Paris", job="rtapi.echo",
                           payload={"from": "cron"})
        ctx.scheduler.every("often", interval="10m", job="rtapi.echo")
    listed = ok(app, tenant_a, "GET", "/v1/schedules")
    assert listed["total"] == 2
    nightly = next(s for s in listed["items"] if s["key"] == "nightly")
    assert nightly["kind"] == "cron" and nightly["timezone"] == "Europe/Paris" and nightly["nextRunAt"]
    sid = nightly["scheduleId"]

    assert ok(app, tenant_a, "POST", f"/v1/schedules/{sid}/pause")["paused"] is True
    assert call(app, tenant_a, "POST", f"/v1/schedules/{sid}/pause")[0] == 409
    assert ok(app, tenant_a, "GET", "/v1/schedules?paused=true")["total"] == 1
    assert ok(app, tenant_a, "POST", f"/v1/schedules/{sid}/resume")["paused"] is False

    fired = ok(app, tenant_a, "POST", f"/v1/schedules/{sid}/trigger")
    assert fired["schedule"]["runCount"] == 1 and fired["schedule"]["nextRunAt"] == nightly["nextRunAt"]
    drain(app)
    got = ok(app, tenant_a, "GET", f"/v1/jobs/{fired['jobId']}")
    assert got["status"] == "succeeded" and got["result"] == {"echo": {"from": "cron"}}

    assert call(app, tenant_b, "POST", f"/v1/schedules/{sid}/pause")[0] == 404
    assert ok(app, tenant_b, "GET", "/v1/schedules")["total"] == 0


def test_another_tenants_schedule_and_workflow_run_are_404(
    app: Flask, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    with service_ctx(app, tenant_a.id) as ctx:
        sid = ctx.scheduler.every("hourly", interval="1h", job="rtapi.echo").id
    run_id = ok(app, tenant_a, "POST", "/v1/workflows/rtapi.order/start", {"orderId": "o-9"})["runId"]
    got = ok(app, tenant_a, "GET", f"/v1/schedules/{sid}")
    assert got["scheduleId"] == sid and got["key"] == "hourly" and got["intervalSeconds"] == 3600
    assert ok(app, tenant_a, "GET", f"/v1/workflows/runs/{run_id}")["runId"] == run_id
    for path in [f"/v1/schedules/{sid}", f"/v1/workflows/runs/{run_id}"]:
        status, body = call(app, tenant_b, "GET", path)
        assert status == 404 and body["error"]["code"] == "not_found", path
    assert call(app, tenant_a, "GET", "/v1/schedules/sch_nope")[0] == 404


def test_replaying_a_compensating_run_is_a_conflict(app: Flask, tenant_a: Tenant) -> None:
    run_id = ok(app, tenant_a, "POST", "/v1/workflows/rtapi.saga/start", {"orderId": "o-7"})["runId"]
    drain(app)  # charge fails for good; the refund keeps failing: the run is compensating
    assert ok(app, tenant_a, "GET", f"/v1/workflows/runs/{run_id}")["state"] == "compensating"
    status, body = call(app, tenant_a, "POST", f"/v1/workflows/runs/{run_id}/replay", {"fromStep": 0})
    assert status == 409 and body["error"]["code"] == "conflict"
    status, body = call(app, tenant_a, "POST", f"/v1/workflows/runs/{run_id}/replay", {"fromStep": "nope"})
    assert status == 404 and body["error"]["code"] == "not_found"


# -- workflows ---------------------------------------------------------------------------------
def test_workflow_start_get_pause_resume_and_replay(app: Flask, tenant_a: Tenant, tenant_b: Tenant) -> None:
    started = ok(app, tenant_a, "POST", "/v1/workflows/rtapi.order/start", {"orderId": "o-1", "amount": 5})
    assert started["state"] == "running"
    run_id = started["runId"]
    drain(app)
    run = ok(app, tenant_a, "GET", f"/v1/workflows/runs/{run_id}")
    assert run["state"] == "waiting" and run["currentStepName"] == "hold"
    assert run["input"] == {"orderId": "o-1", "amount": 5}
    assert run["results"] == {"reserve": {"reserved": "o-1"}}
    steps = {s["name"]: s for s in run["steps"]}
    assert steps["reserve"]["status"] == "completed" and steps["reserve"]["attempts"] == 1
    assert steps["hold"]["status"] == "waiting" and steps["hold"]["wait"]["until"]
    assert steps["hold"]["current"] is True
    assert steps["charge"]["status"] == "pending"

    assert ok(app, tenant_a, "POST", f"/v1/workflows/runs/{run_id}/pause")["state"] == "paused"
    assert call(app, tenant_a, "POST", f"/v1/workflows/runs/{run_id}/pause")[0] == 409
    clock.advance("2h")
    drain(app)  # a paused run is not woken
    paused = ok(app, tenant_a, "GET", f"/v1/workflows/runs/{run_id}")
    assert paused["state"] == "paused" and "_pausedFrom" not in paused["results"]
    assert ok(app, tenant_a, "POST", f"/v1/workflows/runs/{run_id}/resume")["state"] == "waiting"
    drain(app)
    failed = ok(app, tenant_a, "GET", f"/v1/workflows/runs/{run_id}")
    assert failed["state"] == "failed" and "card declined" in failed["error"]
    charge = failed["steps"][2]
    assert charge["status"] == "failed" and "card declined" in charge["error"]

    # replaying a step name that does not exist, or someone else's run
    assert call(app, tenant_a, "POST", f"/v1/workflows/runs/{run_id}/replay", {"fromStep": "nope"})[0] == 404
    assert call(app, tenant_b, "POST", f"/v1/workflows/runs/{run_id}/replay", {"fromStep": 2})[0] == 404
    assert call(app, tenant_b, "GET", f"/v1/workflows/runs/{run_id}")[0] == 404

    FLAGS["charge"] = True
    replayed = ok(app, tenant_a, "POST", f"/v1/workflows/runs/{run_id}/replay",
                  {"fromStep": "charge", "input": {"orderId": "o-1", "amount": 7}})
    assert replayed["state"] == "running" and replayed["currentStep"] == 2
    # a running run cannot be replayed on top of itself
    assert call(app, tenant_a, "POST", f"/v1/workflows/runs/{run_id}/replay", {"fromStep": 0})[0] == 409
    drain(app)
    done = ok(app, tenant_a, "GET", f"/v1/workflows/runs/{run_id}")
    assert done["state"] == "completed"
    assert done["results"] == {"reserve": {"reserved": "o-1"}, "hold": done["results"]["hold"],
                               "charge": {"charged": 7}}

    # replay from index 0 with the same input: every step runs again
    again = ok(app, tenant_a, "POST", f"/v1/workflows/runs/{run_id}/replay", {"fromStep": "0"})
    assert again["currentStep"] == 0 and again["results"] == {}
    listed = ok(app, tenant_a, "GET", "/v1/workflows/runs?name=rtapi.order&state=running")
    assert [r["runId"] for r in listed["items"]] == [run_id]


def test_workflow_cancel_retry_and_validation(app: Flask, tenant_a: Tenant) -> None:
    status, body = call(app, tenant_a, "POST", "/v1/workflows/rtapi.order/start", {"amount": 1})
    assert status == 400 and body["error"]["code"] == "validation_error"
    assert call(app, tenant_a, "POST", "/v1/workflows/no.such/start", {})[0] == 404

    run_id = ok(app, tenant_a, "POST", "/v1/workflows/rtapi.order/start", {"orderId": "o-2"})["runId"]
    drain(app)
    assert ok(app, tenant_a, "POST", f"/v1/workflows/runs/{run_id}/cancel")["state"] == "cancelled"
    assert call(app, tenant_a, "POST", f"/v1/workflows/runs/{run_id}/cancel")[0] == 409
    assert call(app, tenant_a, "POST", f"/v1/workflows/runs/{run_id}/retry")[0] == 409
    clock.advance("2h")
    drain(app)
    assert ok(app, tenant_a, "GET", f"/v1/workflows/runs/{run_id}")["state"] == "cancelled"

    other = ok(app, tenant_a, "POST", "/v1/workflows/rtapi.order/start", {"orderId": "o-3"})["runId"]
    drain(app)
    clock.advance("2h")
    drain(app)
    assert ok(app, tenant_a, "GET", f"/v1/workflows/runs/{other}")["state"] == "failed"
    FLAGS["charge"] = True
    assert ok(app, tenant_a, "POST", f"/v1/workflows/runs/{other}/retry")["state"] == "running"
    drain(app)
    assert ok(app, tenant_a, "GET", f"/v1/workflows/runs/{other}")["state"] == "completed"


# -- events ------------------------------------------------------------------------------------
def test_events_are_listed_with_their_deliveries(app: Flask, tenant_a: Tenant, tenant_b: Tenant) -> None:
    with service_ctx(app, tenant_a.id) as ctx:
        ctx.events.emit("rtapi.thing.happened", {"n": 1})
    events = ok(app, tenant_a, "GET", "/v1/events")
    assert events["total"] == 1
    assert events["items"][0]["name"] == "rtapi.thing.happened"
    assert events["items"][0]["payload"] == {"n": 1}
    assert events["items"][0]["deliveries"] == []
    assert events["items"][0]["dispatchedAt"] is not None  # no subscribers: nothing to fan out
    assert ok(app, tenant_a, "GET", "/v1/events?name=other")["total"] == 0
    assert ok(app, tenant_b, "GET", "/v1/events")["total"] == 0
