"""Schedules: one-shot, interval and cron, stored as rows (the source of truth).

`ctx.scheduler.once / every / cron(key, ...)` upserts by key, so registering the same key
again updates the schedule and never duplicates it. The one active scheduler process fires
what is due: each firing enqueues the schedule's job with an idempotency key made of the
schedule and its due time, so a firing is never queued twice. A schedule that came due
while the scheduler was down fires once when it is back; its next run is computed from
now, not replayed for every missed slot.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from croniter import croniter
from flask import current_app
from sqlalchemy import select

from bunbase import jobs
from bunbase.clock import clock, parse_duration
from bunbase.db import db, write_intent
from bunbase.errors import BadRequest, NotFound
from bunbase.ids import id_for
from bunbase.runtime_models import JobRun, Schedule
from bunbase.tenancy import current_tenant_id, unscoped
from bunbase.triggers import CronTrigger

if TYPE_CHECKING:
    from bunbase.context import Context
    from bunbase.db import DBSession
    from bunbase.registry import Registry

log = structlog.get_logger("bunbase.schedules")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"Unknown time zone {name!r}") from None


def next_cron(expr: str, timezone: str, after: datetime) -> datetime:
    """The next time (naive UTC) after `after` (naive UTC) that `expr` matches in `timezone`."""
    zone = _zone(timezone)
    local = after.replace(tzinfo=UTC).astimezone(zone)
    nxt = croniter(expr, local).get_next(datetime)
    return nxt.astimezone(UTC).replace(tzinfo=None)  # type: ignore[no-any-return]


def compute_next(s: Schedule, after: datetime) -> datetime | None:
    if s.kind == "once":
        return None
    if s.kind == "cron":
        return next_cron(s.cron or "", s.timezone, after)
    interval = timedelta(seconds=s.interval_seconds or 0)
    base = s.next_run_at or after
    if base <= after and interval > timedelta(0):
        # the first slot after `after`, in one step (not a loop over every missed slot)
        base += interval * ((after - base) // interval + 1)
    return base


class SchedulerFacade:
    """`ctx.scheduler`."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def _upsert(
        self, key: str, kind: str, job: str, payload: dict[str, Any] | None, **fields: Any
    ) -> Schedule:
        jobs.get(job)  # unknown job names fail here
        ctx = self._ctx
        row = ctx.db.scalar(select(Schedule).where(Schedule.key == key))
        if row is None:
            row = Schedule(
                tenant_id=ctx.tenant.id,
                key=key,
                kind=kind,
                job=job,
                created_at=clock.now(),
                source=ctx.action.name if ctx.action else None,
            )
            ctx.db.add(row)
        row.kind, row.job, row.payload = kind, job, payload or {}
        row.cron, row.interval_seconds, row.run_at = None, None, None
        for name, value in fields.items():
            setattr(row, name, value)
        row.updated_at = clock.now()
        row.next_run_at = row.run_at if kind == "once" else None
        if kind != "once":
            row.next_run_at = compute_next(row, clock.now())
        ctx.db.flush()
        return row

    def once(
        self,
        key: str,
        *,
        run_at: datetime,
        job: str,
        payload: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Schedule:
        """Run `job` once at `run_at`. Re-registering the key moves it; it never doubles."""
        if run_at.tzinfo is not None:
            run_at = run_at.astimezone(UTC).replace(tzinfo=None)
        return self._upsert(key, "once", job, payload, run_at=run_at, timezone="UTC", source=idempotency_key)

    def every(
        self,
        key: str,
        *,
        interval: str | float | timedelta,
        job: str,
        payload: dict[str, Any] | None = None,
    ) -> Schedule:
        seconds = parse_duration(interval).total_seconds()
        if seconds < 1:
            raise BadRequest("An interval must be at least one second")
        return self._upsert(key, "every", job, payload, interval_seconds=seconds, timezone="UTC")

    def cron(
        self,
        key: str,
        *,
        cron: str,
        job: str,
        timezone: str = "UTC",
        payload: dict[str, Any] | None = None,
    ) -> Schedule:
        if not croniter.is_valid(cron):
            raise BadRequest(f"Invalid cron expression {cron!r}")
        _zone(timezone)
        return self._upsert(key, "cron", job, payload, cron=cron, timezone=timezone)

    def cancel(self, key: str) -> None:
        row = self._ctx.db.scalar(select(Schedule).where(Schedule.key == key))
        if row is not None:
            self._ctx.db.delete(row)


# -- operator controls -------------------------------------------------------------------
def get(session: DBSession, schedule_id: str) -> Schedule:
    """The schedule, if it belongs to the tenant in scope (another tenant's id is NotFound).

    A query, not `session.get`: an instance already in the identity map would come back
    from `get` without the tenant filter ever being applied."""
    row: Schedule | None = session.scalar(select(Schedule).where(Schedule.id == schedule_id))
    tenant_id = current_tenant_id()
    if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
        raise NotFound("Schedule not found")
    return row


def pause(row: Schedule) -> None:
    row.paused, row.updated_at = True, clock.now()


def resume(row: Schedule) -> None:
    row.paused, row.updated_at = False, clock.now()
    if row.kind != "once" and (row.next_run_at is None or row.next_run_at < clock.now()):
        row.next_run_at = compute_next(row, clock.now())


def trigger_now(ctx: Context, row: Schedule) -> str:
    """Enqueue the schedule's job right now (after commit), without moving its next run."""
    job_id = _fire(ctx.db, row, clock.now(), manual=True)
    ctx.outbox.after_commit(
        "job", {"job_id": job_id, "queue": jobs.get(row.job).queue, "timeout": jobs.timeout_of(row.job)}
    )
    return job_id


# -- firing ------------------------------------------------------------------------------
def _fire(session: DBSession, row: Schedule, due: datetime, *, manual: bool = False) -> str:
    tag = "manual:" + clock.now().isoformat() if manual else due.isoformat()
    job_id = id_for("job", row.tenant_id, row.job, f"schedule:{row.id}:{tag}")
    if session.get(JobRun, job_id) is None:
        session.add(
            jobs.job_row(
                job_id,
                row.tenant_id,
                row.job,
                dict(row.payload),
                queue=jobs.get(row.job).queue,
                source=f"schedule:{row.key}",
                idempotency_key=f"schedule:{row.id}:{tag}",
            )
        )
    row.last_run_at, row.last_job_id = clock.now(), job_id
    row.run_count += 1
    return job_id


def fire_due(limit: int = 200) -> list[str]:
    """Fire every due, unpaused schedule once; returns the job ids queued."""
    now = clock.now()
    fired: list[tuple[str, str, str, int]] = []
    with unscoped(), write_intent():
        stmt = (
            select(Schedule)
            .where(Schedule.paused.is_(False), Schedule.next_run_at <= now)
            .order_by(Schedule.next_run_at)
            .limit(limit)
        )
        if db.engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        for row in db.session.scalars(stmt):
            due = row.next_run_at or now
            job_id = _fire(db.session, row, due)
            row.next_run_at = compute_next(row, now)
            fired.append((job_id, row.tenant_id, jobs.get(row.job).queue, jobs.timeout_of(row.job)))
        db.session.commit()
    for job_id, tenant_id, queue_name, timeout in fired:
        jobs._push(job_id, tenant_id, queue_name, timeout)
    return [f[0] for f in fired]


# -- crons declared on actions (`triggers.cron(...)`) --------------------------------------
ACTION_CRON_JOB = "bunbase.action.cron"


def action_cron_key(action_name: str, index: int) -> str:
    return f"action:{action_name}:{index}"


def _declared_crons(registry: Registry) -> dict[str, tuple[str, CronTrigger]]:
    """key -> (action name, trigger) for every `triggers.cron` on a registered action."""
    found: dict[str, tuple[str, CronTrigger]] = {}
    for act in registry.actions.values():
        crons = [t for t in act.triggers if isinstance(t, CronTrigger)]
        for i, trig in enumerate(crons):
            found[action_cron_key(act.name, i)] = (act.name, trig)
    return found


def sync_action_crons(registry: Registry) -> int:
    """Make the `action:<name>:<i>` schedules match the declared crons, for every active
    tenant: create the missing ones, update changed ones (a changed expression or time
    zone moves the next run; pausing by an operator is kept), delete those whose action,
    trigger or tenant is gone. Returns how many rows changed."""
    from bunbase.models import Tenant

    declared = _declared_crons(registry)
    now = clock.now()
    changed = 0
    with unscoped(), write_intent():
        active = set(db.session.scalars(select(Tenant.id).where(Tenant.status == "active")))
        existing = {
            (row.tenant_id, row.key): row
            for row in db.session.scalars(select(Schedule).where(Schedule.key.like("action:%")))
        }
        for (tenant_id, key), row in existing.items():
            if tenant_id not in active or key not in declared:
                db.session.delete(row)
                changed += 1
        for tenant_id in sorted(active):
            for key, (action_name, trig) in declared.items():
                payload = {"action": action_name, "input": dict(trig.input)}
                current = existing.get((tenant_id, key))
                if current is None:
                    current = Schedule(
                        tenant_id=tenant_id,
                        key=key,
                        kind="cron",
                        job=ACTION_CRON_JOB,
                        created_at=now,
                        source=f"action:{action_name}",
                    )
                    db.session.add(current)
                elif (current.kind, current.job, current.cron, current.timezone, current.payload) == (
                    "cron",
                    ACTION_CRON_JOB,
                    trig.expr,
                    trig.timezone,
                    payload,
                ):
                    continue
                moved = current.cron != trig.expr or current.timezone != trig.timezone
                current.kind, current.job, current.payload = "cron", ACTION_CRON_JOB, payload
                current.cron, current.timezone, current.updated_at = trig.expr, trig.timezone, now
                if moved or current.next_run_at is None:
                    current.next_run_at = next_cron(trig.expr, trig.timezone, now)
                changed += 1
        db.session.commit()
    if changed:
        log.info("action crons synced", changed=changed)
    return changed


@jobs.job(ACTION_CRON_JOB, queue="default", retries=3)
def run_action_cron(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Run an action declared with `triggers.cron`, through the executor (trigger "cron"),
    as the system actor. The job id is the idempotency key: a retry after the action
    committed replays its stored outcome instead of running it twice."""
    from bunbase.context import SYSTEM
    from bunbase.executor import Call
    from bunbase.tenancy import set_tenant

    platform = current_app.extensions["bunbase"]
    action = platform.registry.get(payload["action"])
    if action is None:
        raise jobs.PermanentError(f"no action named {payload['action']!r}")
    tenant, trace_id, job_id = ctx.tenant, ctx.trace_id, ctx.run_id
    ctx.db.commit()  # the action runs in its own transaction
    call = Call(
        trigger="cron",
        resolve=lambda: (tenant, SYSTEM),
        trace_id=trace_id,
        idempotency_key=f"cron:{job_id}",
    )
    outcome = platform.executor.run(action, dict(payload.get("input") or {}), call)
    set_tenant(tenant.id)
    if outcome.status < 400:
        return {"runId": outcome.run_id}
    error = str(outcome.body.get("error"))[:2000]
    if outcome.status < 500:
        raise jobs.PermanentError(f"the action refused the cron run: {error}")
    raise RuntimeError(f"the action failed: {error}")
