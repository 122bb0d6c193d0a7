"""Events: delivered only after the emitter commits, typed payloads, subscribers run once per
emit through the worker (trigger "event", a recorded delivery), failing ones are retried."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bunbase.clock import clock
from bunbase.models import ActionRun
from bunbase.runtime_models import EventDelivery, EventRecord, JobRun
from bunbase.testing import ApiError, scenario, settle
from tests.fixture_modules.trial import services as billing
from tests.helpers import count, rows

EMIT = "trial.event.emit"


def flush_runs(app) -> None:
    settle(app)


def runs_of(app, name: str) -> list[ActionRun]:
    flush_runs(app)
    return rows(app, ActionRun, ActionRun.action_name == name)


def kinds(mailbox, address: str) -> list[str]:
    return [m["X-Bunbase-Kind"] for m in mailbox.to(address)]


def test_events_of_a_failing_emitter_are_never_delivered(app, tenant_a, mailbox):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    with pytest.raises(ApiError) as err:
        s.api.run(EMIT, {"name": "payment.added", "payload": {"orgId": tenant_a.org_id, "last4": "4242"},
                         "failAfterEmit": True})
    assert err.value.status == 409
    s.worker.drain()
    assert count(app, EventRecord) == 0
    assert count(app, EventDelivery) == 0
    assert count(app, JobRun, JobRun.name == "bunbase.event.deliver") == 0
    assert runs_of(app, "trial.payment.on_added") == []
    assert mailbox.to(tenant_a.email) == []


def test_a_committed_emit_is_delivered_after_commit(app, tenant_a, mailbox):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    out = s.api.run(EMIT, {"name": "payment.added",
                           "payload": {"orgId": tenant_a.org_id, "last4": "4242"}})
    (event,) = rows(app, EventRecord)
    assert (event.id, event.name) == (out["eventId"], "payment.added")
    assert event.payload == {"orgId": tenant_a.org_id, "last4": "4242"}
    # the emitter wrote the event only; its fan-out (a job) makes the deliveries
    assert event.dispatched_at is None and count(app, EventDelivery) == 0
    s.worker.drain()
    (event,) = rows(app, EventRecord)
    assert event.dispatched_at is not None
    (delivery,) = rows(app, EventDelivery)
    assert (delivery.subscriber, delivery.status, delivery.attempts) == (
        "trial.payment.on_added", "delivered", 1)
    (run,) = runs_of(app, "trial.payment.on_added")
    assert (run.id, run.trigger_type, run.status, run.actor_id) == (
        delivery.run_id, "event", "ok", "system")
    assert run.trace_id == event.trace_id  # the subscriber runs in the emitter's trace
    assert kinds(mailbox, tenant_a.email) == ["payment-receipt"]


@pytest.mark.parametrize("payload", [
    {"orgId": "org_1", "last4": "12"},      # fails the pattern
    {"orgId": "org_1"},                     # missing field
    {"orgId": "org_1", "last4": "1234", "extra": True},  # unknown field
])
def test_typed_payloads_reject_bad_data_with_400(app, tenant_a, payload):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    with pytest.raises(ApiError) as err:
        s.api.run(EMIT, {"name": "payment.added", "payload": payload})
    assert err.value.status == 400
    assert err.value.body["error"]["code"] == "validation_error"
    assert count(app, EventRecord) == 0


def test_untyped_events_without_subscribers_are_just_recorded(app, tenant_a):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    s.api.run(EMIT, {"name": "tests.anything", "payload": {"free": ["form"]}})
    s.worker.drain()
    (event,) = rows(app, EventRecord)
    assert event.payload == {"free": ["form"]}
    assert count(app, EventDelivery) == 0


def test_ticket_created_subscriber_runs_once_per_emit_through_the_worker(app, tenant_a, mailbox):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    ids = [s.api.run("support.ticket.create", tenant_a.ticket(subject=f"Ticket {i}", priority="low"))
           ["ticketId"] for i in range(2)]
    events = rows(app, EventRecord, EventRecord.name == "ticket.created")
    assert sorted(e.payload["ticketId"] for e in events) == sorted(ids)
    assert {e.payload["priority"] for e in events} == {"low"}
    assert runs_of(app, "support.ticket.on_created") == []  # not inline: through the worker
    s.worker.drain()
    s.worker.drain()
    deliveries = rows(app, EventDelivery)
    assert len(deliveries) == 2
    assert {(d.subscriber, d.status, d.attempts) for d in deliveries} == {
        ("support.ticket.on_created", "delivered", 1)}
    runs = runs_of(app, "support.ticket.on_created")
    assert sorted(r.id for r in runs) == sorted(d.run_id for d in deliveries)
    assert {r.trigger_type for r in runs} == {"event"}
    assert len(mailbox.to(tenant_a.email)) == 2


def test_a_failing_subscriber_is_retried_and_its_delivery_shows_the_attempts(
        app, tenant_a, mailbox, monkeypatch):
    calls: list[str] = []
    real = billing.send_receipt

    def flaky(ctx: Any, org_id: str, last4: str) -> str:
        calls.append(last4)
        if len(calls) <= 2:
            raise ConnectionError("the mail relay is down")
        return real(ctx, org_id, last4)

    monkeypatch.setattr(billing, "send_receipt", flaky)
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    s.api.run(EMIT, {"name": "payment.added", "payload": {"orgId": tenant_a.org_id, "last4": "4242"}})
    s.worker.drain()
    (delivery,) = rows(app, EventDelivery)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "internal" in (delivery.error or "")
    (job,) = rows(app, JobRun, JobRun.name == "bunbase.event.deliver")
    assert job.status == "retrying"
    for _ in range(2):
        clock.advance("1h")  # past the backoff
        s.worker.drain()
    (delivery,) = rows(app, EventDelivery)
    assert (delivery.status, delivery.attempts, delivery.error) == ("delivered", 3, None)
    assert calls == ["4242"] * 3
    runs = runs_of(app, "trial.payment.on_added")
    assert sorted(r.status for r in runs) == ["error", "error", "ok"]
    assert delivery.run_id == next(r.id for r in runs if r.status == "ok")
    assert kinds(mailbox, tenant_a.email) == ["payment-receipt"]  # at least once, here once
    (job,) = rows(app, JobRun, JobRun.name == "bunbase.event.deliver")
    assert (job.status, job.attempts) == ("succeeded", 3)


def test_a_subscriber_that_rejects_the_event_is_not_retried(app, tenant_a):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    # an org that does not exist: the receipt's owner lookup is a 404 (a client error)
    s.api.run(EMIT, {"name": "payment.added", "payload": {"orgId": "org_gone", "last4": "4242"}})
    s.worker.drain()
    (delivery,) = rows(app, EventDelivery)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    (job,) = rows(app, JobRun, JobRun.name == "bunbase.event.deliver")
    assert (job.status, job.attempts) == ("dead", 1)


def test_event_handlers_refuse_to_be_run_by_hand(app, tenant_a):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    with pytest.raises(ApiError) as err:
        s.api.run("support.ticket.on_created", {"ticketId": "tkt_x", "orgId": tenant_a.org_id,
                                                "subject": "spoofed", "priority": "high"})
    assert err.value.status == 403
    assert count(app, JobRun, JobRun.name == "support.ticket.notify_assignee") == 0


def test_a_lost_fan_out_is_sent_again_by_the_relay_and_a_second_copy_adds_nothing(app, tenant_a, mailbox):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    s.api.run(EMIT, {"name": "payment.added", "payload": {"orgId": tenant_a.org_id, "last4": "4242"}})
    (event,) = rows(app, EventRecord)
    from rq import Queue

    from bunbase import events, redis_conn
    with app.app_context():
        conn = redis_conn.client()
        Queue(events.FANOUT_QUEUE, connection=conn).empty()  # the push is lost
        conn.delete(events.FANOUT_LIST, events.FANOUT_FLAG)
        assert events.relay_undispatched() == 0  # too young: its push may still be on the way
        clock.advance("31s")
        assert events.relay_undispatched() == 1
        events.fanout([event.id])  # a second copy of the fan-out (the relay's and the original)
    s.worker.drain()
    (delivery,) = rows(app, EventDelivery)
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert count(app, JobRun, JobRun.name == "bunbase.event.deliver") == 1
    assert kinds(mailbox, tenant_a.email) == ["payment-receipt"]
    with app.app_context():
        assert events.relay_undispatched(older_than=timedelta(0)) == 0


def test_an_event_nobody_subscribes_to_is_dispatched_at_once(app, tenant_a):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    s.api.run(EMIT, {"name": "tests.anything", "payload": {}})
    (event,) = rows(app, EventRecord)
    assert event.dispatched_at == event.created_at


def test_one_fan_out_job_serves_the_events_emitted_while_it_was_queued(app, tenant_a, mailbox):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    for last4 in ("1111", "2222", "3333"):
        s.api.run(EMIT, {"name": "payment.added", "payload": {"orgId": tenant_a.org_id, "last4": last4}})
    from bunbase import outbox
    from tests.helpers import queue_len
    assert outbox.settle()
    assert queue_len("default") == 1  # one fan-out job for the three events
    s.worker.drain()
    assert {d.status for d in rows(app, EventDelivery)} == {"delivered"}
    assert count(app, EventDelivery) == 3
    assert {e.dispatched_at is not None for e in rows(app, EventRecord)} == {True}
    assert len(mailbox.to(tenant_a.email)) == 3


def test_studio_events_page_shows_a_pending_fan_out_then_the_deliveries(app, tenant_a, mailbox):
    from tests.test_users import studio_client

    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    s.api.run(EMIT, {"name": "payment.added", "payload": {"orgId": tenant_a.org_id, "last4": "4242"}})
    studio = studio_client(app, tenant_a)
    page = studio.get("/studio/m/runtime/events").get_data(as_text=True)
    assert 'data-testid="fanout-pending"' in page and "no subscribers" not in page
    s.worker.drain()
    page = studio.get("/studio/m/runtime/events").get_data(as_text=True)
    assert 'data-testid="fanout-pending"' not in page
    assert 'data-subscriber="trial.payment.on_added"' in page


def test_the_relay_sends_one_fan_out_at_a_time(app, tenant_a):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    s.api.run(EMIT, {"name": "payment.added", "payload": {"orgId": tenant_a.org_id, "last4": "4242"}})
    from rq import Queue

    from bunbase import events, outbox, redis_conn
    assert outbox.settle()
    conn = redis_conn.client()
    q = Queue(events.FANOUT_QUEUE, connection=conn)
    q.empty()
    conn.delete(events.FANOUT_LIST, events.FANOUT_FLAG)  # the push is lost
    clock.advance("31s")
    with app.app_context():
        assert events.relay_undispatched() == 1
        clock.advance("5s")
        assert events.relay_undispatched() == 0  # its fan-out is still on the way: none added
    assert q.count == 1
    s.worker.drain()
    assert conn.exists(events.RELAY_FLAG) == 0  # done: the next relay may send again
    (delivery,) = rows(app, EventDelivery)
    assert delivery.status == "delivered"


def test_a_failed_fan_out_enqueue_leaves_no_flag_behind(app, tenant_a, monkeypatch):
    from rq import Queue

    from bunbase import events, redis_conn

    def down(*_a: Any, **_k: Any) -> None:
        raise ConnectionError("redis went away")

    monkeypatch.setattr(Queue, "enqueue_call", down)
    with app.app_context(), pytest.raises(ConnectionError):
        events._push_fanout(["evt_1"])
    assert redis_conn.client().exists(events.FANOUT_FLAG) == 0


def test_an_event_of_a_tenant_that_is_gone_does_not_block_the_others(app, tenant_a, mailbox):
    from bunbase import events
    from bunbase.db import db
    from bunbase.ids import new_id
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    s.api.run(EMIT, {"name": "payment.added", "payload": {"orgId": tenant_a.org_id, "last4": "4242"}})
    (good,) = rows(app, EventRecord)
    orphan = new_id("evt")
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(EventRecord.__table__.insert().values(
                id=orphan, tenant_id="tnt_gone", name="payment.added",
                payload={"orgId": "org_x", "last4": "0000"}, created_at=clock.now()))
        assert events.fanout([orphan, good.id]) == 2
    dispatched = {e.id: e.dispatched_at for e in rows(app, EventRecord)}
    assert dispatched[orphan] is not None and dispatched[good.id] is not None
    (delivery,) = rows(app, EventDelivery)
    assert delivery.event_id == good.id


def test_an_event_that_already_has_deliveries_is_only_marked_dispatched(app, tenant_a):
    """Written by a process of the version before the fan-out (a rolling deploy)."""
    from bunbase import events
    from bunbase.db import db
    from bunbase.ids import new_id
    event_id = new_id("evt")
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(EventRecord.__table__.insert().values(
                id=event_id, tenant_id=tenant_a.id, name="payment.added",
                payload={"orgId": tenant_a.org_id, "last4": "4242"}, created_at=clock.now()))
            conn.execute(EventDelivery.__table__.insert().values(
                id=new_id("dlv"), tenant_id=tenant_a.id, event_id=event_id,
                subscriber="trial.payment.on_added", status="queued", attempts=0, created_at=clock.now()))
        assert events.fanout([event_id]) == 1
    (event,) = rows(app, EventRecord)
    assert event.dispatched_at is not None
    assert count(app, EventDelivery) == 1
    assert count(app, JobRun, JobRun.name == "bunbase.event.deliver") == 0
