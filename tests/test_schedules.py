"""Schedules: idempotent one-shots, intervals, cron in time zones, upsert by key, operator
controls, missed runs firing once, the scheduler lease, and crons declared on actions."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bunbase import jobs, redis_conn, scheduler, schedules
from bunbase.clock import clock
from bunbase.context import Context
from bunbase.db import db
from bunbase.errors import BadRequest, NotFound
from bunbase.models import ActionRun, Tenant
from bunbase.runtime_models import JobRun, Schedule
from bunbase.scheduler import LEASE_KEY, Lease
from bunbase.tenancy import tenant_scope
from bunbase.testing import Worker, service_ctx, settle
from tests.fixtures import make_tenant
from tests.helpers import recorded_jobs, rows

T0 = datetime(2025, 1, 10, 12, 0)  # a winter Friday, noon UTC


def run_in(app, tenant_id: str, fn: Callable[[Context], Any]) -> Any:
    """Run `fn(ctx)` as a job or action would: one transaction, outbox dispatched after it."""
    with service_ctx(app, tenant_id) as ctx:
        return fn(ctx)


def schedule(app, key: str) -> Schedule:
    (row,) = rows(app, Schedule, Schedule.key == key)
    return row


def notes() -> list[str]:
    return [r.split(":")[1] for r in recorded_jobs()]


def test_once_twice_with_one_key_is_one_row_moved_and_fires_exactly_once(app, tenant_a):
    clock.freeze(T0)
    record = {"job": "testkit.record", "payload": {"note": "remind"}}
    first = run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.once(
        "remind", run_at=T0 + timedelta(hours=1), **record).id)
    again = run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.once(
        "remind", run_at=T0 + timedelta(hours=2), **record).id)
    assert first == again
    row = schedule(app, "remind")
    assert (row.kind, row.next_run_at, row.run_at) == ("once", T0 + timedelta(hours=2),
                                                         T0 + timedelta(hours=2))
    worker = Worker(app)
    clock.advance("1h")  # the first time it was set for: moved, so nothing
    worker.drain()
    assert notes() == []
    clock.advance("1h")
    worker.drain()
    assert notes() == ["remind"]
    clock.advance("3d")
    worker.drain()
    assert notes() == ["remind"]
    row = schedule(app, "remind")
    assert row.next_run_at is None and row.run_count == 1
    (job,) = rows(app, JobRun, JobRun.id == row.last_job_id)
    assert (job.status, job.source) == ("succeeded", "schedule:remind")


def test_once_registered_again_after_it_fired_does_not_fire_the_same_slot_twice(app, tenant_a):
    clock.freeze(T0)
    at = T0 + timedelta(minutes=5)
    register = lambda ctx: ctx.scheduler.once("o", run_at=at, job="testkit.record",  # noqa: E731
                                              payload={"note": "o"})
    run_in(app, tenant_a.id, register)
    clock.advance("10m")
    Worker(app).drain()
    run_in(app, tenant_a.id, register)  # e.g. the same request retried: same key, same time
    Worker(app).drain()
    assert notes() == ["o"]


def test_every_fires_per_interval(app, tenant_a):
    clock.freeze(T0)
    run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.every(
        "beat", interval="10m", job="testkit.record", payload={"note": "beat"}))
    assert schedule(app, "beat").next_run_at == T0 + timedelta(minutes=10)
    worker = Worker(app)
    worker.drain()
    assert notes() == []
    for expected in (1, 2, 3):
        clock.advance("10m")
        worker.drain()
        assert notes() == ["beat"] * expected
    clock.advance("5m")
    worker.drain()
    assert notes() == ["beat"] * 3
    assert schedule(app, "beat").next_run_at == T0 + timedelta(minutes=40)
    with pytest.raises(BadRequest):
        run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.every(
            "fast", interval="0.5s", job="testkit.record"))


@pytest.mark.parametrize(("now", "expected"), [
    (datetime(2025, 1, 10, 12, 0), datetime(2025, 1, 11, 0, 0)),   # CET: 01:00 = 00:00 UTC
    (datetime(2025, 7, 10, 12, 0), datetime(2025, 7, 10, 23, 0)),  # CEST: 23:00 UTC the day before
    (datetime(2025, 3, 29, 12, 0), datetime(2025, 3, 30, 0, 0)),   # 01:00 is still CET that night
])
def test_cron_runs_in_its_time_zone(app, tenant_a, now, expected):
    clock.freeze(now)
    run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.cron(
        "nightly", cron="0 1 * * *", timezone="Europe/Berlin", job="testkit.record",
        payload={"note": "nightly"}))
    assert schedule(app, "nightly").next_run_at == expected
    worker = Worker(app)
    clock.freeze(expected - timedelta(seconds=1))
    worker.drain()
    assert notes() == []
    clock.freeze(expected)
    worker.drain()
    assert notes() == ["nightly"]
    nxt = schedule(app, "nightly").next_run_at
    assert nxt is not None and timedelta(hours=22) < nxt - expected <= timedelta(hours=24)


def test_cron_refuses_a_bad_expression_or_zone(app, tenant_a):
    for kwargs in ({"cron": "61 * * * *"}, {"cron": "0 1 * * *", "timezone": "Mars/Olympus"}):
        with pytest.raises(BadRequest):
            run_in(app, tenant_a.id, lambda ctx, kw=kwargs: ctx.scheduler.cron(
                "bad", job="testkit.record", **kw))
    assert rows(app, Schedule, Schedule.key == "bad") == []


def test_registering_a_key_again_updates_never_duplicates(app, tenant_a, tenant_b):
    clock.freeze(T0)
    run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.cron(
        "report", cron="0 6 * * *", job="testkit.record", payload={"note": "v1"}))
    run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.cron(
        "report", cron="30 9 * * 1", timezone="Europe/Berlin", job="testkit.record",
        payload={"note": "v2"}))
    run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.every(
        "report", interval="1h", job="testkit.record", payload={"note": "v3"}))
    # the same key in another tenant is another schedule
    run_in(app, tenant_b.id, lambda ctx: ctx.scheduler.cron(
        "report", cron="0 6 * * *", job="testkit.record", payload={"note": "b"}))
    found = rows(app, Schedule, Schedule.key == "report")
    assert sorted(r.tenant_id for r in found) == sorted([tenant_a.id, tenant_b.id])
    row = next(r for r in found if r.tenant_id == tenant_a.id)
    assert (row.kind, row.cron, row.interval_seconds, row.payload) == (
        "every", None, 3600.0, {"note": "v3"})
    assert row.next_run_at == T0 + timedelta(hours=1)


def test_pause_resume_and_trigger_now(app, tenant_a):
    clock.freeze(T0)
    sid = run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.every(
        "sync", interval="10m", job="testkit.record", payload={"note": "sync"}).id)
    run_in(app, tenant_a.id, lambda ctx: schedules.pause(schedules.get(ctx.db, sid)))
    worker = Worker(app)
    clock.advance("35m")
    worker.drain()
    assert notes() == []  # paused: nothing fired
    run_in(app, tenant_a.id, lambda ctx: schedules.resume(schedules.get(ctx.db, sid)))
    row = schedule(app, "sync")
    assert not row.paused and row.next_run_at == T0 + timedelta(minutes=40)  # the next slot
    worker.drain()
    assert notes() == []
    # trigger now: runs at once, the next run does not move
    run_in(app, tenant_a.id, lambda ctx: schedules.trigger_now(ctx, schedules.get(ctx.db, sid)))
    (pushed,) = jobs.queue("default").jobs  # with its job's timeout, like every other push
    assert pushed.timeout == jobs.get("testkit.record").timeout + jobs.TIMEOUT_GRACE
    worker.drain()
    assert notes() == ["sync"]
    row = schedule(app, "sync")
    assert row.next_run_at == T0 + timedelta(minutes=40) and row.run_count == 1
    clock.advance("5m")
    worker.drain()
    assert notes() == ["sync", "sync"]


@pytest.mark.parametrize("kind", ["cron", "every"])
def test_schedule_missed_while_the_scheduler_was_down_fires_once(app, tenant_a, kind):
    clock.freeze(T0)
    if kind == "cron":
        run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.cron(
            "missed", cron="0 3 * * *", job="testkit.record", payload={"note": "m"}))
    else:
        run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.every(
            "missed", interval="1m", job="testkit.record", payload={"note": "m"}))
    clock.advance("5d")  # five daily slots (or 7200 one-minute slots) went by
    t = time.perf_counter()
    Worker(app).drain()
    assert time.perf_counter() - t < 5
    assert notes() == ["m"]
    row = schedule(app, "missed")
    assert row.run_count == 1 and row.next_run_at > clock.now()
    assert row.next_run_at - clock.now() <= (timedelta(days=1) if kind == "cron" else timedelta(minutes=1))


def test_exactly_one_scheduler_holds_the_lease(app):
    a, b = Lease("scheduler-a"), Lease("scheduler-b")
    assert a.acquire_or_renew()
    assert not b.acquire_or_renew()
    assert a.acquire_or_renew()  # renewal by the holder
    assert not b.acquire_or_renew()
    b.release()  # not the holder: changes nothing
    assert not b.acquire_or_renew()
    a.release()
    assert b.acquire_or_renew()  # the standby takes over once the holder lets go
    assert not a.acquire_or_renew()
    # the holder dies and stops renewing: its lease runs out and the other one takes over
    redis_conn.client().pexpire(LEASE_KEY, 50)
    time.sleep(0.1)
    assert a.acquire_or_renew()
    assert not b.acquire_or_renew()
    a.release()


def test_only_the_lease_holder_fires_schedules(app, tenant_a):
    run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.once(
        "lead", run_at=clock.now() - timedelta(seconds=1), job="testkit.record",
        payload={"note": "lead"}))
    other = Lease("another-host:1")
    assert other.acquire_or_renew()
    scheduler.run_scheduler(app, once=True)  # a standby: does nothing
    assert schedule(app, "lead").run_count == 0
    other.release()
    scheduler.run_scheduler(app, once=True)  # now the leader
    row = schedule(app, "lead")
    assert row.run_count == 1 and row.next_run_at is None
    assert redis_conn.client().get(LEASE_KEY) is None  # released when it stopped


# -- crons declared on actions (triggers.cron) ------------------------------------------------
DIGEST_KEY = "action:support.tickets.digest:0"


def _sync(app) -> int:
    with app.app_context():
        changed = schedules.sync_action_crons(app.extensions["bunbase"].registry)
        db.session.remove()
    return changed


def test_action_crons_are_synced_for_every_active_tenant(app, tenant_a, tenant_b):
    clock.freeze(T0)
    _sync(app)
    found = rows(app, Schedule, Schedule.key == DIGEST_KEY)
    assert sorted(r.tenant_id for r in found) == sorted([tenant_a.id, tenant_b.id])
    for row in found:
        assert (row.kind, row.job, row.cron, row.timezone) == (
            "cron", "bunbase.action.cron", "0 7 * * *", "UTC")
        assert row.payload == {"action": "support.tickets.digest", "input": {}}
        assert row.next_run_at == datetime(2025, 1, 11, 7, 0)
    assert _sync(app) == 0  # nothing changed: no duplicates, nothing moved
    assert len(rows(app, Schedule, Schedule.key == DIGEST_KEY)) == 2
    # an operator's pause survives a sync; a suspended tenant loses its action crons
    paused = next(r for r in found if r.tenant_id == tenant_a.id)
    run_in(app, tenant_a.id, lambda ctx: schedules.pause(schedules.get(ctx.db, paused.id)))
    with app.app_context():
        db.session.get(Tenant, tenant_b.id).status = "suspended"
        db.session.commit()
        db.session.remove()
    assert _sync(app) == 1
    (left,) = rows(app, Schedule, Schedule.key == DIGEST_KEY)
    assert left.tenant_id == tenant_a.id and left.paused


def test_run_due_syncs_action_crons_at_most_once_a_minute(app, tenant_a, monkeypatch):
    monkeypatch.setattr(scheduler, "_crons_synced_at", None)
    clock.freeze(T0)
    worker = Worker(app)
    worker.drain()
    assert [r.tenant_id for r in rows(app, Schedule, Schedule.key == DIGEST_KEY)] == [tenant_a.id]
    late = make_tenant(app, "latecomer")
    clock.advance("30s")
    worker.drain()
    assert len(rows(app, Schedule, Schedule.key == DIGEST_KEY)) == 1  # synced 30 s ago
    clock.advance("31s")
    worker.drain()
    assert {r.tenant_id for r in rows(app, Schedule, Schedule.key == DIGEST_KEY)} == {
        tenant_a.id, late.id}


def digests(mailbox, address: str) -> list[Any]:
    return [m for m in mailbox.to(address) if m["X-Bunbase-Kind"] == "support-digest"]


def test_an_action_cron_runs_the_action_through_the_executor_as_system(app, tenant_a, mailbox):
    clock.freeze(T0)
    resp = app.test_client().post("/v1/support/tickets", json=tenant_a.ticket(priority="low"),
                                  headers=tenant_a.headers())
    assert resp.status_code == 200, resp.json
    _sync(app)
    clock.freeze(datetime(2025, 1, 11, 7, 0))
    Worker(app).drain()
    settle(app)
    (run,) = rows(app, ActionRun, ActionRun.action_name == "support.tickets.digest")
    assert (run.trigger_type, run.status, run.actor_id) == ("cron", "ok", "system")
    assert run.output == {"orgs": 1, "openTickets": 1}
    (job,) = rows(app, JobRun, JobRun.name == "bunbase.action.cron")
    assert job.status == "succeeded" and job.result == {"runId": run.id}
    (mail,) = digests(mailbox, tenant_a.email)
    assert "1 open tickets" in mail["Subject"]
    # the job id is the idempotency key: replaying the finished job does not run it again
    with app.app_context(), tenant_scope(tenant_a.id):
        from bunbase import jobs

        jobs.replay(db.session.get(JobRun, job.id))
        db.session.commit()
    Worker(app).drain()
    settle(app)
    assert len(rows(app, ActionRun, ActionRun.action_name == "support.tickets.digest",
                    ActionRun.status == "ok")) == 1
    assert len(digests(mailbox, tenant_a.email)) == 1


def test_an_action_cron_for_a_missing_action_is_dead_at_once(app, tenant_a):
    def plant(ctx: Context) -> None:
        ctx.scheduler.once("ghost", run_at=clock.now(), job="bunbase.action.cron",
                           payload={"action": "support.nothing.here", "input": {}})

    run_in(app, tenant_a.id, plant)
    Worker(app).drain()
    (job,) = rows(app, JobRun, JobRun.name == "bunbase.action.cron")
    assert job.status == "dead" and job.attempts == 1


def test_schedules_are_tenant_scoped(app, tenant_a, tenant_b):
    run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.every(
        "mine", interval="1h", job="testkit.record"))
    seen = run_in(app, tenant_b.id, lambda ctx: ctx.db.scalars(
        select(Schedule.key).where(Schedule.key == "mine")).all())
    assert seen == []


def test_get_refuses_another_tenants_schedule_already_in_the_session(app, tenant_a, tenant_b):
    sid = run_in(app, tenant_a.id, lambda ctx: ctx.scheduler.every(
        "mine", interval="1h", job="testkit.record").id)
    with app.app_context():
        with tenant_scope(tenant_a.id):
            mine = schedules.get(db.session, sid)  # held: it stays in the identity map
            assert mine.key == "mine"
        with tenant_scope(tenant_b.id), pytest.raises(NotFound):
            schedules.get(db.session, sid)
        db.session.remove()
