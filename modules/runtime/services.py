"""Operator controls over the async runtime (jobs, schedules, workflows, events).

Plain functions on top of the kernel (`bunbase.jobs`, `bunbase.schedules`,
`bunbase.workflows`): the lookups are tenant-checked, the kernel's ValueError / LookupError
become typed errors, and the wire shapes are built here so the API and Studio agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import Select, and_, func, or_, select

from bunbase import cursors, jobs, schedules, workflows
from bunbase.actions import REDACTED, REDACTED_FIELDS, redact
from bunbase.clock import clock
from bunbase.errors import Conflict, Forbidden, NotFound, ValidationFailed, scrub_paths
from bunbase.models import ActionLog, ActionRun
from bunbase.runtime_models import (
    EventDelivery,
    EventRecord,
    JobRun,
    Schedule,
    WorkflowRun,
    WorkflowStep,
)

if TYPE_CHECKING:
    from bunbase.context import Context
    from bunbase.db import DBSession

JOB_STATUSES = ("queued", "scheduled", "retrying", "succeeded", "dead", "discarded")
REPLAYABLE = ("dead", "discarded", "succeeded")
DISCARDABLE = ("queued", "scheduled", "retrying", "dead")
WORKFLOW_STATES = (
    "running",
    "waiting",
    "paused",
    "completed",
    "failed",
    "compensating",
    "compensated",
    "cancelled",
)
#: one bulk call touches at most this many jobs; the caller repeats for the rest
BULK_LIMIT = 1000


def iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def _owned(
    session: DBSession, model: Any, row_id: str, tenant_id: str, what: str, *, lock: bool = False
) -> Any:
    """A row of the current tenant, or NotFound (never another tenant's row). With `lock`,
    the row is read under its row lock (Postgres; SQLite writers hold the write lock), so a
    change decided on its status cannot race a worker that is running the job."""
    stmt = select(model).where(model.id == row_id, model.tenant_id == tenant_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    row = session.scalar(stmt)
    if row is None:
        raise NotFound(f"{what} not found")
    return row


# -- keyset pages over (created_at, id) ----------------------------------------------------
# Job ids are not always time-ordered (idempotent and scheduled jobs get `job_k<hash>` ids),
# so lists order by creation time with the id as tie-breaker, and the cursor carries both.
@dataclass
class Slice:
    rows: list[Any]
    total: int
    next_cursor: str | None  # older rows
    prev_cursor: str | None  # newer rows


def _cursor(row: Any) -> str:
    return cursors.encode(row.__tablename__, row.created_at.isoformat(), row.id)


def _parse_cursor(model: Any, cursor: str) -> tuple[datetime, str]:
    at, row_id = cursors.decode(model.__tablename__, cursor, size=2)
    try:
        return datetime.fromisoformat(at), row_id
    except ValueError:
        raise cursors.invalid(model.__tablename__) from None


def page(
    session: DBSession,
    stmt: Select[Any],
    model: Any,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = 25,
) -> Slice:
    """Newest first. `before` (a cursor) pages to older rows, `after` back to newer ones."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    created, ident = model.created_at, model.id
    if after:
        at, row_id = _parse_cursor(model, after)
        newer = or_(created > at, and_(created == at, ident > row_id))
        rows = list(session.scalars(stmt.where(newer).order_by(created.asc(), ident.asc()).limit(limit + 1)))
        has_newer = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        has_older = True
    else:
        if before:
            at, row_id = _parse_cursor(model, before)
            stmt = stmt.where(or_(created < at, and_(created == at, ident < row_id)))
        rows = list(session.scalars(stmt.order_by(created.desc(), ident.desc()).limit(limit + 1)))
        has_older = len(rows) > limit
        rows = rows[:limit]
        has_newer = bool(before)
    return Slice(
        rows=rows,
        total=int(total),
        next_cursor=_cursor(rows[-1]) if has_older and rows else None,
        prev_cursor=_cursor(rows[0]) if has_newer and rows else None,
    )


# -- jobs ----------------------------------------------------------------------------------
def job_filters(
    *, status: str | None = None, name: str | None = None, queue: str | None = None, search: str | None = None
) -> list[Any]:
    """`search` is a job id, a trace id, or the id of the run that enqueued the job."""
    where: list[Any] = []
    if search:
        where.append(or_(JobRun.id == search, JobRun.trace_id == search, JobRun.parent_run_id == search))
    if status:
        where.append(JobRun.status == status)
    if name:
        where.append(JobRun.name == name)
    if queue:
        where.append(JobRun.queue == queue)
    return where


def get_job(ctx: Context, job_id: str, *, lock: bool = False) -> JobRun:
    return _owned(ctx.db, JobRun, job_id, ctx.tenant.id, "Job", lock=lock)  # type: ignore[no-any-return]


def enqueue_job(
    ctx: Context,
    name: str,
    payload: dict[str, Any],
    *,
    priority: str | None,
    delay: str | None,
    idempotency_key: str | None,
) -> JobRun:
    definition = jobs.registered().get(name)
    if definition is None:
        raise NotFound(f"No job named {name!r}")
    if not definition.api:
        raise Forbidden(
            f"The job {name!r} cannot be enqueued over the API",
            details={"job": name, "reason": "its definition does not allow it (api=False)"},
        )
    try:
        job_id = jobs.enqueue(
            ctx,
            name,
            payload,
            priority=priority,
            delay=delay or None,
            idempotency_key=idempotency_key,
            source=f"action:{ctx.action.name}" if ctx.action else "api",
        )
    except ValueError as exc:  # a bad delay ("3 parsecs") or priority
        raise ValidationFailed(
            str(exc),
            details=[
                {
                    "field": "delay" if "duration" in str(exc) else "priority",
                    "message": str(exc),
                    "type": "value_error",
                }
            ],
        ) from None
    ctx.db.flush()
    return get_job(ctx, job_id)


def _job_def(name: str) -> jobs.JobDef | None:
    return jobs.registered().get(name)


def payload_editable(name: str) -> bool:
    """Whether a replay may change the job's payload: only jobs declared with `api=True`."""
    definition = _job_def(name)
    return definition is not None and definition.api


def _redacted(name: str, value: Any) -> Any:
    definition = _job_def(name)
    return redact(value, definition.redact if definition is not None else REDACTED_FIELDS)


def job_to_wire(row: JobRun, *, full: bool = True) -> dict[str, Any]:
    """A job as tenants see it: payload and result redacted as run records are, errors
    without server paths (the rows store them so since this was introduced; older rows are
    scrubbed here)."""
    history = dict(row.history or {})
    out: dict[str, Any] = {
        "jobId": row.id,
        "name": row.name,
        "queue": row.queue,
        "status": row.status,
        "attempts": row.attempts,
        "maxAttempts": row.max_attempts,
        "source": row.source,
        "traceId": row.trace_id,
        "runAt": iso(row.run_at),
        "createdAt": iso(row.created_at),
        "finishedAt": iso(row.finished_at),
    }
    if full:
        out.update(
            payload=_redacted(row.name, row.payload),
            payloadEditable=payload_editable(row.name),
            result=_redacted(row.name, row.result),
            error=scrub_paths(row.error) if row.error else None,
            idempotencyKey=row.idempotency_key,
            parentRunId=row.parent_run_id,
            timings={
                "createdAt": iso(row.created_at),
                "runAt": iso(row.run_at),
                "startedAt": iso(row.started_at),
                "finishedAt": iso(row.finished_at),
                "durationMs": row.duration_ms,
                "waitedMs": round((row.started_at - row.created_at).total_seconds() * 1000, 3)
                if row.started_at
                else None,
            },
            history={
                "attempts": [
                    {
                        "attempt": a.get("attempt"),
                        "status": a.get("status"),
                        "startedAt": a.get("started_at"),
                        "finishedAt": a.get("finished_at"),
                        "error": scrub_paths(a["error"]) if a.get("error") else None,
                    }
                    for a in history.get("attempts", [])
                ],
                "replays": list(history.get("replays", [])),
            },
        )
    return out


def _audit(
    ctx: Context, target_id: str, target_type: str, before: dict[str, Any], after: dict[str, Any]
) -> None:
    ctx.audit.record(target_type=target_type, target_id=target_id, diff={"before": before, "after": after})


def replay_job(ctx: Context, row: JobRun, payload: dict[str, Any] | None = None) -> JobRun:
    """Run a finished job again. A new `payload` is taken only for jobs declared with
    `api=True`; a value shown as "[redacted]" keeps the one the job had."""
    if payload is not None:
        if not payload_editable(row.name):
            raise Forbidden(
                f"The payload of {row.name!r} cannot be edited; replay it as it is",
                details={"job": row.name, "reason": "its definition does not allow it (api=False)"},
            )
        payload = _keep_redacted(payload, row.payload or {})
        if payload == row.payload:
            payload = None
    before = {"status": row.status, "attempts": row.attempts}
    if payload is not None:
        before["payload"] = _redacted(row.name, row.payload)
    _validate_payload(row.name, payload)
    try:
        jobs.replay(row, payload)
    except (ValueError, LookupError) as exc:
        raise Conflict(_sentence(exc)) from None
    after: dict[str, Any] = {"status": row.status, "maxAttempts": row.max_attempts}
    if payload is not None:
        after["payload"] = _redacted(row.name, payload)
    _audit(ctx, row.id, "job", before, after)
    return row


def _keep_redacted(new: Any, old: Any) -> Any:
    """`new` with each "[redacted]" placeholder put back to the value it stands for."""
    if new == REDACTED:
        return old
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: _keep_redacted(v, old.get(k)) for k, v in new.items()}
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        return [_keep_redacted(n, o) for n, o in zip(new, old, strict=True)]
    return new


def discard_job(ctx: Context, row: JobRun) -> JobRun:
    before = row.status
    try:
        jobs.discard(row)
    except ValueError as exc:
        raise Conflict(_sentence(exc)) from None
    _audit(ctx, row.id, "job", {"status": before}, {"status": row.status})
    return row


def _validate_payload(name: str, payload: dict[str, Any] | None) -> None:
    if payload is None:
        return
    try:
        definition = jobs.get(name)
    except LookupError:
        raise Conflict(f"The job {name!r} is no longer registered") from None
    if definition.payload is not None:
        from pydantic import ValidationError as PydanticValidationError

        try:
            definition.payload.model_validate(payload)
        except PydanticValidationError as exc:
            raise ValidationFailed.from_pydantic(exc, "payload") from None


def _sentence(exc: BaseException) -> str:
    text = str(exc).strip("'\"")
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def matching_jobs(
    ctx: Context,
    *,
    job_ids: list[str] | None,
    status: str | None,
    name: str | None,
    queue: str | None,
    eligible: tuple[str, ...],
    search: str | None = None,
) -> tuple[list[JobRun], int]:
    """The rows a bulk call acts on (eligible ones only, oldest first, at most BULK_LIMIT),
    and how many of the named or matching rows were not eligible."""
    if job_ids is not None:
        # locked (in id order), so a job a worker is finishing is judged by its outcome
        rows = list(
            ctx.db.scalars(select(JobRun).where(JobRun.id.in_(job_ids)).order_by(JobRun.id).with_for_update())
        )
        found = {r.id for r in rows}
        ok = [r for r in rows if r.status in eligible]
        return sorted(ok, key=lambda r: (r.created_at, r.id)), len(set(job_ids) - found) + len(rows) - len(ok)
    stmt = select(JobRun).where(
        *job_filters(status=status, name=name, queue=queue, search=search), JobRun.status.in_(eligible)
    )
    stmt = stmt.order_by(JobRun.created_at, JobRun.id).limit(BULK_LIMIT).with_for_update()
    rows = list(ctx.db.scalars(stmt))
    return rows, 0


def count_matching(
    session: DBSession,
    *,
    status: str | None,
    name: str | None,
    queue: str | None,
    eligible: tuple[str, ...],
    search: str | None = None,
) -> int:
    stmt = (
        select(func.count())
        .select_from(JobRun)
        .where(
            *job_filters(status=status, name=name, queue=queue, search=search),
            JobRun.status.in_(eligible),
        )
    )
    return int(session.scalar(stmt) or 0)


def bulk(
    ctx: Context,
    verb: str,
    *,
    job_ids: list[str] | None,
    status: str | None,
    name: str | None,
    queue: str | None,
    expected_count: int | None,
    search: str | None = None,
) -> dict[str, Any]:
    eligible = REPLAYABLE if verb == "replay" else DISCARDABLE
    if job_ids is None and status is None:
        raise ValidationFailed(
            "Name the jobs (jobIds) or give a filter with a status",
            details=[{"field": "filter.status", "message": "required without jobIds", "type": "missing"}],
        )
    if job_ids is None:
        total = count_matching(
            ctx.db, status=status, name=name, queue=queue, eligible=eligible, search=search
        )
        if expected_count is not None and total != expected_count:
            raise Conflict(
                f"{total} jobs match now, not {expected_count}; review the list and try again",
                details={"matching": total, "expected": expected_count},
            )
    rows, skipped = matching_jobs(
        ctx, job_ids=job_ids, status=status, name=name, queue=queue, eligible=eligible, search=search
    )
    if job_ids is not None and expected_count is not None and len(rows) != expected_count:
        raise Conflict(
            f"{len(rows)} of the selected jobs can be {verb}ed now, not {expected_count}",
            details={"matching": len(rows), "expected": expected_count},
        )
    changed: list[str] = []
    for row in rows:
        if verb == "replay":
            jobs.replay(row)
        else:
            jobs.discard(row)
        changed.append(row.id)
    remaining = 0
    if job_ids is None:
        ctx.db.flush()
        remaining = count_matching(
            ctx.db, status=status, name=name, queue=queue, eligible=eligible, search=search
        )
    if changed:
        ctx.audit.record(
            target_type="job",
            diff={
                "before": {
                    "filter": {"status": status, "name": name, "queue": queue, "search": search}
                    if job_ids is None
                    else None
                },
                "after": {
                    "status": "scheduled" if verb == "replay" else "discarded",
                    "count": len(changed),
                    "jobIds": changed[:200],
                },
            },
        )
    return {"count": len(changed), "skipped": skipped, "remaining": remaining, "jobIds": changed}


def queue_stats(session: DBSession) -> list[dict[str, Any]]:
    """Per RQ queue: its depth and running count (all workspaces: RQ queues are shared) and
    this workspace's queued rows with the age of the oldest. A job waits from the moment it
    became due: its `run_at` for a delayed, retried or replayed job, else its creation."""
    now = clock.now()
    due_since = func.coalesce(JobRun.run_at, JobRun.created_at)
    rows = dict(
        (q, (n, oldest))
        for q, n, oldest in session.execute(
            select(JobRun.queue, func.count(), func.min(due_since))
            .where(JobRun.status == "queued")
            .group_by(JobRun.queue)
        ).all()
    )
    out = []
    for name in jobs.QUEUES:
        q = jobs.queue(name)
        depth: int | None
        running: int | None
        failed: int | None
        try:
            depth, running = q.count, StartedJobRegistry(queue=q).count
            failed = FailedJobRegistry(queue=q).count
        except Exception:  # noqa: BLE001 - Redis down: the page still renders
            depth = running = failed = None
        queued, oldest = rows.get(name, (0, None))
        out.append(
            {
                "name": name,
                "depth": depth,
                "running": running,
                "failed": failed,
                "queued": int(queued or 0),
                "oldest_age": (now - _as_datetime(oldest)).total_seconds() if oldest else None,
            }
        )
    return out


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def status_counts(session: DBSession, *, name: str | None = None, queue: str | None = None) -> dict[str, int]:
    stmt = (
        select(JobRun.status, func.count())
        .where(*job_filters(name=name, queue=queue))
        .group_by(JobRun.status)
    )
    counts = {s: 0 for s in JOB_STATUSES}
    counts.update({s: int(n) for s, n in session.execute(stmt).all()})
    return counts


# -- schedules -----------------------------------------------------------------------------
def get_schedule(ctx: Context, schedule_id: str) -> Schedule:
    return _owned(ctx.db, Schedule, schedule_id, ctx.tenant.id, "Schedule")  # type: ignore[no-any-return]


def schedule_to_wire(s: Schedule) -> dict[str, Any]:
    return {
        "scheduleId": s.id,
        "key": s.key,
        "kind": s.kind,
        "job": s.job,
        "payload": s.payload,
        "cron": s.cron,
        "intervalSeconds": s.interval_seconds,
        "timezone": s.timezone,
        "runAt": iso(s.run_at),
        "nextRunAt": iso(s.next_run_at),
        "lastRunAt": iso(s.last_run_at),
        "lastJobId": s.last_job_id,
        "runCount": s.run_count,
        "paused": s.paused,
        "source": s.source,
    }


def pause_schedule(ctx: Context, row: Schedule) -> Schedule:
    if row.paused:
        raise Conflict("The schedule is already paused")
    schedules.pause(row)
    _audit(ctx, row.id, "schedule", {"paused": False}, {"paused": True})
    return row


def resume_schedule(ctx: Context, row: Schedule) -> Schedule:
    if not row.paused:
        raise Conflict("The schedule is not paused")
    before = iso(row.next_run_at)
    schedules.resume(row)
    _audit(
        ctx,
        row.id,
        "schedule",
        {"paused": True, "nextRunAt": before},
        {"paused": False, "nextRunAt": iso(row.next_run_at)},
    )
    return row


def trigger_schedule(ctx: Context, row: Schedule) -> str:
    try:
        job_id = schedules.trigger_now(ctx, row)
    except LookupError as exc:
        raise Conflict(f"The schedule's job is not registered: {exc}") from None
    _audit(
        ctx, row.id, "schedule", {"runCount": row.run_count - 1}, {"runCount": row.run_count, "jobId": job_id}
    )
    return job_id


# -- workflows -----------------------------------------------------------------------------
def get_run(ctx: Context, run_id: str, *, lock: bool = False) -> WorkflowRun:
    """With `lock` (operator controls): read under the run's row lock, which a running
    step holds too, so a pause or cancel is decided on the run's real state, after the step."""
    return _owned(ctx.db, WorkflowRun, run_id, ctx.tenant.id, "Workflow run", lock=lock)  # type: ignore[no-any-return]


def _definition(name: str) -> workflows.WorkflowDef | None:
    return workflows.registered().get(name)


def public_results(results: dict[str, Any] | None) -> dict[str, Any]:
    """The run's step results. Runs paused by an older version may still carry its
    `_pausedFrom` bookkeeping key (dropped on resume); it is not a step's result."""
    return {k: v for k, v in (results or {}).items() if k != "_pausedFrom"}


def timeline(session: DBSession, run: WorkflowRun) -> list[dict[str, Any]]:
    """One entry per declared step (pending ones included), with its compensation."""
    definition = _definition(run.name)
    rows = workflows.steps_of(session, run.id)
    by_index: dict[int, dict[str, WorkflowStep]] = {}
    for r in rows:
        by_index.setdefault(r.index, {})[r.kind] = r
    declared: list[tuple[str, str, Any]] = []
    if definition is not None:
        for s in definition.steps:
            declared.append((s.name, "wait" if isinstance(s, workflows.Wait) else "step", s))
    else:  # the definition is gone: show what was recorded
        for i in sorted(by_index):
            first = next(iter(by_index[i].values()))
            declared.append((first.name, "step", None))
    out = []
    for index, (name, kind, spec) in enumerate(declared):
        recorded = by_index.get(index, {})
        row = recorded.get("step")
        comp = recorded.get("compensate")
        status = row.status if row else "pending"
        if row is None and index < run.current_step:
            status = "skipped"
        entry: dict[str, Any] = {
            "index": index,
            "name": name,
            "kind": kind,
            "status": status,
            "current": index == run.current_step and run.state not in {"completed"},
            "attempts": row.attempts if row else 0,
            "maxAttempts": (spec.retries + 1) if isinstance(spec, workflows.Step) else None,
            "result": row.result if row else None,
            "error": row.error if row else None,
            "startedAt": iso(row.started_at) if row else None,
            "finishedAt": iso(row.finished_at) if row else None,
            "wait": None,
            "compensation": None,
        }
        if isinstance(spec, workflows.Wait):
            entry["wait"] = {
                "kind": spec.kind,
                "event": spec.event,
                "duration": spec.duration.total_seconds() if spec.duration else None,
                "timeout": spec.timeout.total_seconds() if spec.timeout else None,
                "until": iso(run.wait_until) if index == run.current_step else iso(spec.until),
            }
        if comp is not None:
            entry["compensation"] = {
                "status": comp.status,
                "attempts": comp.attempts,
                "error": comp.error,
                "finishedAt": iso(comp.finished_at),
            }
        out.append(entry)
    return out


def run_to_wire(session: DBSession, run: WorkflowRun, *, full: bool = True) -> dict[str, Any]:
    definition = _definition(run.name)
    names = definition.step_names() if definition else []
    out: dict[str, Any] = {
        "runId": run.id,
        "name": run.name,
        "state": run.state,
        "currentStep": run.current_step,
        "currentStepName": names[run.current_step] if run.current_step < len(names) else None,
        "stepCount": len(names),
        "error": run.error,
        "traceId": run.trace_id,
        "waitUntil": iso(run.wait_until),
        "waitEvent": run.wait_event,
        "createdAt": iso(run.created_at),
        "updatedAt": iso(run.updated_at),
        "finishedAt": iso(run.finished_at),
    }
    if full:
        out.update(input=run.input, results=public_results(run.results), steps=timeline(session, run))
    return out


def start_workflow(ctx: Context, name: str, data: dict[str, Any]) -> WorkflowRun:
    if name not in workflows.registered():
        raise NotFound(f"No workflow named {name!r}")
    run = workflows.start(ctx, name, data)
    ctx.audit.record(
        target_type="workflow_run", target_id=run.id, diff={"after": {"name": name, "input": run.input}}
    )
    return run


def control(ctx: Context, run: WorkflowRun, verb: str) -> WorkflowRun:
    if _definition(run.name) is None:
        raise Conflict(f"The workflow {run.name!r} is no longer registered")
    before = run.state
    fn = {
        "pause": workflows.pause,
        "resume": workflows.resume,
        "cancel": workflows.cancel,
        "retry": workflows.retry,
    }[verb]
    fn(ctx, run)
    _audit(ctx, run.id, "workflow_run", {"state": before}, {"state": run.state})
    return run


def step_index(run: WorkflowRun, from_step: int | str) -> int:
    definition = _definition(run.name)
    if definition is None:
        raise Conflict(f"The workflow {run.name!r} is no longer registered")
    return workflows.step_index(definition, from_step)


def replay_workflow(
    ctx: Context, run: WorkflowRun, from_step: int | str, data: dict[str, Any] | None
) -> WorkflowRun:
    index = step_index(run, from_step)
    before = {"state": run.state, "currentStep": run.current_step}
    if data is not None:
        before["input"] = run.input
    workflows.replay(ctx, run, from_step=index, input=data)
    after: dict[str, Any] = {"state": run.state, "currentStep": index}
    if data is not None:
        after["input"] = run.input
    _audit(ctx, run.id, "workflow_run", before, after)
    return run


# -- events --------------------------------------------------------------------------------
def deliveries_of(session: DBSession, event_ids: list[str]) -> dict[str, list[EventDelivery]]:
    out: dict[str, list[EventDelivery]] = {}
    if not event_ids:
        return out
    for d in session.scalars(
        select(EventDelivery).where(EventDelivery.event_id.in_(event_ids)).order_by(EventDelivery.id)
    ):
        out.setdefault(d.event_id, []).append(d)
    return out


def delivery_to_wire(d: EventDelivery) -> dict[str, Any]:
    return {
        "deliveryId": d.id,
        "subscriber": d.subscriber,
        "status": d.status,
        "attempts": d.attempts,
        "jobId": d.job_id,
        "runId": d.run_id,
        "error": d.error,
        "createdAt": iso(d.created_at),
        "deliveredAt": iso(d.delivered_at),
    }


def event_to_wire(e: EventRecord, deliveries: list[EventDelivery]) -> dict[str, Any]:
    return {
        "eventId": e.id,
        "name": e.name,
        "payload": e.payload,
        "traceId": e.trace_id,
        "sourceRunId": e.source_run_id,
        "createdAt": iso(e.created_at),
        "dispatchedAt": iso(e.dispatched_at),
        "deliveries": [delivery_to_wire(d) for d in deliveries],
    }


# -- run records -----------------------------------------------------------------------------
def action_run_to_wire(session: DBSession, run: ActionRun) -> dict[str, Any]:
    """A run as `GET /v1/runs/{runId}` returns it, with its log lines, oldest first."""
    logs = session.scalars(select(ActionLog).where(ActionLog.run_id == run.id).order_by(ActionLog.id))
    return {
        "id": run.id,
        "actionName": run.action_name,
        "moduleName": run.module_name,
        "triggerType": run.trigger_type,
        "status": run.status,
        "errorCode": run.error_code,
        "httpStatus": run.http_status,
        "traceId": run.trace_id,
        "actorId": run.actor_id,
        "orgId": run.org_id,
        "input": run.input,
        "output": run.output,
        "error": run.error,
        "durationMs": run.duration_ms,
        "startedAt": iso(run.started_at),
        "logs": [
            {"level": line.level, "message": line.message, "meta": line.meta, "at": iso(line.created_at)}
            for line in logs
        ],
    }
