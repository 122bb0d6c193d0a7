"""Typed events: `ctx.events.emit("ticket.created", payload)`.

The event row, one delivery row per subscriber and one job per delivery are written in the
emitter's transaction, so an event exists and is delivered only if the emitter commits.
Deliveries run through the job queue (across processes, with retries: at least once), and
each is recorded. Subscribers are actions with `triggers.event(name)`; waiting workflows
are resumed by the listeners registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import current_app
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from bunbase import jobs
from bunbase.clock import clock
from bunbase.errors import ValidationFailed
from bunbase.ids import new_id
from bunbase.runtime_models import EventDelivery, EventRecord
from bunbase.triggers import EventTrigger

if TYPE_CHECKING:
    from bunbase.actions import Action
    from bunbase.context import Context

_types: dict[str, type[BaseModel]] = {}
Listener = Callable[["Context", EventRecord], None]
_listeners: list[Listener] = []


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


def subscribers(name: str) -> list[Action]:
    registry = current_app.extensions["bunbase"].registry
    return [
        act
        for act in registry.actions.values()
        if any(isinstance(t, EventTrigger) and t.event == name for t in act.triggers)
    ]


def emit(ctx: Context, name: str, payload: dict[str, Any] | BaseModel) -> EventRecord:
    data = payload.model_dump(mode="json", by_alias=True) if isinstance(payload, BaseModel) else dict(payload)
    model = _types.get(name)
    if model is not None:
        try:
            data = model.model_validate(data).model_dump(mode="json", by_alias=True)
        except PydanticValidationError as exc:
            raise ValidationFailed.from_pydantic(exc) from None
    event = EventRecord(
        id=new_id("evt"),  # ids made here, not at flush: no round trip until commit
        tenant_id=ctx.tenant.id,
        name=name,
        payload=data,
        trace_id=ctx.trace_id,
        source_run_id=ctx.run_id,
        created_at=clock.now(),
    )
    ctx.db.add(event)
    for act in subscribers(name):
        delivery = EventDelivery(
            id=new_id("dlv"),
            tenant_id=ctx.tenant.id,
            event_id=event.id,
            subscriber=act.name,
            status="queued",
            created_at=clock.now(),
        )
        ctx.db.add(delivery)
        delivery.job_id = jobs.enqueue(
            ctx, "bunbase.event.deliver", {"delivery_id": delivery.id}, source=f"event:{name}"
        )
    for listener in _listeners:
        listener(ctx, event)
    return event


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
