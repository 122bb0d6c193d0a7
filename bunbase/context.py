"""`ctx`: what an action, job or workflow step may touch."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import structlog

from bunbase.clock import Clock, clock
from bunbase.db import DBSession, append_row
from bunbase.ids import new_id
from bunbase.models import AuditEntry, OutboxItem
from bunbase.outbox import Effect, dispatcher_for

_AUDIT = AuditEntry.__table__

if TYPE_CHECKING:
    from bunbase.actions import Action
    from bunbase.events import EventsFacade
    from bunbase.jobs import JobsFacade
    from bunbase.schedules import SchedulerFacade
    from bunbase.workflows import WorkflowsFacade


@dataclass(frozen=True)
class TenantRef:
    id: str
    slug: str
    name: str
    status: str = "active"


@dataclass(frozen=True)
class Actor:
    """Who is calling. A snapshot, never an ORM object, so it survives commits."""

    kind: str  # "user" | "api_key" | "service" | "system" | "anonymous"
    id: str | None = None
    email: str | None = None
    name: str | None = None
    session_id: str | None = None
    is_tenant_admin: bool = False
    is_platform_operator: bool = False
    permissions: frozenset[str] = frozenset()
    # API keys: what the key may do (never more than its owner), and whom it acts for
    scopes: frozenset[str] | None = None
    key_org_id: str | None = None
    owner_type: str | None = None  # "user" | "service_account"
    owner_id: str | None = None

    @property
    def principal(self) -> tuple[str, str | None]:
        """Whose roles apply: the key's owner for API keys, else the actor itself."""
        if self.kind == "api_key":
            return (self.owner_type or "user", self.owner_id)
        return ("user", self.id)

    @property
    def is_authenticated(self) -> bool:
        return self.kind != "anonymous"


ANONYMOUS = Actor(kind="anonymous")
SYSTEM = Actor(kind="system", id="system", name="system")


@dataclass(frozen=True)
class RequestInfo:
    ip: str | None = None
    user_agent: str | None = None
    method: str | None = None
    path: str | None = None


class RunLogger:
    """Structured logger bound to trace and run ids; lines are kept with the run record."""

    def __init__(self, trace_id: str, run_id: str, **bound: Any) -> None:
        self.lines: list[dict[str, Any]] = []
        self._log = structlog.get_logger("bunbase.run").bind(trace_id=trace_id, run_id=run_id, **bound)

    def _emit(self, level: str, message: str, meta: dict[str, Any]) -> None:
        self.lines.append(
            {"level": level, "message": message, "meta": meta or None, "created_at": clock.now()}
        )
        getattr(self._log, level)(message, **meta)

    def debug(self, message: str, **meta: Any) -> None:
        self._emit("debug", message, meta)

    def info(self, message: str, **meta: Any) -> None:
        self._emit("info", message, meta)

    def warning(self, message: str, **meta: Any) -> None:
        self._emit("warning", message, meta)

    def error(self, message: str, **meta: Any) -> None:
        self._emit("error", message, meta)


class AuditRecorder:
    """Adds audit entries to the action's own transaction."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self.entries: list[dict[str, Any]] = []

    def record(
        self,
        *,
        action: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        org_id: str | None = None,
        diff: dict[str, Any] | None = None,
        decision: str | None = None,
    ) -> dict[str, Any]:
        """The entry (its `id` among the columns). It is written with the transaction's
        other new rows, lives and dies with it, and is sealed into the chain later."""
        ctx = self._ctx
        entry: dict[str, Any] = {
            "id": new_id("aud"),
            "tenant_id": ctx.tenant.id,
            "actor_type": ctx.actor.kind,
            "actor_id": ctx.actor.id,
            "action": action or (ctx.action.name if ctx.action else "unknown"),
            "target_type": target_type,
            "target_id": target_id,
            "org_id": org_id or ctx.org_id,
            "ip": ctx.request.ip,
            "trace_id": ctx.trace_id,
            "run_id": ctx.run_id,
            "decision": decision or ctx.decision,
            "created_at": ctx.clock.now(),
        }
        if diff is not None:  # left out, the column is SQL NULL (None would store JSON null)
            entry["diff"] = diff
        # an append-only row, never changed in the transaction: queued and written with
        # one INSERT (not left to the unit of work, which would track it for nothing)
        append_row(ctx.db, _AUDIT, entry)
        self.entries.append(entry)
        return entry


class Outbox:
    """Effects that leave the process. Written in the transaction, dispatched after commit."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self.items: list[Effect] = []

    def add(self, kind: str, payload: dict[str, Any]) -> Effect:
        dispatcher_for(kind)  # an unknown kind fails now, inside the transaction
        ctx = self._ctx
        effect = Effect(new_id("obx"), ctx.tenant.id, kind, payload, ctx.trace_id)
        ctx.db.add(
            OutboxItem(
                id=effect.id,
                tenant_id=effect.tenant_id,
                kind=kind,
                payload=payload,
                trace_id=ctx.trace_id,
                created_at=ctx.clock.now(),
            )
        )
        self.items.append(effect)
        return effect

    def after_commit(self, kind: str, payload: dict[str, Any]) -> Effect:
        """An effect with no outbox row, for callers whose own rows already say what is
        owed (a queued job row): dispatched after commit, re-sent by their own relay."""
        dispatcher_for(kind)
        ctx = self._ctx
        effect = Effect(new_id("obx"), ctx.tenant.id, kind, payload, ctx.trace_id, durable=False)
        self.items.append(effect)
        return effect


@dataclass(eq=False)
class Context:
    tenant: TenantRef
    actor: Actor
    trace_id: str
    run_id: str
    db: DBSession
    trigger: str = "api"
    action: Action | None = None
    request: RequestInfo = field(default_factory=RequestInfo)
    clock: Clock = clock
    org_id: str | None = None
    #: the org an `in_org` guard checked the caller belongs to (recorded with the run)
    verified_org_id: str | None = None
    decision: str | None = None
    raw_input: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.logger = RunLogger(self.trace_id, self.run_id, tenant_id=self.tenant.id)
        self.audit = AuditRecorder(self)
        self.outbox = Outbox(self)

    # the facades are made on first use: most calls touch one or none of them
    @cached_property
    def jobs(self) -> JobsFacade:
        from bunbase.jobs import JobsFacade

        return JobsFacade(self)

    @cached_property
    def scheduler(self) -> SchedulerFacade:
        from bunbase.schedules import SchedulerFacade

        return SchedulerFacade(self)

    @cached_property
    def events(self) -> EventsFacade:
        from bunbase.events import EventsFacade

        return EventsFacade(self)

    @cached_property
    def workflows(self) -> WorkflowsFacade:
        from bunbase.workflows import WorkflowsFacade

        return WorkflowsFacade(self)

    def now(self) -> datetime:
        return self.clock.now()

    def has_permission(self, permission: str) -> bool:
        """Ask without recording a decision (for UI hints; guards record theirs)."""
        from bunbase import authz

        return authz.decide(self, permission, record=False).allowed
