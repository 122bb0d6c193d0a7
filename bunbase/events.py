"""Typed events: `ctx.events.emit("ticket.created", payload)`.

The emitter's transaction writes one row, the event. After it commits, a fan-out job (in a
worker) writes one delivery row and one job per subscriber and marks the event dispatched;
if that push is lost (the process died, Redis was away), `relay_undispatched` sends it again
(the fan-out is idempotent: it skips events already dispatched). So an event exists only if
the emitter commits, costs the emitter one insert, and every subscriber gets it at least once:
deliveries run through the job queue (across processes, with retries), each recorded.
Subscribers are actions with `triggers.event(name)`; waiting workflows are resumed by the
listeners registered here, in the emitter's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from flask import current_app
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from rq import Queue
from sqlalchemy import select

from bunbase import jobs, redis_conn
from bunbase.clock import clock
from bunbase.db import append_row, db, write_intent
from bunbase.errors import ValidationFailed
from bunbase.ids import new_id, new_trace_id
from bunbase.outbox import Effect, dispatch, register_dispatcher
from bunbase.runtime_models import EventDelivery, EventRecord
from bunbase.tenancy import tenant_scope, unscoped
from bunbase.triggers import EventTrigger

if TYPE_CHECKING:
    from bunbase.actions import Action
    from bunbase.context import Context

log = structlog.get_logger("bunbase.events")

_types: dict[str, type[BaseModel]] = {}
Listener = Callable[["Context", "Emitted"], None]
_listeners: list[Listener] = []
#: the queue fan-out jobs go to, and how long one may take
FANOUT_QUEUE = "default"
FANOUT_TIMEOUT = 300
#: an event a fan-out has not reached after this long is sent again
RELAY_AFTER = timedelta(seconds=30)


def define(name: str, payload: type[BaseModel]) -> type[BaseModel]:
    """Give an event a typed payload; emits are validated against it."""
    if name in _types and _types[name] is not payload:
        raise ValueError(f"event {name!r} is defined twice")
    _types[name] = payload
    return payload


def listen(fn: Listener) -> Listener:
    if fn not in _listeners:
        _listeners.append(fn)
    return fn


#: (id of the registry, its action count) -> subscribers by event name; replaced whole,
#: never changed in place, so a thread reading it never sees it half built
_subscribers: tuple[tuple[int, int], dict[str, list[Action]]] = ((0, -1), {})


def subscribers(name: str) -> list[Action]:
    """Actions with `triggers.event(name)`, looked up once per registry state."""
    global _subscribers
    registry = current_app.extensions["bunbase"].registry
    seen = (id(registry), len(registry.actions))
    cached_for, table = _subscribers
    if cached_for != seen:
        table = {}
        for act in registry.actions.values():
            for t in act.triggers:
                if isinstance(t, EventTrigger) and act not in table.get(t.event, []):
                    table.setdefault(t.event, []).append(act)
        _subscribers = (seen, table)
    return table.get(name, [])


@dataclass(frozen=True)
class Emitted:
    """An event as emitted; its row is written with the emitter's transaction."""

    id: str
    name: str
    payload: dict[str, Any]
    trace_id: str | None
    source_run_id: str | None
    created_at: datetime


_EVENTS = EventRecord.__table__


def emit(ctx: Context, name: str, payload: dict[str, Any] | BaseModel) -> Emitted:
    model = _types.get(name)
    if model is not None and type(payload) is model:
        data = payload.model_dump(mode="json", by_alias=True)  # validated when it was built
    else:
        if isinstance(payload, BaseModel):
            data = payload.model_dump(mode="json", by_alias=True)
        else:
            data = dict(payload)
        if model is not None:
            try:
                data = model.model_validate(data).model_dump(mode="json", by_alias=True)
            except PydanticValidationError as exc:
                raise ValidationFailed.from_pydantic(exc) from None
    now = clock.now()
    owed = bool(subscribers(name))
    event = Emitted(new_id("evt"), name, data, ctx.trace_id, ctx.run_id, now)
    # an append-only row: queued and written with one INSERT with the transaction's new rows
    append_row(
        ctx.db,
        _EVENTS,
        {
            "id": event.id,
            "tenant_id": ctx.tenant.id,
            "name": name,
            "payload": data,
            "trace_id": event.trace_id,
            "source_run_id": event.source_run_id,
            "created_at": now,
            "dispatched_at": None if owed else now,  # nobody subscribes: nothing to fan out
        },
    )
    if owed:
        # no outbox row: the undispatched event row is the durable record (relay_undispatched)
        ctx.outbox.after_commit("event", {"event_id": event.id})
    for listener in _listeners:
        listener(ctx, event)
    return event


# -- fan-out: in a worker, after the emitter committed ---------------------------------------
#: event ids waiting for the fan-out, and the flag saying a fan-out job is on its way for them
FANOUT_LIST = "bunbase:events:fanout"
FANOUT_FLAG = "bunbase:events:fanout:queued"
#: set while a relay's fan-out job is on its way
RELAY_FLAG = "bunbase:events:relay:queued"


def _push_fanout(event_ids: list[str]) -> None:
    """Append the ids to the fan-out list; queue a fan-out job only if none is on its way.
    Under load one job drains the ids of many requests (one transaction for all of them)."""
    conn = redis_conn.client()
    pipe = conn.pipeline(transaction=False)
    pipe.rpush(FANOUT_LIST, *event_ids)
    pipe.set(FANOUT_FLAG, "1", nx=True, ex=FANOUT_TIMEOUT)
    _, first = pipe.execute()
    if first:
        try:
            Queue(FANOUT_QUEUE, connection=conn).enqueue_call(
                fanout_pending, timeout=FANOUT_TIMEOUT, result_ttl=0, failure_ttl=86400
            )
        except BaseException:
            conn.delete(FANOUT_FLAG)  # no job is on its way: the next push queues one
            raise


def _dispatch_event(effect: Effect) -> None:
    _push_fanout([effect.payload["event_id"]])


def _dispatch_events(effects: list[Effect]) -> None:
    _push_fanout([e.payload["event_id"] for e in effects])


#: under load, one push per this long carries every request's new event ids (see Courier):
#: a fan-out then starts up to this much later than it would alone, and each process makes
#: at most ten of these Redis round trips a second
FANOUT_LINGER = 0.1
register_dispatcher("event", _dispatch_event, batch=_dispatch_events, linger=FANOUT_LINGER)


def fanout_pending(batch: int = 500) -> int:
    """The RQ entry point: fan out every event id on the list. The flag is cleared first, so
    an id appended from now on queues a new job; ids popped by a job that then dies are
    still undispatched rows, and the relay sends them again."""
    conn = redis_conn.client()
    conn.delete(FANOUT_FLAG)
    done = 0
    while raw := conn.lpop(FANOUT_LIST, batch):
        done += fanout([i.decode() if isinstance(i, bytes) else str(i) for i in raw])
    return done


def fanout(event_ids: list[str], relayed: bool = False) -> int:
    """Make the deliveries (and their jobs) of those events not yet dispatched."""
    app = jobs.bound_app()
    with app.app_context():
        try:
            return _fanout(event_ids)
        finally:
            db.session.remove()
            if relayed:
                redis_conn.client().delete(RELAY_FLAG)


def _fanout(event_ids: list[str]) -> int:
    from bunbase import tenancy_cache
    from bunbase.context import SYSTEM, Context

    items: list[Effect] = []
    with unscoped(), write_intent():
        stmt = (
            select(EventRecord)
            .where(EventRecord.id.in_(event_ids), EventRecord.dispatched_at.is_(None))
            .order_by(EventRecord.id)
        )
        if db.engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)  # a relay's copy skips what this one holds
        events = list(db.session.scalars(stmt))
        # events an older version delivered in the emitting transaction (a rolling deploy
        # across the migration) already have their deliveries: they are only marked
        ids = [e.id for e in events]
        made = set(db.session.scalars(select(EventDelivery.event_id).where(EventDelivery.event_id.in_(ids))))
        now = clock.now()
        for event in events:
            tenant = tenancy_cache.lookup(event.tenant_id)
            if tenant is None or event.id in made:  # the tenant is gone: nobody to deliver to
                event.dispatched_at = now
                continue
            with tenant_scope(event.tenant_id):
                ctx = Context(
                    tenant=tenant,
                    actor=SYSTEM,
                    trace_id=event.trace_id or new_trace_id(),
                    run_id=event.source_run_id or event.id,
                    db=db.session,
                    trigger="event",
                )
                for act in subscribers(event.name):
                    delivery = EventDelivery(
                        id=new_id("dlv"),
                        tenant_id=event.tenant_id,
                        event_id=event.id,
                        subscriber=act.name,
                        status="queued",
                        created_at=now,
                    )
                    db.session.add(delivery)
                    delivery.job_id = jobs.enqueue(
                        ctx,
                        "bunbase.event.deliver",
                        {"delivery_id": delivery.id},
                        source=f"event:{event.name}",
                    )
                items.extend(ctx.outbox.items)
            event.dispatched_at = now
        db.session.commit()
    dispatch(items)
    return len(events)


def relay_undispatched(older_than: timedelta = RELAY_AFTER, limit: int = 500) -> int:
    """Send the fan-out again for events it has not reached (its push was lost)."""
    cutoff = clock.now() - older_than
    conn = redis_conn.client()
    # one relay fan-out at a time: while one waits in a long queue, the next ticks add none
    busy_for = int(RELAY_AFTER.total_seconds())
    if older_than > timedelta(0) and not conn.set(RELAY_FLAG, "1", nx=True, ex=busy_for):
        return 0
    with unscoped():
        ids = list(
            db.session.scalars(
                select(EventRecord.id)
                .where(EventRecord.dispatched_at.is_(None), EventRecord.created_at <= cutoff)
                .order_by(EventRecord.created_at)
                .limit(limit)
            )
        )
        db.session.rollback()
    if ids:
        log.warning("re-sending the fan-out of undispatched events", count=len(ids))
        Queue(FANOUT_QUEUE, connection=conn).enqueue_call(
            fanout, args=(ids, True), timeout=FANOUT_TIMEOUT, result_ttl=0, failure_ttl=86400
        )
    else:
        conn.delete(RELAY_FLAG)
    return len(ids)


class EventsFacade:
    """`ctx.events`."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def emit(self, name: str, payload: dict[str, Any] | BaseModel | None = None) -> str:
        return emit(self._ctx, name, payload or {}).id


@jobs.job("bunbase.event.deliver", queue="default", retries=8)
def deliver(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Run one subscriber action for one event, through the executor (trigger "event")."""
    from bunbase.context import SYSTEM
    from bunbase.executor import Call

    delivery = ctx.db.get(EventDelivery, payload["delivery_id"])
    if delivery is None or delivery.status == "delivered":
        return {"skipped": True}
    event = ctx.db.get(EventRecord, delivery.event_id)
    platform = current_app.extensions["bunbase"]
    action = platform.registry.get(delivery.subscriber)
    if event is None or action is None:
        raise jobs.PermanentError(f"subscriber {delivery.subscriber!r} or its event is gone")
    tenant, trace_id = ctx.tenant, event.trace_id or ctx.trace_id
    delivery_id, event_payload = delivery.id, dict(event.payload)
    ctx.db.commit()  # the action runs in its own transaction
    call = Call(trigger="event", resolve=lambda: (tenant, SYSTEM), trace_id=trace_id)
    outcome = platform.executor.run(action, event_payload, call)
    from bunbase.tenancy import set_tenant

    set_tenant(tenant.id)
    row = ctx.db.get(EventDelivery, delivery_id)
    assert row is not None
    row.attempts += 1
    row.run_id = outcome.run_id
    if outcome.status < 400:
        row.status, row.delivered_at, row.error = "delivered", clock.now(), None
        return {"runId": outcome.run_id}
    row.status = "failed"
    row.error = str(outcome.body.get("error"))[:2000]
    ctx.db.commit()
    if outcome.status < 500:
        raise jobs.PermanentError(f"subscriber rejected the event: {row.error}")
    raise RuntimeError(f"subscriber failed: {row.error}")
