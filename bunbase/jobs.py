"""Background jobs on RQ, mirrored in the `job_runs` table.

`@job(name)` handlers get `(payload, ctx)` with the same tenant-scoped context as actions.
`ctx.jobs.enqueue(...)` writes the job row in the caller's transaction; an immediate job
goes to RQ through the outbox (after commit), a delayed one waits in the table until the
scheduler finds it due. RQ runs jobs now; everything in the future (delays, retry backoff,
schedules, workflow waits) lives in the database and follows `bunbase.clock`, so it
survives restarts and tests can move time.

Retries: a failing job is retried with exponential backoff and jitter up to its
`retries`; `PermanentError`, or running out of attempts, sends it to the dead-letter queue
(status "dead"), from where it can be replayed or discarded.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from flask import Flask
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from rq import Queue, Worker
from rq.job import Job
from sqlalchemy import bindparam, select, update

from bunbase import redis_conn
from bunbase.actions import REDACTED_FIELDS
from bunbase.clock import clock, parse_duration
from bunbase.db import db, write_intent
from bunbase.errors import BunbaseError, ValidationFailed, format_failure
from bunbase.ids import id_for, new_trace_id
from bunbase.outbox import Effect, courier, register_dispatcher
from bunbase.runtime_models import JobRun
from bunbase.tenancy import tenant_scope, unscoped

if TYPE_CHECKING:
    from bunbase.context import Context

_jobs_t = JobRun.__table__
log = structlog.get_logger("bunbase.jobs")

QUEUES = ("high", "default", "low")
#: jobs of the platform itself (mail, event delivery, workflow steps)
PLATFORM_PREFIX = "bunbase."
JobHandler = Callable[[Any, "Context"], Any]


class PermanentError(BunbaseError):
    """Raise from a job to skip the retries: the job goes straight to the dead-letter queue."""

    status, code, default_message = 500, "permanent_failure", "The job failed permanently"


@dataclass(eq=False)
class JobDef:
    name: str
    handler: JobHandler
    payload: type[BaseModel] | None
    queue: str = "default"
    retries: int = 5
    backoff: float = 2.0
    max_backoff: float = 3600.0
    timeout: int = 300
    #: tenants may enqueue it over the API and replay it with an edited payload
    api: bool = False
    #: payload and result keys shown as "[redacted]" over the API and in Studio
    redact: frozenset[str] = REDACTED_FIELDS


_jobs: dict[str, JobDef] = {}
_app: Flask | None = None
#: per-tenant limit of jobs running at once across all workers (0 = no limit)
tenant_concurrency = 4


def job(
    name: str,
    *,
    payload: type[BaseModel] | None = None,
    queue: str = "default",
    retries: int = 5,
    backoff: float = 2.0,
    timeout: int = 300,
    api: bool = False,
    redact: Sequence[str] = (),
) -> Callable[[JobHandler], JobDef]:
    """Declare a job handler. `retries` counts attempts after the first.

    With `api=True` a tenant administrator may enqueue the job over the API (`POST /v1/jobs`)
    and replay it with an edited payload; otherwise only code enqueues it and a replay runs
    the payload it had. Platform jobs (`bunbase.*`) can never be opened to the API. `redact`
    adds payload and result keys hidden wherever jobs are shown (passwords, tokens and
    secrets always are).
    """
    if queue not in QUEUES:
        raise ValueError(f"job {name}: queue must be one of {QUEUES}")
    if api and name.startswith(PLATFORM_PREFIX):
        raise ValueError(f"job {name}: platform jobs ({PLATFORM_PREFIX}*) are never enqueueable over the API")

    def wrap(fn: JobHandler) -> JobDef:
        existing = _jobs.get(name)
        if existing is not None and existing.handler.__qualname__ != fn.__qualname__:
            raise ValueError(f"job {name!r} is defined twice")
        definition = JobDef(
            name,
            fn,
            payload,
            queue,
            retries,
            backoff,
            timeout=timeout,
            api=api,
            redact=REDACTED_FIELDS | frozenset(redact),
        )
        _jobs[name] = definition
        return definition

    return wrap


def get(name: str) -> JobDef:
    try:
        return _jobs[name]
    except KeyError:
        raise LookupError(f"unknown job {name!r}") from None


def registered() -> dict[str, JobDef]:
    return dict(_jobs)


def bind_app(app: Flask) -> None:
    """Jobs get their app context in one place: the process that runs them binds it."""
    global _app
    _app = app


def bound_app() -> Flask:
    if _app is None:
        raise RuntimeError("no app bound for jobs; start workers with `flask bunbase worker`")
    return _app


def queue(name: str = "default") -> Queue:
    return Queue(name, connection=redis_conn.client())


# -- enqueueing ----------------------------------------------------------------------
def enqueue(
    ctx: Context,
    name: str,
    payload: dict[str, Any] | BaseModel,
    *,
    priority: str | None = None,
    delay: str | float | timedelta | None = None,
    run_at: datetime | None = None,
    idempotency_key: str | None = None,
    retries: int | None = None,
    source: str | None = None,
) -> str:
    """Queue a job from inside a transaction; it is sent once that transaction commits.

    Returns the job id. With an `idempotency_key`, enqueueing the same job again returns the
    first job's id and queues nothing.
    """
    definition = get(name)
    data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else dict(payload)
    if definition.payload is not None:
        try:
            definition.payload.model_validate(data)
        except PydanticValidationError as exc:
            raise ValidationFailed.from_pydantic(exc) from None
    queue_name = priority or definition.queue
    if queue_name not in QUEUES:
        raise ValueError(f"priority must be one of {QUEUES}")
    job_id = id_for("job", ctx.tenant.id, name, idempotency_key)
    if idempotency_key and ctx.db.get(JobRun, job_id) is not None:
        return job_id
    when = run_at or (clock.now() + parse_duration(delay) if delay else None)
    # a new row the transaction only adds: one Core INSERT now, no unit-of-work tracking
    ctx.db.connection().execute(
        _INSERT_JOB,
        job_values(
            job_id,
            ctx.tenant.id,
            name,
            data,
            queue=queue_name,
            run_at=when,
            max_attempts=1 + (definition.retries if retries is None else retries),
            idempotency_key=idempotency_key,
            trace_id=ctx.trace_id,
            parent_run_id=ctx.run_id,
            source=source or (f"action:{ctx.action.name}" if ctx.action else ctx.trigger),
        ),
    )
    if when is None:
        # no outbox row: the queued job row is the durable record (see relay_lost)
        ctx.outbox.after_commit(
            "job", {"job_id": job_id, "queue": queue_name, "timeout": rq_timeout(definition)}
        )
    return job_id


def job_values(
    job_id: str,
    tenant_id: str,
    name: str,
    payload: dict[str, Any],
    *,
    queue: str,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
    trace_id: str | None = None,
    parent_run_id: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """The columns of a new job row: "queued" to run now, "scheduled" to run at `run_at`."""
    attempts_allowed = max_attempts or 1 + get(name).retries
    return {
        "id": job_id,
        "tenant_id": tenant_id,
        "name": name,
        "queue": queue,
        "status": "scheduled" if run_at else "queued",
        "payload": payload,
        "result": None,
        "error": None,
        "history": {"attempts": [], "max_attempts": attempts_allowed},
        "attempts": 0,
        "max_attempts": attempts_allowed,
        "idempotency_key": idempotency_key,
        "trace_id": trace_id or new_trace_id(),
        "parent_run_id": parent_run_id,
        "source": source,
        "run_at": run_at,
        "created_at": clock.now(),
        "started_at": None,
        "finished_at": None,
        "duration_ms": None,
    }


def job_row(job_id: str, tenant_id: str, name: str, payload: dict[str, Any], **options: Any) -> JobRun:
    """A new job row as an ORM object (see `job_values`)."""
    return JobRun(**job_values(job_id, tenant_id, name, payload, **options))


#: every column, always: one compiled INSERT serves every enqueue
_INSERT_JOB = _jobs_t.insert()


#: seconds RQ allows past a job's own timeout, for recording its outcome
TIMEOUT_GRACE = 30


def rq_timeout(definition: JobDef | None) -> int:
    """RQ stops a job (JobTimeoutException, recorded as a failed attempt) that runs past its
    `timeout`; the same figure tells RQ when a silent worker's job counts as abandoned."""
    return definition.timeout + TIMEOUT_GRACE if definition is not None else -1


def timeout_of(name: str) -> int:
    return rq_timeout(_jobs.get(name))


Push = tuple[str, str, str, int]  # job id, tenant id, queue, RQ timeout


def _push(job_id: str, tenant_id: str, queue_name: str, timeout: int = -1) -> None:
    _push_many([(job_id, tenant_id, queue_name, timeout)])


def _push_many(items: list[Push]) -> None:
    """Hand jobs to RQ, each queue's share in one pipelined round trip."""
    by_queue: dict[str, list[tuple[str, str, int]]] = {}
    for job_id, tenant_id, queue_name, timeout in items:
        by_queue.setdefault(queue_name, []).append((job_id, tenant_id, timeout))
    for queue_name, jobs_ in by_queue.items():
        q = queue(queue_name)
        if len(jobs_) == 1:
            job_id, tenant_id, timeout = jobs_[0]
            q.enqueue_call(
                run_job,
                args=(job_id, tenant_id),
                job_id=job_id,
                timeout=timeout,
                result_ttl=0,
                failure_ttl=7 * 86400,
            )
            continue
        q.enqueue_many(
            [
                Queue.prepare_data(
                    run_job,
                    args=(job_id, tenant_id),
                    job_id=job_id,
                    timeout=timeout,
                    result_ttl=0,
                    failure_ttl=7 * 86400,
                )
                for job_id, tenant_id, timeout in jobs_
            ]
        )


def _effect_push(e: Effect) -> Push:
    return (
        e.payload["job_id"],
        e.tenant_id,
        e.payload.get("queue", "default"),
        int(e.payload.get("timeout", -1)),
    )


def _dispatch_job(effect: Effect) -> None:
    _push_many([_effect_push(effect)])


def _dispatch_jobs(effects: list[Effect]) -> None:
    _push_many([_effect_push(e) for e in effects])


register_dispatcher("job", _dispatch_job, batch=_dispatch_jobs)


class JobsFacade:
    """`ctx.jobs`: enqueue from an action, a job or a workflow step."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def enqueue(self, name: str, payload: dict[str, Any] | BaseModel | None = None, **options: Any) -> str:
        return enqueue(self._ctx, name, payload or {}, **options)


# -- running -------------------------------------------------------------------------
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('EXPIRE', KEYS[1], 3600)
  return 1
end
return 0
"""


def _slot_key(tenant_id: str) -> str:
    return f"bunbase:jobs:running:{tenant_id}"


_workers_seen: tuple[float, int] = (-1e9, 0)


def _workers_running() -> int:
    """How many RQ workers serve this Redis (looked up at most every 5 s)."""
    global _workers_seen
    at, count = _workers_seen
    now = time.monotonic()
    if now - at > 5.0:
        count = Worker.count(connection=redis_conn.client())
        _workers_seen = (now, count)
    return count


def _limit_binds() -> bool:
    """Whether the per-tenant limit can bind at all: a tenant cannot run more jobs at once
    than there are workers, so with no more workers than the limit allows, no slot needs
    taking (two Redis round trips saved on every job)."""
    return tenant_concurrency > 0 and _workers_running() > tenant_concurrency


def _acquire_slot(tenant_id: str, job_id: str, timeout: int) -> bool:
    if tenant_concurrency <= 0:
        return True
    now = time.time()
    got = redis_conn.client().eval(
        _ACQUIRE, 1, _slot_key(tenant_id), now, now + timeout, tenant_concurrency, job_id
    )
    return bool(got)


def _release_slot(tenant_id: str, job_id: str) -> None:
    if tenant_concurrency > 0:
        redis_conn.client().zrem(_slot_key(tenant_id), job_id)


def backoff_delay(definition: JobDef, attempt: int) -> float:
    """Exponential backoff with full jitter: up to base * 2^(attempt-1), capped."""
    ceiling = min(definition.max_backoff, definition.backoff * (2 ** (attempt - 1)))
    return float(max(1.0, random.uniform(ceiling / 2, ceiling)))


def run_job(job_id: str, tenant_id: str) -> str:
    """The RQ entry point. Never raises: the outcome is written to the job row."""
    if _app is None:
        raise RuntimeError("no app bound for jobs; start workers with `flask bunbase worker`")
    with _app.app_context(), tenant_scope(tenant_id), write_intent():
        try:
            return _run(job_id, tenant_id)
        finally:
            db.session.remove()


#: the hot path reads and writes the job row with Core: the tenant filter is explicit here,
#: and the ORM's identity map and tenant criteria would cost more than the two statements
_SELECT_JOB = select(
    _jobs_t.c.name,
    _jobs_t.c.status,
    _jobs_t.c.attempts,
    _jobs_t.c.payload,
    _jobs_t.c.trace_id,
    _jobs_t.c.history,
    _jobs_t.c.started_at,
).where(_jobs_t.c.id == bindparam("job_id"), _jobs_t.c.tenant_id == bindparam("tenant_id"))


def _run(job_id: str, tenant_id: str) -> str:
    from bunbase import tenancy_cache
    from bunbase.context import SYSTEM, Context

    # the row lock makes a job delivered twice (a relay re-send) run once: the second
    # delivery waits here, then sees the first one's outcome (SQLite: the write lock)
    stmt = _SELECT_JOB.with_for_update() if db.engine.dialect.name == "postgresql" else _SELECT_JOB
    row = db.session.connection().execute(stmt, {"job_id": job_id, "tenant_id": tenant_id}).one_or_none()
    if row is None or row.status != "queued":  # done, discarded, or waiting for its time
        db.session.rollback()
        return "skipped"
    definition = get(row.name)
    slotted = _limit_binds()
    if slotted and not _acquire_slot(tenant_id, job_id, definition.timeout):
        db.session.execute(
            update(_jobs_t)
            .where(_jobs_t.c.id == job_id)
            .values(status="scheduled", run_at=clock.now() + timedelta(seconds=1))
        )
        db.session.commit()
        return "deferred"
    locked_tx = db.session().get_transaction()  # holds the row lock until it ends
    attempt = row.attempts + 1
    started, t0 = clock.now(), time.perf_counter()
    ctx = Context(
        tenant=tenancy_cache.tenant_ref(tenant_id),
        actor=SYSTEM,
        trace_id=row.trace_id or new_trace_id(),
        run_id=job_id,
        db=db.session,
        trigger="job",
    )
    ctx.extras["attempt"] = attempt
    payload: Any = row.payload
    try:
        with write_intent():
            if definition.payload is not None:
                payload = definition.payload.model_validate(row.payload)
            result = definition.handler(payload, ctx)
            if db.session().get_transaction() is locked_tx:
                # still under the lock taken above: nobody changed the row since it was read
                db.session.flush()
                values = _succeeded(row.history, row.started_at, attempt, started, t0, result)
                db.session.connection().execute(
                    _UPDATE_JOB, {"job_id": job_id, **{f"v_{k}": v for k, v in values.items()}}
                )
            else:
                # the handler committed: the lock from above is gone; decide on the row as it is now
                _finish(_reload(job_id), attempt, started, t0, "succeeded", result=result)
            db.session.commit()
        courier.send(ctx.outbox.items)  # the next jobs go out in the background
        return "succeeded"
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job row
        db.session.rollback()
        _record_failure(job_id, definition, attempt, started, t0, exc)
        return "failed"
    finally:
        if slotted:
            _release_slot(tenant_id, job_id)


_SUCCEEDED_COLUMNS = (
    "history",
    "attempts",
    "status",
    "started_at",
    "duration_ms",
    "error",
    "finished_at",
    "result",
)
_UPDATE_JOB = (
    update(_jobs_t)
    .where(_jobs_t.c.id == bindparam("job_id"))
    .values({c: bindparam(f"v_{c}") for c in _SUCCEEDED_COLUMNS})
)


def _attempt_entry(
    attempt: int, started: datetime, now: datetime, status: str, error: str | None
) -> dict[str, Any]:
    return {
        "attempt": attempt,
        "status": status,
        "started_at": started.isoformat() + "Z",
        "finished_at": now.isoformat() + "Z",
        "error": error,
    }


def _result_value(result: Any) -> dict[str, Any]:
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    return result if isinstance(result, dict) else {"value": result}


def _succeeded(
    history: dict[str, Any] | None,
    first_started: datetime | None,
    attempt: int,
    started: datetime,
    t0: float,
    result: Any,
) -> dict[str, Any]:
    """The column values of a queued job whose attempt succeeded (see `_finish`)."""
    now = clock.now()
    history = dict(history or {})
    entry = _attempt_entry(attempt, started, now, "succeeded", None)
    history["attempts"] = [*history.get("attempts", []), entry]
    return {
        "history": history,
        "attempts": attempt,
        "status": "succeeded",
        "started_at": first_started or started,
        "duration_ms": round((time.perf_counter() - t0) * 1000, 3),
        "error": None,
        "finished_at": now,
        "result": _result_value(result),
    }


def _reload(job_id: str) -> JobRun:
    """The job row as the database has it now, under its row lock. Never the copy read
    before the handler ran: an operator may have discarded the job since (a handler that
    commits, or the rollback after a failure, releases the lock taken at the start)."""
    db.session.flush()  # pending writes of the handler go out before the row is refreshed
    row = db.session.get(JobRun, job_id, with_for_update=True, populate_existing=True)
    assert row is not None
    return row


def _finish(
    row: JobRun,
    attempt: int,
    started: datetime,
    t0: float,
    status: str,
    *,
    result: Any = None,
    error: str | None = None,
) -> None:
    """Record an attempt's outcome on the row. A discarded job stays discarded: the
    attempt is recorded, its outcome does not bring the job back."""
    now = clock.now()
    discarded = row.status == "discarded"
    entry = _attempt_entry(attempt, started, now, status, error)
    history = dict(row.history or {})
    history["attempts"] = [*history.get("attempts", []), entry]
    row.history = history
    row.attempts = attempt
    if not discarded:
        row.status = status
    row.started_at = row.started_at or started
    row.duration_ms = round((time.perf_counter() - t0) * 1000, 3)
    if status == "succeeded":
        row.error = None
        if not discarded:
            row.finished_at = now
        row.result = _result_value(result)
    else:
        row.error = error


def _record_failure(
    job_id: str, definition: JobDef, attempt: int, started: datetime, t0: float, exc: BaseException
) -> None:
    # the row (shown to tenant admins) gets a traceback without server paths; the log gets all
    text = format_failure(exc)
    log.warning("job attempt failed", job_id=job_id, job=definition.name, attempt=attempt, exc_info=exc)
    with write_intent():
        row = _reload(job_id)
        if row.status not in {"queued", "discarded"} or row.attempts >= attempt:
            # the outcome of this attempt is already on the row (the job finished, or a
            # recovery raced its own run): never overwrite it
            db.session.rollback()
            return
        permanent = isinstance(exc, PermanentError)
        if row.status == "discarded":  # discarded while it ran: it stays discarded, no retry
            _finish(row, attempt, started, t0, "failed", error=text)
            log.info("discarded job failed", job=row.name, job_id=job_id, attempt=attempt)
        elif permanent or attempt >= row.max_attempts:
            _finish(row, attempt, started, t0, "dead", error=text)
            row.finished_at = clock.now()
            log.warning(
                "job dead",
                job=row.name,
                job_id=job_id,
                attempts=attempt,
                permanent=permanent,
                trace_id=row.trace_id,
            )
        else:
            _finish(row, attempt, started, t0, "retrying", error=text)
            row.run_at = clock.now() + timedelta(seconds=backoff_delay(definition, attempt))
            log.info(
                "job retry scheduled",
                job=row.name,
                job_id=job_id,
                attempt=attempt,
                run_at=row.run_at.isoformat(),
                trace_id=row.trace_id,
            )
        db.session.commit()


# -- the scheduler's side --------------------------------------------------------------
def enqueue_due(limit: int = 500) -> int:
    """Push delayed jobs and retries whose time has come to RQ."""
    now = clock.now()
    with unscoped(), write_intent():
        stmt = (
            select(JobRun)
            .where(JobRun.status.in_(("scheduled", "retrying")), JobRun.run_at <= now)
            .order_by(JobRun.run_at)
            .limit(limit)
        )
        if db.engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(db.session.scalars(stmt))
        due = [(r.id, r.tenant_id, r.queue, timeout_of(r.name)) for r in rows]
        for r in rows:
            r.status = "queued"
        db.session.commit()
    if due:
        _push_many(due)
    return len(due)


def relay_lost(older_than: timedelta = timedelta(seconds=30), limit: int = 500) -> int:
    """Re-send queued jobs that RQ does not hold: their transaction committed but the
    process died (or Redis was away) before the push. Running the same job id twice is
    harmless: `run_job` skips a job whose row is no longer queued."""
    cutoff = clock.now() - older_than
    with unscoped():
        rows = db.session.execute(
            select(JobRun.id, JobRun.tenant_id, JobRun.queue, JobRun.name)
            .where(JobRun.status == "queued", JobRun.created_at <= cutoff)
            .order_by(JobRun.created_at)
            .limit(limit)
        ).all()
        db.session.rollback()
    if not rows:
        return 0
    conn = redis_conn.client()
    pipe = conn.pipeline(transaction=False)
    for row in rows:
        pipe.exists(Job.key_for(row.id))
    held = pipe.execute()
    lost = [
        (r.id, r.tenant_id, r.queue, timeout_of(r.name))
        for r, present in zip(rows, held, strict=True)
        if not present
    ]
    if lost:
        log.warning("re-sending queued jobs that RQ lost", count=len(lost))
        _push_many(lost)
    return len(lost)


def recover_abandoned(at: float | None = None) -> int:
    """Jobs whose worker died mid-run: RQ's cleanup marks them failed; we count the lost
    attempt and retry them (or send them to the DLQ when out of attempts)."""
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    recovered = 0
    conn = redis_conn.client()
    for name in QUEUES:
        q = Queue(name, connection=conn)
        StartedJobRegistry(queue=q).cleanup(timestamp=at)
        failed = FailedJobRegistry(queue=q)
        for job_id in failed.get_job_ids():
            failed.remove(job_id, delete_job=True)
            if record_lost_attempt(job_id, "the worker died while running this job"):
                recovered += 1
    return recovered


def record_lost_attempt(job_id: str, reason: str) -> bool:
    """A job whose process died under it: count the attempt as failed (retry, or the DLQ
    when out of attempts). False if the job had already finished or is unknown."""
    with unscoped():
        row = db.session.get(JobRun, job_id)
        queued = row is not None and row.status == "queued"
        found = (row.tenant_id, row.name, row.attempts) if row is not None and queued else None
        db.session.rollback()
    if found is None:
        return False
    tenant_id, name, attempts = found
    definition = _jobs.get(name)
    if definition is None:
        return False
    with tenant_scope(tenant_id):
        _record_failure(
            job_id, definition, attempts + 1, clock.now(), time.perf_counter(), RuntimeError(reason)
        )
    return True


# -- operator controls (DLQ) ------------------------------------------------------------
def replay(row: JobRun, payload: dict[str, Any] | None = None) -> JobRun:
    """Run a dead, discarded or succeeded job again with a fresh set of attempts."""
    if row.status not in {"dead", "discarded", "succeeded"}:
        raise ValueError(f"a {row.status} job cannot be replayed")
    if payload is not None:
        row.payload = payload
    allowed = int((row.history or {}).get("max_attempts") or 1 + get(row.name).retries)
    row.status, row.run_at, row.error = "scheduled", clock.now(), None
    row.max_attempts = row.attempts + allowed
    history = dict(row.history or {})
    history["replays"] = [*history.get("replays", []), clock.now().isoformat() + "Z"]
    row.history = history
    return row


def discard(row: JobRun) -> JobRun:
    if row.status in {"succeeded", "discarded"}:
        raise ValueError(f"a {row.status} job cannot be discarded")
    row.status, row.finished_at = "discarded", clock.now()
    return row
