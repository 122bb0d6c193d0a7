"""Runtime actions: jobs (and the DLQ), schedules, workflow runs and events over HTTP.

Tenant administrators only. Reads return the tenant's own rows (another tenant's id is a
404); every change is audited with its before / after.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from bunbase import Context, Contract, action, guards, triggers
from bunbase.contracts import Cursor
from modules.runtime import services
from modules.runtime.guards import run_visible
from modules.runtime.services import Slice

JobStatus = Literal["queued", "scheduled", "retrying", "succeeded", "dead", "discarded"]
QueueName = Literal["high", "default", "low"]
WorkflowState = Literal[
    "running", "waiting", "paused", "completed", "failed", "compensating", "compensated", "cancelled"
]
Id = Field(min_length=1, max_length=64)
ADMIN = [guards.tenant_admin()]


# -- jobs: contracts -------------------------------------------------------------------------
class EnqueueJobInput(Contract):
    name: str = Field(min_length=1, max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: QueueName | None = None
    delay: str | None = Field(default=None, max_length=40, description='e.g. "30s", "15m", "2h", "1h30m"')
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class EnqueueJobOutput(Contract):
    job_id: str
    status: str


class JobIdInput(Contract):
    job_id: str = Id


class AttemptOut(Contract):
    attempt: int | None
    status: str | None
    started_at: str | None
    finished_at: str | None
    error: str | None


class JobHistory(Contract):
    attempts: list[AttemptOut]
    replays: list[str]


class JobTimings(Contract):
    created_at: str | None
    run_at: str | None
    started_at: str | None
    finished_at: str | None
    duration_ms: float | None
    waited_ms: float | None


class JobSummary(Contract):
    job_id: str
    name: str
    queue: str
    status: str
    attempts: int
    max_attempts: int
    source: str | None
    trace_id: str | None
    run_at: str | None
    created_at: str | None
    finished_at: str | None


class JobOut(JobSummary):
    payload: dict[str, Any]
    payload_editable: bool = Field(description="Whether a replay may edit the payload (api=True jobs)")
    result: dict[str, Any] | None
    error: str | None
    idempotency_key: str | None
    parent_run_id: str | None
    timings: JobTimings
    history: JobHistory


SEARCH = Field(
    default=None,
    max_length=120,
    description="A job id, a trace id, or the id of the run that enqueued the job",
)


class ListJobsInput(Contract):
    status: JobStatus | None = None
    name: str | None = Field(default=None, max_length=200)
    queue: QueueName | None = None
    search: str | None = SEARCH
    cursor: Cursor | None = None
    limit: int = Field(default=20, ge=1, le=100)


class JobList(Contract):
    items: list[JobSummary]
    total: int
    next_cursor: str | None


class ReplayJobInput(Contract):
    job_id: str = Id
    payload: dict[str, Any] | None = None


class JobFilter(Contract):
    status: JobStatus = "dead"
    name: str | None = Field(default=None, max_length=200)
    queue: QueueName | None = None
    search: str | None = SEARCH


class BulkJobsInput(Contract):
    job_ids: list[str] | None = Field(default=None, min_length=1, max_length=services.BULK_LIMIT)
    filter: JobFilter | None = None
    expected_count: int | None = Field(
        default=None, ge=0, description="Refuse (409) when a different number of jobs match"
    )

    @model_validator(mode="after")
    def _one_selector(self) -> BulkJobsInput:
        if (self.job_ids is None) == (self.filter is None):
            raise ValueError("give either jobIds or filter")
        return self


class BulkJobsOutput(Contract):
    count: int
    skipped: int
    remaining: int
    job_ids: list[str]


def _job_list(s: Slice) -> JobList:
    return JobList.model_validate(
        {
            "items": [services.job_to_wire(r, full=False) for r in s.rows],
            "total": s.total,
            "nextCursor": s.next_cursor,
        }
    )


# -- jobs: actions ---------------------------------------------------------------------------
@action(
    name="runtime.job.enqueue",
    input=EnqueueJobInput,
    output=EnqueueJobOutput,
    triggers=[triggers.api("POST", "/jobs")],
    guards=ADMIN,
    description="Queue a registered job now or after a delay; `idempotencyKey` dedupes.",
)
def enqueue_job(input: EnqueueJobInput, ctx: Context) -> EnqueueJobOutput:
    row = services.enqueue_job(
        ctx,
        input.name,
        input.payload,
        priority=input.priority,
        delay=input.delay,
        idempotency_key=input.idempotency_key,
    )
    return EnqueueJobOutput(job_id=row.id, status=row.status)


@action(
    name="runtime.job.get",
    input=JobIdInput,
    output=JobOut,
    triggers=[triggers.api("GET", "/jobs/{jobId}")],
    guards=ADMIN,
    description="One job: status, attempts, payload, result, error, history, trace and timings.",
)
def get_job(input: JobIdInput, ctx: Context) -> JobOut:
    return JobOut.model_validate(services.job_to_wire(services.get_job(ctx, input.job_id)))


@action(
    name="runtime.job.list",
    input=ListJobsInput,
    output=JobList,
    triggers=[triggers.api("GET", "/jobs")],
    guards=ADMIN,
    description="Jobs newest first, filtered by status, name and queue (`cursor`, `limit`).",
)
def list_jobs(input: ListJobsInput, ctx: Context) -> JobList:
    from sqlalchemy import select

    from bunbase.runtime_models import JobRun

    stmt = select(JobRun).where(
        *services.job_filters(status=input.status, name=input.name, queue=input.queue, search=input.search)
    )
    return _job_list(services.page(ctx.db, stmt, JobRun, before=input.cursor, limit=input.limit))


@action(
    name="runtime.job.replay",
    input=ReplayJobInput,
    output=JobOut,
    triggers=[triggers.api("POST", "/jobs/{jobId}/replay")],
    guards=ADMIN,
    description="Run a dead, discarded or succeeded job again; jobs declared `api=True` may take an "
    "edited payload.",
)
def replay_job(input: ReplayJobInput, ctx: Context) -> JobOut:
    row = services.replay_job(ctx, services.get_job(ctx, input.job_id, lock=True), input.payload)
    return JobOut.model_validate(services.job_to_wire(row))


@action(
    name="runtime.job.discard",
    input=JobIdInput,
    output=JobOut,
    triggers=[triggers.api("POST", "/jobs/{jobId}/discard")],
    guards=ADMIN,
    description="Give up on a job: it will not run (again).",
)
def discard_job(input: JobIdInput, ctx: Context) -> JobOut:
    row = services.discard_job(ctx, services.get_job(ctx, input.job_id, lock=True))
    return JobOut.model_validate(services.job_to_wire(row))


def _bulk(verb: str, input: BulkJobsInput, ctx: Context) -> BulkJobsOutput:
    f = input.filter
    out = services.bulk(
        ctx,
        verb,
        job_ids=input.job_ids,
        status=f.status if f else None,
        name=f.name if f else None,
        queue=f.queue if f else None,
        expected_count=input.expected_count,
        search=f.search if f else None,
    )
    return BulkJobsOutput.model_validate(out)


@action(
    name="runtime.job.replay_matching",
    input=BulkJobsInput,
    output=BulkJobsOutput,
    triggers=[triggers.api("POST", "/jobs/replay")],
    guards=ADMIN,
    description="Replay the named jobs, or every job matching a filter (default status dead).",
)
def replay_matching(input: BulkJobsInput, ctx: Context) -> BulkJobsOutput:
    return _bulk("replay", input, ctx)


@action(
    name="runtime.job.discard_matching",
    input=BulkJobsInput,
    output=BulkJobsOutput,
    triggers=[triggers.api("POST", "/jobs/discard")],
    guards=ADMIN,
    description="Discard the named jobs, or every job matching a filter (default status dead).",
)
def discard_matching(input: BulkJobsInput, ctx: Context) -> BulkJobsOutput:
    return _bulk("discard", input, ctx)


# -- schedules ---------------------------------------------------------------------------------
class ScheduleOut(Contract):
    schedule_id: str
    key: str
    kind: str
    job: str
    payload: dict[str, Any]
    cron: str | None
    interval_seconds: float | None
    timezone: str
    run_at: str | None
    next_run_at: str | None
    last_run_at: str | None
    last_job_id: str | None
    run_count: int
    paused: bool
    source: str | None


class ListSchedulesInput(Contract):
    paused: bool | None = None
    job: str | None = Field(default=None, max_length=200)
    cursor: Cursor | None = None
    limit: int = Field(default=50, ge=1, le=200)


class ScheduleList(Contract):
    items: list[ScheduleOut]
    total: int
    next_cursor: str | None


class ScheduleIdInput(Contract):
    schedule_id: str = Id


class TriggerScheduleOutput(Contract):
    schedule_id: str
    job_id: str
    schedule: ScheduleOut


def _schedule(row: Any) -> ScheduleOut:
    return ScheduleOut.model_validate(services.schedule_to_wire(row))


@action(
    name="runtime.schedule.list",
    input=ListSchedulesInput,
    output=ScheduleList,
    triggers=[triggers.api("GET", "/schedules")],
    guards=ADMIN,
    description="The workspace's schedules (once, every, cron) with their next and last runs.",
)
def list_schedules(input: ListSchedulesInput, ctx: Context) -> ScheduleList:
    from sqlalchemy import select

    from bunbase.runtime_models import Schedule

    stmt = select(Schedule)
    if input.paused is not None:
        stmt = stmt.where(Schedule.paused.is_(input.paused))
    if input.job:
        stmt = stmt.where(Schedule.job == input.job)
    s = services.page(ctx.db, stmt, Schedule, before=input.cursor, limit=input.limit)
    return ScheduleList(items=[_schedule(r) for r in s.rows], total=s.total, next_cursor=s.next_cursor)


@action(
    name="runtime.schedule.get",
    input=ScheduleIdInput,
    output=ScheduleOut,
    triggers=[triggers.api("GET", "/schedules/{scheduleId}")],
    guards=ADMIN,
    description="One schedule: its kind, job, payload, next and last runs.",
)
def get_schedule(input: ScheduleIdInput, ctx: Context) -> ScheduleOut:
    return _schedule(services.get_schedule(ctx, input.schedule_id))


@action(
    name="runtime.schedule.pause",
    input=ScheduleIdInput,
    output=ScheduleOut,
    triggers=[triggers.api("POST", "/schedules/{scheduleId}/pause")],
    guards=ADMIN,
    description="Stop a schedule from firing until it is resumed.",
)
def pause_schedule(input: ScheduleIdInput, ctx: Context) -> ScheduleOut:
    return _schedule(services.pause_schedule(ctx, services.get_schedule(ctx, input.schedule_id)))


@action(
    name="runtime.schedule.resume",
    input=ScheduleIdInput,
    output=ScheduleOut,
    triggers=[triggers.api("POST", "/schedules/{scheduleId}/resume")],
    guards=ADMIN,
    description="Resume a paused schedule; its next run is computed from now.",
)
def resume_schedule(input: ScheduleIdInput, ctx: Context) -> ScheduleOut:
    return _schedule(services.resume_schedule(ctx, services.get_schedule(ctx, input.schedule_id)))


@action(
    name="runtime.schedule.trigger",
    input=ScheduleIdInput,
    output=TriggerScheduleOutput,
    triggers=[triggers.api("POST", "/schedules/{scheduleId}/trigger")],
    guards=ADMIN,
    description="Run a schedule's job now, without moving its next run.",
)
def trigger_schedule(input: ScheduleIdInput, ctx: Context) -> TriggerScheduleOutput:
    row = services.get_schedule(ctx, input.schedule_id)
    job_id = services.trigger_schedule(ctx, row)
    return TriggerScheduleOutput(schedule_id=row.id, job_id=job_id, schedule=_schedule(row))


# -- workflows ---------------------------------------------------------------------------------
class StartWorkflowInput(Contract):
    """The path names the workflow; every other field of the body is the workflow's input."""

    model_config = ConfigDict(extra="allow")
    workflow_name: str = Field(min_length=1, max_length=200)


class StartWorkflowOutput(Contract):
    run_id: str
    state: str


class RunIdInput(Contract):
    run_id: str = Id


class WaitOut(Contract):
    kind: str
    event: str | None
    duration: float | None
    timeout: float | None
    until: str | None


class CompensationOut(Contract):
    status: str
    attempts: int
    error: str | None
    finished_at: str | None


class StepOut(Contract):
    index: int
    name: str
    kind: str
    status: str
    current: bool
    attempts: int
    max_attempts: int | None
    result: Any
    error: str | None
    started_at: str | None
    finished_at: str | None
    wait: WaitOut | None
    compensation: CompensationOut | None


class WorkflowRunSummary(Contract):
    run_id: str
    name: str
    state: str
    current_step: int
    current_step_name: str | None
    step_count: int
    error: str | None
    trace_id: str | None
    wait_until: str | None
    wait_event: str | None
    created_at: str | None
    updated_at: str | None
    finished_at: str | None


class WorkflowRunOut(WorkflowRunSummary):
    input: dict[str, Any]
    results: dict[str, Any]
    steps: list[StepOut]


class ListWorkflowRunsInput(Contract):
    name: str | None = Field(default=None, max_length=200)
    state: WorkflowState | None = None
    cursor: Cursor | None = None
    limit: int = Field(default=20, ge=1, le=100)


class WorkflowRunList(Contract):
    items: list[WorkflowRunSummary]
    total: int
    next_cursor: str | None


class ReplayWorkflowInput(Contract):
    run_id: str = Id
    from_step: int | str = Field(description="A step name or its index (0-based)")
    input: dict[str, Any] | None = None


def _run_out(ctx: Context, run: Any) -> WorkflowRunOut:
    return WorkflowRunOut.model_validate(services.run_to_wire(ctx.db, run))


@action(
    name="runtime.workflow.start",
    input=StartWorkflowInput,
    output=StartWorkflowOutput,
    triggers=[triggers.api("POST", "/workflows/{workflowName}/start")],
    guards=ADMIN,
    description="Start a workflow; the JSON body is its input.",
)
def start_workflow(input: StartWorkflowInput, ctx: Context) -> StartWorkflowOutput:
    run = services.start_workflow(ctx, input.workflow_name, dict(input.model_extra or {}))
    return StartWorkflowOutput(run_id=run.id, state=run.state)


@action(
    name="runtime.workflow.get",
    input=RunIdInput,
    output=WorkflowRunOut,
    triggers=[triggers.api("GET", "/workflows/runs/{runId}")],
    guards=ADMIN,
    description="A workflow run: state, input, results and its step timeline.",
)
def get_workflow_run(input: RunIdInput, ctx: Context) -> WorkflowRunOut:
    return _run_out(ctx, services.get_run(ctx, input.run_id))


@action(
    name="runtime.workflow.list",
    input=ListWorkflowRunsInput,
    output=WorkflowRunList,
    triggers=[triggers.api("GET", "/workflows/runs")],
    guards=ADMIN,
    description="Workflow runs newest first, filtered by name and state (`cursor`, `limit`).",
)
def list_workflow_runs(input: ListWorkflowRunsInput, ctx: Context) -> WorkflowRunList:
    from sqlalchemy import select

    from bunbase.runtime_models import WorkflowRun

    stmt = select(WorkflowRun)
    if input.name:
        stmt = stmt.where(WorkflowRun.name == input.name)
    if input.state:
        stmt = stmt.where(WorkflowRun.state == input.state)
    s = services.page(ctx.db, stmt, WorkflowRun, before=input.cursor, limit=input.limit)
    return WorkflowRunList.model_validate(
        {
            "items": [services.run_to_wire(ctx.db, r, full=False) for r in s.rows],
            "total": s.total,
            "nextCursor": s.next_cursor,
        }
    )


def _control(verb: str) -> Any:
    def handler(input: RunIdInput, ctx: Context) -> WorkflowRunOut:
        return _run_out(ctx, services.control(ctx, services.get_run(ctx, input.run_id, lock=True), verb))

    handler.__name__ = f"{verb}_workflow_run"
    handler.__module__ = __name__
    return handler


_VERBS = {
    "pause": "Pause a running or waiting workflow run.",
    "resume": "Resume a paused workflow run where it stopped.",
    "cancel": "Cancel a workflow run; nothing more of it runs.",
    "retry": "Run the failed step of a failed or compensated run again and continue.",
}
pause_workflow_run, resume_workflow_run, cancel_workflow_run, retry_workflow_run = (
    action(
        name=f"runtime.workflow.{verb}",
        input=RunIdInput,
        output=WorkflowRunOut,
        triggers=[triggers.api("POST", f"/workflows/runs/{{runId}}/{verb}")],
        guards=ADMIN,
        description=text,
    )(_control(verb))
    for verb, text in _VERBS.items()
)


@action(
    name="runtime.workflow.replay",
    input=ReplayWorkflowInput,
    output=WorkflowRunOut,
    triggers=[triggers.api("POST", "/workflows/runs/{runId}/replay")],
    guards=ADMIN,
    description="Run again from a step (name or index), optionally with edited input; earlier results stay.",
)
def replay_workflow_run(input: ReplayWorkflowInput, ctx: Context) -> WorkflowRunOut:
    run = services.replay_workflow(
        ctx, services.get_run(ctx, input.run_id, lock=True), input.from_step, input.input
    )
    return _run_out(ctx, run)


# -- events ------------------------------------------------------------------------------------
class DeliveryOut(Contract):
    delivery_id: str
    subscriber: str
    status: str
    attempts: int
    job_id: str | None
    run_id: str | None
    error: str | None
    created_at: str | None
    delivered_at: str | None


class EventOut(Contract):
    event_id: str
    name: str
    payload: dict[str, Any]
    trace_id: str | None
    source_run_id: str | None
    created_at: str | None
    dispatched_at: str | None = Field(
        description="When the fan-out made the deliveries; null while it is pending."
    )
    deliveries: list[DeliveryOut]


class ListEventsInput(Contract):
    name: str | None = Field(default=None, max_length=200)
    cursor: Cursor | None = None
    limit: int = Field(default=20, ge=1, le=100)


class EventList(Contract):
    items: list[EventOut]
    total: int
    next_cursor: str | None


@action(
    name="runtime.event.list",
    input=ListEventsInput,
    output=EventList,
    triggers=[triggers.api("GET", "/events")],
    guards=ADMIN,
    description="Recent events, newest first, each with its deliveries to subscribers.",
)
def list_events(input: ListEventsInput, ctx: Context) -> EventList:
    from sqlalchemy import select

    from bunbase.runtime_models import EventRecord

    stmt = select(EventRecord)
    if input.name:
        stmt = stmt.where(EventRecord.name == input.name)
    s = services.page(ctx.db, stmt, EventRecord, before=input.cursor, limit=input.limit)
    deliveries = services.deliveries_of(ctx.db, [e.id for e in s.rows])
    return EventList.model_validate(
        {
            "items": [services.event_to_wire(e, deliveries.get(e.id, [])) for e in s.rows],
            "total": s.total,
            "nextCursor": s.next_cursor,
        }
    )


# -- run records -------------------------------------------------------------------------
class RunLogOut(Contract):
    level: str
    message: str
    meta: dict[str, Any] | None
    at: str


class RunOut(Contract):
    id: str
    action_name: str
    module_name: str
    trigger_type: str
    status: str
    error_code: str | None
    http_status: int | None
    trace_id: str
    actor_id: str | None
    org_id: str | None
    input: dict[str, Any] | None
    output: Any
    error: dict[str, Any] | None
    duration_ms: float
    started_at: str
    logs: list[RunLogOut]


@action(
    name="runtime.run.get",
    input=RunIdInput,
    output=RunOut,
    triggers=[triggers.api("GET", "/runs/{runId}")],
    guards=[run_visible()],
    description="One run record: input and output (secrets redacted), error, logs, trace. Visible "
    "to its actor, tenant admins, and members whose role in the run's org grants its read permission.",
)
def get_run(input: RunIdInput, ctx: Context) -> RunOut:
    return RunOut.model_validate(services.action_run_to_wire(ctx.db, ctx.extras["run"]))
