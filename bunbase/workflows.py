"""Durable workflows: ordered steps and waits, persisted per step.

    trial_expired = workflow(
        "billing.trial.expired",
        input=TrialInput,
        steps={
            "downgrade": step(downgrade, compensate=restore),
            "notify": notify,
            "waitGrace": wait.for_duration("7d"),
            "restoreIfPaid": restore_if_paid,
        },
    )

Each step runs as a job ("bunbase.workflow.advance") with its own retries. A step's
result, its own writes and the move to the next step commit in ONE transaction, so a
finished step is never run again after a crash or restart, and an unfinished one is simply
retried. Waits park the run in the database (`wait_until`, `wait_event`); the scheduler
wakes due runs and emitted events resume matching ones. When a step fails for good, the
compensations of the completed steps run in reverse order, each with its own retries; one
that fails for good ends the run "failed" (the earlier compensations are left undone).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import scoped_session

from bunbase import events, jobs
from bunbase.clock import clock, parse_duration
from bunbase.db import DBSession, db, write_intent
from bunbase.errors import Conflict, NotFound, ValidationFailed, describe_failure
from bunbase.ids import id_for, new_id
from bunbase.runtime_models import EventRecord, WorkflowRun, WorkflowStep
from bunbase.tenancy import current_tenant_id, tenant_scope, unscoped

if TYPE_CHECKING:
    from bunbase.context import Context

log = structlog.get_logger("bunbase.workflows")

StepFn = Callable[[Any, "Context"], Any]


@dataclass(frozen=True)
class Step:
    fn: StepFn
    compensate: StepFn | None = None
    retries: int = 3
    name: str = ""


@dataclass(frozen=True)
class Wait:
    kind: str  # "duration" | "until" | "event"
    duration: timedelta | None = None
    until: datetime | None = None
    event: str | None = None
    match: Mapping[str, Any] | Callable[[dict[str, Any], Any], bool] | None = None
    timeout: timedelta | None = None
    on_timeout: str = "fail"  # "fail" | "continue"
    name: str = ""


class wait:
    @staticmethod
    def for_duration(duration: str | float | timedelta) -> Wait:
        return Wait("duration", duration=parse_duration(duration))

    @staticmethod
    def until(when: datetime) -> Wait:
        if when.tzinfo is not None:
            when = when.astimezone(UTC).replace(tzinfo=None)
        return Wait("until", until=when)

    @staticmethod
    def for_event(
        event: str,
        *,
        match: Mapping[str, Any] | Callable[[dict[str, Any], Any], bool] | None = None,
        timeout: str | float | timedelta | None = None,
        on_timeout: str = "fail",
    ) -> Wait:
        """Resume when `event` is emitted in the tenant and `match` holds: a mapping of
        payload fields to values (a value "$input.x" means the workflow input's field x),
        or a callable `(payload, input) -> bool`."""
        if on_timeout not in {"fail", "continue"}:
            raise ValueError("on_timeout must be 'fail' or 'continue'")
        return Wait(
            "event",
            event=event,
            match=match,
            timeout=parse_duration(timeout) if timeout is not None else None,
            on_timeout=on_timeout,
        )


def step(fn: StepFn, *, compensate: StepFn | None = None, retries: int = 3) -> Step:
    return Step(fn, compensate, retries)


@dataclass(eq=False)
class WorkflowDef:
    name: str
    input: type[BaseModel]
    steps: list[Step | Wait] = field(default_factory=list)

    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]


_workflows: dict[str, WorkflowDef] = {}


def workflow(
    name: str, *, input: type[BaseModel], steps: Mapping[str, Step | Wait | StepFn] | list[Any]
) -> WorkflowDef:
    items = (
        list(steps.items())
        if isinstance(steps, Mapping)
        else [
            (getattr(s, "name", "") or getattr(getattr(s, "fn", s), "__name__", f"step{i}"), s)
            for i, s in enumerate(steps)
        ]
    )
    normalized: list[Step | Wait] = []
    for step_name, item in items:
        if isinstance(item, Wait | Step):
            normalized.append(_named(item, step_name))
        elif callable(item):
            normalized.append(Step(item, name=step_name))
        else:
            raise TypeError(f"workflow {name}: step {step_name!r} is not a function or a wait")
    if len({s.name for s in normalized}) != len(normalized):
        raise ValueError(f"workflow {name}: step names must be unique")
    existing = _workflows.get(name)
    if existing is not None and existing.step_names() != [s.name for s in normalized]:
        raise ValueError(f"workflow {name!r} is defined twice")
    definition = WorkflowDef(name, input, normalized)
    _workflows[name] = definition
    return definition


def _named(item: Step | Wait, name: str) -> Step | Wait:
    from dataclasses import replace

    return replace(item, name=name)


def get_def(name: str) -> WorkflowDef:
    try:
        return _workflows[name]
    except KeyError:
        raise NotFound(f"No workflow named {name!r}") from None


def registered() -> dict[str, WorkflowDef]:
    return dict(_workflows)


# -- starting ----------------------------------------------------------------------------
def start(
    ctx: Context, name: str, input: dict[str, Any] | BaseModel, *, idempotency_key: str | None = None
) -> WorkflowRun:
    """Start a run. With `idempotency_key`, starting again with the same key (a subscriber
    that sees its event twice, say) returns the run the first start made."""
    definition = get_def(name)
    data = input.model_dump(mode="json", by_alias=True) if isinstance(input, BaseModel) else dict(input)
    try:
        data = definition.input.model_validate(data).model_dump(mode="json", by_alias=True)
    except PydanticValidationError as exc:
        raise ValidationFailed.from_pydantic(exc) from None
    run_id = id_for("wfr", ctx.tenant.id, name, idempotency_key)
    if idempotency_key:
        existing = ctx.db.get(WorkflowRun, run_id)
        if existing is not None:
            return existing
    run = WorkflowRun(
        id=run_id,
        tenant_id=ctx.tenant.id,
        name=name,
        state="running",
        input=data,
        results={},
        current_step=0,
        trace_id=ctx.trace_id,
        parent_run_id=ctx.run_id,
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    ctx.db.add(run)
    _schedule_advance(ctx, run)
    return run


class WorkflowsFacade:
    """`ctx.workflows.start(name, input)`."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def start(
        self, name: str, input: dict[str, Any] | BaseModel, *, idempotency_key: str | None = None
    ) -> str:
        return start(self._ctx, name, input, idempotency_key=idempotency_key).id


def _schedule_advance(ctx: Context, run: WorkflowRun) -> None:
    definition = get_def(run.name)
    retries = 3
    if run.current_step < len(definition.steps):
        current = definition.steps[run.current_step]
        retries = current.retries if isinstance(current, Step) else 3
    jobs.enqueue(
        ctx,
        "bunbase.workflow.advance",
        {"run_id": run.id, "step": run.current_step},
        retries=retries,
        source=f"workflow:{run.name}",
    )


def _step_row(session: DBSession, run: WorkflowRun, index: int, kind: str) -> WorkflowStep:
    row = session.scalar(
        select(WorkflowStep).where(
            WorkflowStep.run_id == run.id, WorkflowStep.index == index, WorkflowStep.kind == kind
        )
    )
    if row is None:
        definition = get_def(run.name)
        row = WorkflowStep(
            id=new_id("wfs"),
            tenant_id=run.tenant_id,
            run_id=run.id,
            index=index,
            kind=kind,
            name=definition.steps[index].name,
            status="pending",
        )
        session.add(row)
    return row


# -- advancing (a job) -------------------------------------------------------------------
#: a step (or a compensation) may run this long before it is stopped and retried
STEP_TIMEOUT = 3600


@jobs.job("bunbase.workflow.advance", queue="default", retries=3, timeout=STEP_TIMEOUT)
def advance(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    # the run's row lock, held for the step: an operator's pause / cancel / replay waits for
    # the step to end and then decides on the state it left (a redelivered step job waits
    # too, then sees the step done and skips)
    run = _lock_run(ctx.db, payload["run_id"])
    if run is None or run.state != "running" or run.current_step != payload.get("step", run.current_step):
        return {"skipped": True}
    locked_tx, read_step = _transaction(ctx.db), run.current_step
    definition = get_def(run.name)
    if run.current_step >= len(definition.steps):
        _complete(run)
        _save_run(ctx.db, run, locked_tx, read_step)
        return {"state": run.state}
    current = definition.steps[run.current_step]
    if isinstance(current, Wait):
        _enter_wait(ctx, run, current)
        _save_run(ctx.db, run, locked_tx, read_step)
        return {"state": run.state, "waiting": current.name}
    attempt = int(ctx.extras.get("attempt", 1))
    started_at = clock.now()
    input_model = definition.input.model_validate(run.input)
    ctx.extras["workflow"] = {"run_id": run.id, "results": dict(run.results), "step": current.name}
    ctx.logger.info("workflow step", workflow=run.name, run_id=run.id, step=current.name, attempt=attempt)
    try:
        result = current.fn(input_model, ctx)
    except Exception as exc:
        final = isinstance(exc, jobs.PermanentError) or attempt > current.retries
        if final:
            ctx.db.rollback()
            _fail_step(run.id, run.tenant_id, run.current_step, exc)
        raise
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json", by_alias=True)
    _step_completed(ctx.db, run, current.name, attempt, started_at, _jsonable(result))
    run.results = {**run.results, current.name: _jsonable(result)}
    run.current_step += 1
    run.updated_at = clock.now()
    if run.current_step >= len(definition.steps):
        _complete(run)
    else:
        _schedule_advance(ctx, run)
    _save_run(ctx.db, run, locked_tx, read_step)
    return {"state": run.state, "completed": current.name}


_runs_t = WorkflowRun.__table__
_SELECT_RUN = select(_runs_t).where(
    _runs_t.c.id == bindparam("run_id"), _runs_t.c.tenant_id == bindparam("tenant_id")
)
#: what advancing a run may change
_RUN_STATE = ("state", "results", "current_step", "wait_until", "wait_event", "updated_at", "finished_at")
_UPDATE_RUN = (
    update(_runs_t)
    .where(_runs_t.c.id == bindparam("run_id"))
    .values({c: bindparam(f"v_{c}") for c in _RUN_STATE})
)


def _transaction(session: DBSession) -> Any:
    return (session() if isinstance(session, scoped_session) else session).get_transaction()


def _lock_run(session: DBSession, run_id: str) -> WorkflowRun | None:
    """The run as the database has it, under its row lock (SQLite: the write lock the job
    holds), read with one Core statement: a step job's hottest read. The object returned
    is not in the session; `_save_run` writes what advancing changed."""
    conn = session.connection()
    stmt = _SELECT_RUN.with_for_update() if conn.dialect.name == "postgresql" else _SELECT_RUN
    row = conn.execute(stmt, {"run_id": run_id, "tenant_id": current_tenant_id()}).mappings().one_or_none()
    return WorkflowRun(**row) if row is not None else None


def _save_run(session: DBSession, run: WorkflowRun, locked_tx: Any, read_step: int) -> None:
    session.flush()  # the step's own ORM writes go first, as they would at commit
    if _transaction(session) is not locked_tx:
        # the step committed on its own, which released the run's lock: an operator may have
        # paused, cancelled or replayed the run since; their decision stands
        now = _lock_run(session, run.id)
        if now is None or now.state != "running" or now.current_step != read_step:
            return
    session.connection().execute(
        _UPDATE_RUN, {"run_id": run.id, **{f"v_{c}": getattr(run, c) for c in _RUN_STATE}}
    )


_steps_t = WorkflowStep.__table__
_STEP_COMPLETED: dict[str, Any] = {}


def _step_completed_stmt(dialect: str) -> Any:
    """The upsert `_step_completed` runs, built once per dialect (bound parameters only)."""
    stmt = _STEP_COMPLETED.get(dialect)
    if stmt is None:
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        ins = insert(_steps_t).values(
            id=bindparam("id"),
            tenant_id=bindparam("tenant_id"),
            run_id=bindparam("run_id"),
            index=bindparam("index"),
            kind="step",
            name=bindparam("name"),
            status="completed",
            attempts=bindparam("attempts"),
            started_at=bindparam("started_at"),
            finished_at=bindparam("finished_at"),
            result=bindparam("result", type_=_steps_t.c.result.type),
            error=None,
        )
        stmt = _STEP_COMPLETED[dialect] = ins.on_conflict_do_update(
            index_elements=["run_id", "index", "kind"],
            set_={
                "status": "completed",
                "attempts": ins.excluded.attempts,
                "started_at": func.coalesce(_steps_t.c.started_at, ins.excluded.started_at),
                "finished_at": ins.excluded.finished_at,
                "result": ins.excluded.result,
                "error": None,
            },
        )
    return stmt


def _step_completed(
    session: DBSession, run: WorkflowRun, name: str, attempt: int, started_at: datetime, result: Any
) -> None:
    """Record the finished step in one statement: an insert, or an update of the row an
    earlier attempt or a replay left (keeping when it first started)."""
    conn = session.connection()
    conn.execute(
        _step_completed_stmt(conn.dialect.name),
        {
            "id": new_id("wfs"),
            "tenant_id": run.tenant_id,
            "run_id": run.id,
            "index": run.current_step,
            "name": name,
            "attempts": attempt,
            "started_at": started_at,
            "finished_at": clock.now(),
            "result": result,
        },
    )


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


def _complete(run: WorkflowRun) -> None:
    run.state, run.finished_at, run.updated_at = "completed", clock.now(), clock.now()
    run.wait_until = run.wait_event = None


def _enter_wait(ctx: Context, run: WorkflowRun, w: Wait) -> None:
    row = _step_row(ctx.db, run, run.current_step, "step")
    row.status, row.started_at = "waiting", row.started_at or clock.now()
    run.state, run.updated_at = "waiting", clock.now()
    if w.kind == "duration":
        run.wait_until = clock.now() + (w.duration or timedelta(0))
    elif w.kind == "until":
        run.wait_until = w.until
    else:
        run.wait_event = w.event
        run.wait_until = clock.now() + w.timeout if w.timeout else None


def _finish_wait(ctx: Context, run: WorkflowRun, result: Any) -> None:
    row = _step_row(ctx.db, run, run.current_step, "step")
    row.status, row.result, row.finished_at = "completed", result, clock.now()
    definition = get_def(run.name)
    run.results = {**run.results, definition.steps[run.current_step].name: result}
    run.current_step += 1
    run.state, run.wait_until, run.wait_event, run.updated_at = "running", None, None, clock.now()
    _schedule_advance(ctx, run)


def _fail_step(run_id: str, tenant_id: str, index: int, exc: BaseException | str) -> None:
    """Mark the step and the run failed, then start compensating (own transaction)."""
    from bunbase.context import SYSTEM, Context
    from bunbase.ids import new_id, new_trace_id
    from bunbase.tenancy_cache import tenant_ref

    with write_intent():
        run = db.session.get(WorkflowRun, run_id, with_for_update=True, populate_existing=True)
        assert run is not None
        row = _step_row(db.session, run, index, "step")
        message = exc if isinstance(exc, str) else describe_failure(exc)
        row.status, row.error, row.finished_at = "failed", message[:4000], clock.now()
        if run.state in {"cancelled", "completed", "failed", "compensated"}:
            db.session.commit()  # an operator ended the run meanwhile: record the step only
            return
        run.error, run.updated_at = f"step {row.name!r} failed: {message}"[:4000], clock.now()
        ctx = Context(
            tenant=tenant_ref(tenant_id),
            actor=SYSTEM,
            trace_id=run.trace_id or new_trace_id(),
            run_id=new_id("wfx"),
            db=db.session,
            trigger="workflow",
        )
        _begin_compensation(ctx, run)
        db.session.commit()
    from bunbase.outbox import dispatch

    dispatch(ctx.outbox.items)


def _begin_compensation(ctx: Context, run: WorkflowRun) -> None:
    if _pending_compensations(ctx.db, run):
        run.state = "compensating"
        jobs.enqueue(
            ctx,
            "bunbase.workflow.compensate",
            {"run_id": run.id},
            retries=COMPENSATE_RETRIES,
            source=f"workflow:{run.name}",
        )
    else:
        run.state, run.finished_at = "failed", clock.now()


def _pending_compensations(session: DBSession, run: WorkflowRun) -> list[int]:
    definition = get_def(run.name)
    done = {
        r.index
        for r in session.scalars(
            select(WorkflowStep).where(
                WorkflowStep.run_id == run.id,
                WorkflowStep.kind == "compensate",
                WorkflowStep.status == "completed",
            )
        )
    }
    completed = [
        r.index
        for r in session.scalars(
            select(WorkflowStep).where(
                WorkflowStep.run_id == run.id,
                WorkflowStep.kind == "step",
                WorkflowStep.status == "completed",
            )
        )
    ]
    return [
        i
        for i in sorted(completed, reverse=True)
        if isinstance(definition.steps[i], Step) and definition.steps[i].compensate and i not in done  # type: ignore[union-attr]
    ]


#: retries of each compensation; when they run out the run ends "failed"
COMPENSATE_RETRIES = 5


@jobs.job("bunbase.workflow.compensate", queue="default", retries=COMPENSATE_RETRIES, timeout=STEP_TIMEOUT)
def compensate(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Run the next compensation (latest completed step first); one per job."""
    # the run's row lock, held for the compensation: an operator's pause / cancel waits for
    # it to end and then decides on the state it left
    run = ctx.db.get(WorkflowRun, payload["run_id"], with_for_update=True, populate_existing=True)
    if run is None or run.state != "compensating":
        return {"skipped": True}
    pending = _pending_compensations(ctx.db, run)
    if not pending:
        run.state, run.finished_at, run.updated_at = "compensated", clock.now(), clock.now()
        return {"state": run.state}
    index = pending[0]
    definition = get_def(run.name)
    current = definition.steps[index]
    assert isinstance(current, Step) and current.compensate is not None
    row = _step_row(ctx.db, run, index, "compensate")
    attempt = int(ctx.extras.get("attempt", 1))
    row.attempts, row.started_at = attempt, clock.now()
    ctx.extras["workflow"] = {"run_id": run.id, "results": dict(run.results), "step": current.name}
    try:
        current.compensate(definition.input.model_validate(run.input), ctx)
    except Exception as exc:
        if isinstance(exc, jobs.PermanentError) or attempt > COMPENSATE_RETRIES:
            ctx.db.rollback()
            _fail_compensation(run.id, index, attempt, exc)
        raise
    row.status, row.finished_at = "completed", clock.now()
    run.updated_at = clock.now()
    jobs.enqueue(
        ctx,
        "bunbase.workflow.compensate",
        {"run_id": run.id},
        retries=COMPENSATE_RETRIES,
        source=f"workflow:{run.name}",
    )
    return {"compensated": current.name}


def _fail_compensation(run_id: str, index: int, attempt: int, exc: BaseException) -> None:
    """A compensation failed for good: the run ends "failed" (own transaction), naming the
    step whose compensation failed; the earlier compensations are not attempted."""
    with write_intent():
        run = db.session.get(WorkflowRun, run_id, with_for_update=True, populate_existing=True)
        if run is None or run.state != "compensating":
            db.session.rollback()
            return
        row = _step_row(db.session, run, index, "compensate")
        message = describe_failure(exc)
        row.status, row.attempts, row.error = "failed", attempt, message[:4000]
        row.started_at, row.finished_at = row.started_at or clock.now(), clock.now()
        cause = f"{run.error}; " if run.error else ""
        run.error = f"{cause}compensation of step {row.name!r} failed: {message}"[:4000]
        run.state, run.finished_at, run.updated_at = "failed", clock.now(), clock.now()
        db.session.commit()


# -- waking (the scheduler) and events -----------------------------------------------------
def wake_due(limit: int = 200) -> int:
    """Resume runs whose wait is over (duration / until), or time out event waits."""
    from bunbase.context import SYSTEM, Context
    from bunbase.ids import new_id, new_trace_id
    from bunbase.outbox import dispatch
    from bunbase.tenancy_cache import tenant_ref

    now = clock.now()
    with unscoped():
        due = [
            (r.id, r.tenant_id)
            for r in db.session.scalars(
                select(WorkflowRun)
                .where(WorkflowRun.state == "waiting", WorkflowRun.wait_until <= now)
                .order_by(WorkflowRun.wait_until)
                .limit(limit)
            )
        ]
        db.session.rollback()
    woken = 0
    for run_id, tenant_id in due:
        with tenant_scope(tenant_id), write_intent():
            run = db.session.get(WorkflowRun, run_id, with_for_update=True, populate_existing=True)
            if run is None or run.state != "waiting" or not run.wait_until or run.wait_until > now:
                db.session.rollback()
                continue
            ctx = Context(
                tenant=tenant_ref(tenant_id),
                actor=SYSTEM,
                trace_id=run.trace_id or new_trace_id(),
                run_id=new_id("wfx"),
                db=db.session,
                trigger="workflow",
            )
            current = get_def(run.name).steps[run.current_step]
            if isinstance(current, Wait) and current.kind == "event":
                if current.on_timeout == "continue":
                    _finish_wait(ctx, run, {"timedOut": True})
                    db.session.commit()
                else:
                    db.session.rollback()
                    _fail_step(
                        run_id,
                        tenant_id,
                        run.current_step,
                        f"timed out waiting for {current.event}",
                    )
                    woken += 1
                    continue
            else:
                _finish_wait(ctx, run, {"wokeAt": now.isoformat() + "Z"})
                db.session.commit()
        dispatch(ctx.outbox.items)
        woken += 1
    return woken


def _matches(w: Wait, payload: dict[str, Any], run_input: dict[str, Any]) -> bool:
    if w.match is None:
        return True
    if callable(w.match):
        return bool(w.match(payload, run_input))
    for key, expected in w.match.items():
        if isinstance(expected, str) and expected.startswith("$input."):
            expected = run_input.get(expected[len("$input.") :])
        if payload.get(key) != expected:
            return False
    return True


@events.listen
def _resume_on_event(ctx: Context, event: events.Emitted) -> None:
    """In the emitter's transaction: resume runs waiting for this event."""
    if not any(
        isinstance(s, Wait) and s.kind == "event" and s.event == event.name
        for d in _workflows.values()
        for s in d.steps
    ):
        return  # no workflow waits for it: no query on the emitter's hot path
    waiting = ctx.db.scalars(
        select(WorkflowRun)
        .where(WorkflowRun.state == "waiting", WorkflowRun.wait_event == event.name)
        .with_for_update()  # a pause or cancel committed meanwhile is seen, not overwritten
        .execution_options(populate_existing=True)
    ).all()
    for run in waiting:
        current = get_def(run.name).steps[run.current_step]
        if isinstance(current, Wait) and _matches(current, event.payload, run.input):
            _finish_wait(ctx, run, {"event": event.name, "eventId": event.id, "payload": event.payload})


# -- operator controls ----------------------------------------------------------------------
def get_run(session: DBSession, run_id: str) -> WorkflowRun:
    """The run, if it belongs to the tenant in scope (another tenant's id is NotFound).

    A query, not `session.get`: an instance already in the identity map would come back
    from `get` without the tenant filter ever being applied."""
    run: WorkflowRun | None = session.scalar(select(WorkflowRun).where(WorkflowRun.id == run_id))
    tenant_id = current_tenant_id()
    if run is None or (tenant_id is not None and run.tenant_id != tenant_id):
        raise NotFound("Workflow run not found")
    return run


def steps_of(session: DBSession, run_id: str) -> list[WorkflowStep]:
    return list(
        session.scalars(
            select(WorkflowStep)
            .where(WorkflowStep.run_id == run_id)
            .order_by(WorkflowStep.index, WorkflowStep.kind.desc())
        )
    )


#: the key older versions stashed the paused-from state under, inside `results`
_LEGACY_PAUSED_FROM = "_pausedFrom"


def paused_from(run: WorkflowRun) -> str:
    """The state a paused run returns to on resume. A waiting run keeps its wait
    (`wait_until` / `wait_event`) while paused, and a running one never has either, so the
    wait columns say which it was; nothing is stored among the user's step results."""
    legacy = (run.results or {}).get(_LEGACY_PAUSED_FROM)
    if legacy in {"running", "waiting"}:
        return str(legacy)
    return "waiting" if run.wait_until is not None or run.wait_event is not None else "running"


def pause(ctx: Context, run: WorkflowRun) -> WorkflowRun:
    if run.state not in {"running", "waiting"}:
        raise Conflict(f"A {run.state} workflow cannot be paused")
    run.state, run.updated_at = "paused", clock.now()
    return run


def resume(ctx: Context, run: WorkflowRun) -> WorkflowRun:
    if run.state != "paused":
        raise Conflict(f"A {run.state} workflow cannot be resumed")
    previous = paused_from(run)
    if _LEGACY_PAUSED_FROM in (run.results or {}):
        run.results = {k: v for k, v in run.results.items() if k != _LEGACY_PAUSED_FROM}
    run.state, run.updated_at = previous, clock.now()
    if previous == "running":
        _schedule_advance(ctx, run)
    elif run.wait_event:
        _catch_up_on_events(ctx, run)
    return run


def _catch_up_on_events(ctx: Context, run: WorkflowRun) -> None:
    """A run paused while it waited for an event missed the ones emitted meanwhile: the
    first matching one since the wait began ends the wait now."""
    current = get_def(run.name).steps[run.current_step]
    waiting_since = ctx.db.scalar(
        select(WorkflowStep.started_at).where(
            WorkflowStep.run_id == run.id, WorkflowStep.index == run.current_step, WorkflowStep.kind == "step"
        )
    )
    if not isinstance(current, Wait) or waiting_since is None:
        return
    missed = ctx.db.scalars(
        select(EventRecord)
        .where(EventRecord.name == run.wait_event, EventRecord.created_at >= waiting_since)
        .order_by(EventRecord.created_at, EventRecord.id)
    )
    for event in missed:
        if _matches(current, event.payload, run.input):
            _finish_wait(ctx, run, {"event": event.name, "eventId": event.id, "payload": event.payload})
            return


def cancel(ctx: Context, run: WorkflowRun) -> WorkflowRun:
    if run.state in {"completed", "cancelled", "compensated"}:
        raise Conflict(f"A {run.state} workflow cannot be cancelled")
    run.state, run.finished_at, run.updated_at = "cancelled", clock.now(), clock.now()
    run.wait_until = run.wait_event = None
    return run


def retry(ctx: Context, run: WorkflowRun) -> WorkflowRun:
    """Run the failed step again (after a fix), continuing from there."""
    if run.state not in {"failed", "compensated"}:
        raise Conflict(f"A {run.state} workflow has no failed step to retry")
    return replay(ctx, run, from_step=run.current_step, input=None)


#: states with a job in flight (an advance or a compensation): replaying on top of one
#: would run two copies of the workflow side by side
NOT_REPLAYABLE = frozenset({"running", "compensating"})


def step_index(definition: WorkflowDef, from_step: int | str) -> int:
    """A step's index from its name or index ("2" counts as an index); NotFound if none."""
    names = definition.step_names()
    if isinstance(from_step, str):
        text = from_step.strip()
        if text in names:
            return names.index(text)
        if not text.isdigit():
            raise NotFound(f"No step named {text!r} in {definition.name}")
        from_step = int(text)
    if not 0 <= from_step < len(names):
        raise NotFound(f"No step {from_step} in {definition.name} (it has {len(names)})")
    return from_step


def replay(
    ctx: Context, run: WorkflowRun, *, from_step: int | str, input: dict[str, Any] | None
) -> WorkflowRun:
    """Run again from a chosen step, optionally with edited input; earlier results stay.
    A running or compensating run is refused (Conflict): pause or cancel it first."""
    if run.state in NOT_REPLAYABLE:
        raise Conflict(f"A {run.state} workflow cannot be replayed; pause or cancel it first")
    definition = get_def(run.name)
    index = step_index(definition, from_step)
    if input is not None:
        try:
            run.input = definition.input.model_validate(input).model_dump(mode="json", by_alias=True)
        except PydanticValidationError as exc:
            raise ValidationFailed.from_pydantic(exc) from None
    ctx.db.execute(delete(WorkflowStep).where(WorkflowStep.run_id == run.id, WorkflowStep.index >= index))
    ctx.db.execute(
        delete(WorkflowStep).where(WorkflowStep.run_id == run.id, WorkflowStep.kind == "compensate")
    )
    keep = set(definition.step_names()[:index])
    run.results = {k: v for k, v in run.results.items() if k in keep}
    run.current_step, run.state, run.error = index, "running", None
    run.finished_at = run.wait_until = run.wait_event = None
    run.updated_at = clock.now()
    _schedule_advance(ctx, run)
    return run
