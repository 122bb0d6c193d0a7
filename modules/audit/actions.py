"""Audit actions: search an organization's audit log; verify the tenant's hash chain."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bunbase import Context, Contract, Empty, action, guards, triggers
from bunbase.contracts import Cursor, Timestamp
from bunbase.models import AuditEntry
from modules.audit import services
from modules.rbac.guards import in_org


class ListEventsInput(Contract):
    org_id: str = Field(min_length=1, max_length=40)
    actor: str | None = Field(default=None, max_length=320)
    action: str | None = Field(default=None, max_length=200)
    target: str | None = Field(default=None, max_length=160)
    from_: Timestamp | None = Field(default=None, alias="from")
    to: Timestamp | None = None
    cursor: Cursor | None = None
    limit: int = Field(default=50, ge=1, le=200)


class EventOut(Contract):
    id: str
    seq: int | None
    created_at: Timestamp
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    org_id: str | None
    diff: dict[str, Any] | None
    decision: str | None
    ip: str | None
    run_id: str | None
    trace_id: str | None
    hash: str | None

    @classmethod
    def of(cls, e: AuditEntry) -> EventOut:
        return cls(
            id=e.id,
            seq=e.seq,
            created_at=e.created_at,
            actor_type=e.actor_type,
            actor_id=e.actor_id,
            action=e.action,
            target_type=e.target_type,
            target_id=e.target_id,
            org_id=e.org_id,
            diff=e.diff,
            decision=e.decision,
            ip=e.ip,
            run_id=e.run_id,
            trace_id=e.trace_id,
            hash=e.hash,
        )


class EventList(Contract):
    items: list[EventOut]
    total: int
    next_cursor: str | None


class VerifyOutput(Contract):
    ok: bool
    checked: int
    unsealed: int
    first_broken_seq: int | None
    entry_id: str | None
    reason: str | None
    verified_at: str


@action(
    name="audit.event.list",
    input=ListEventsInput,
    output=EventList,
    triggers=[triggers.api("GET", "/events")],
    guards=[in_org()],
    permissions=["audit:read"],
    description="An organization's audit log, newest first: filter by actor, action, "
    "target and time (`from`, `to`); page with `cursor` and `limit`.",
)
def list_events(input: ListEventsInput, ctx: Context) -> EventList:
    services.seal_before_read(ctx.db, ctx.tenant.id)
    page = services.list_events(
        ctx.db,
        services.EventFilters(
            org_id=input.org_id,
            actor=input.actor,
            action=input.action,
            target=input.target,
            since=input.from_,
            until=input.to,
        ),
        cursor=input.cursor,
        limit=input.limit,
    )
    return EventList(
        items=[EventOut.of(e) for e in page.items], total=page.total, next_cursor=page.next_cursor
    )


@action(
    name="audit.chain.verify",
    input=Empty,
    output=VerifyOutput,
    triggers=[triggers.api("POST", "/chain/verify")],
    guards=[guards.tenant_admin()],
    mutating=False,
    audit=False,
    description="Recompute this workspace's audit hash chain; reports the first broken seq.",
)
def verify_chain(input: Empty, ctx: Context) -> VerifyOutput:
    result = services.verify(ctx.tenant.id)
    return VerifyOutput(
        ok=result.ok,
        checked=result.checked,
        unsealed=result.unsealed,
        first_broken_seq=result.first_broken_seq,
        entry_id=result.entry_id,
        reason=result.reason,
        verified_at=result.verified_at,
    )
