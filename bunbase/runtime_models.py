"""Tables of the async runtime: job runs (the mirror of the queue, and the DLQ), schedules,
events and their deliveries, durable workflow runs and their steps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from bunbase.clock import clock
from bunbase.db import db
from bunbase.ids import new_id
from bunbase.tenancy import TenantScoped


class JobRun(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """One job: queued, scheduled (delayed / retry backoff), succeeded, dead (the DLQ)."""

    __tablename__ = "job_runs"
    __table_args__ = (
        Index("ix_job_runs_due", "status", "run_at"),
        Index("ix_job_runs_tenant_status_id", "tenant_id", "status", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("job"))
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    queue: Mapped[str] = mapped_column(String(20), default="default", nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    result: Mapped[dict[str, Any] | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    history: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5, nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    trace_id: Mapped[str | None] = mapped_column(String(64), index=True)
    parent_run_id: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str | None] = mapped_column(String(120))
    run_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    duration_ms: Mapped[float | None] = mapped_column()


class Schedule(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """A one-shot, interval or cron schedule. The database row is the source of truth."""

    __tablename__ = "schedules"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key", name="uq_schedules_tenant_key"),
        Index("ix_schedules_due", "paused", "next_run_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("sch"))
    key: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)  # once | every | cron
    job: Mapped[str] = mapped_column(String(200), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    cron: Mapped[str | None] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", nullable=False)
    interval_seconds: Mapped[float | None] = mapped_column()
    run_at: Mapped[datetime | None] = mapped_column()
    next_run_at: Mapped[datetime | None] = mapped_column()
    last_run_at: Mapped[datetime | None] = mapped_column()
    last_job_id: Mapped[str | None] = mapped_column(String(40))
    run_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    paused: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    source: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)


class EventRecord(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """One emitted event. `dispatched_at` is set once its deliveries exist (the fan-out,
    in a worker); until then the row is what is owed, and `events.relay_undispatched`
    sends it again if the fan-out was lost."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_tenant_name_id", "tenant_id", "name", "id"),
        Index(
            "ix_events_undispatched",
            "created_at",
            postgresql_where=text("dispatched_at IS NULL"),
            sqlite_where=text("dispatched_at IS NULL"),
        ),
    )

    # no index of its own: the composite index above leads with it
    tenant_id: Mapped[str] = mapped_column(String(40), nullable=False)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("evt"))
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    trace_id: Mapped[str | None] = mapped_column(String(64))
    source_run_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)
    dispatched_at: Mapped[datetime | None] = mapped_column()


class EventDelivery(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "event_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("dlv"))
    event_id: Mapped[str] = mapped_column(String(40), index=True, nullable=False)
    subscriber: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    job_id: Mapped[str | None] = mapped_column(String(40))
    run_id: Mapped[str | None] = mapped_column(String(40))
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)
    delivered_at: Mapped[datetime | None] = mapped_column()


class WorkflowRun(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "workflow_runs"
    __table_args__ = (
        Index("ix_workflow_runs_tenant_name_id", "tenant_id", "name", "id"),
        Index("ix_workflow_runs_waiting", "state", "wait_until"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("wfr"))
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    input: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    results: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    current_step: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    wait_until: Mapped[datetime | None] = mapped_column()
    wait_event: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    trace_id: Mapped[str | None] = mapped_column(String(64))
    parent_run_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column()


class WorkflowStep(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "workflow_steps"
    __table_args__ = (UniqueConstraint("run_id", "index", "kind", name="uq_workflow_steps_run_index"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("wfs"))
    run_id: Mapped[str] = mapped_column(String(40), index=True, nullable=False)
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # step | wait | compensate
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    job_id: Mapped[str | None] = mapped_column(String(40))
    result: Mapped[dict[str, Any] | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
