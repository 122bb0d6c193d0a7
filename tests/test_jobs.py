"""Jobs: outbox dispatch, retries with backoff, DLQ and replay, idempotent enqueue,
per-tenant concurrency, priorities, and recovery of a job whose worker was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from bunbase import jobs, redis_conn
from bunbase.clock import clock
from bunbase.context import Context
from bunbase.db import db
from bunbase.ids import new_id
from bunbase.jobs import PermanentError, enqueue, job
from bunbase.models import OutboxItem
from bunbase.runtime_models import JobRun
from bunbase.tenancy import tenant_scope
from bunbase.testing import Worker, service_ctx
from modules.support.models import Ticket
from tests.helpers import count, recorded_jobs

CALLS: dict[str, int] = {}


@job("tests.chain")
def chain(payload: dict[str, Any], ctx: Context) -> None:
    """A job that queues another job through the outbox."""
    enqueue(ctx, "testkit.record", {"note": payload["note"]})


@job("tests.write_then_fail", retries=0)
def write_then_fail(payload: dict[str, Any], ctx: Context) -> None:
    from modules.support import services

    services.create_ticket(ctx, org_id="o", subject="from job", body="never committed", priority="low")
    enqueue(ctx, "testkit.record", {"note": "never"})
    raise RuntimeError("job failed after writing")


@job("tests.flaky", retries=3, backoff=10)
def flaky(payload: dict[str, Any], ctx: Context) -> dict[str, int]:
    key = payload["key"]
    CALLS[key] = CALLS.get(key, 0) + 1
    if CALLS[key] <= payload["fail_times"]:
        raise ConnectionError(f"transient failure {CALLS[key]}")
    return {"calls": CALLS[key]}


@job("tests.permanent", retries=5)
def permanent(payload: dict[str, Any], ctx: Context) -> None:
    raise PermanentError("the card was declined")


@job("tests.discarded_midway", retries=2)
def discarded_midway(payload: dict[str, Any], ctx: Context) -> dict[str, bool]:
    """Commits part-way (as an action cron does), then an operator discards the job from
    another connection while it is still running."""
    from flask import current_app

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    ctx.db.commit()  # the row lock taken at the start is released here
    job_id, tenant_id = ctx.run_id, ctx.tenant.id

    def operator() -> None:
        with app.app_context(), tenant_scope(tenant_id):
            row = db.session.get(JobRun, job_id)
            assert row is not None and row.status == "queued"
            jobs.discard(row)
            db.session.commit()
            db.session.remove()

    thread = threading.Thread(target=operator)
    thread.start()
    thread.join()
    if payload["fail"]:
        raise ConnectionError("failed after the discard")
    return {"done": True}


@job("tests.too_slow", retries=0, timeout=1)
def too_slow(payload: dict[str, Any], ctx: Context) -> None:
    time.sleep(5)


def _enqueue(app, tenant_id: str, name: str, payload: dict[str, Any], **options: Any) -> str:
    """Enqueue as a job would from an action: in a transaction, dispatched after commit."""
    with service_ctx(app, tenant_id) as ctx:
        return enqueue(ctx, name, payload, **options)


def _row(app, job_id: str) -> JobRun:
    with app.app_context(), tenant_scope(_tenant_of(app, job_id)):
        row = db.session.get(JobRun, job_id)
        assert row is not None
        db.session.expunge(row)
        return row


def _tenant_of(app, job_id: str) -> str:
    from bunbase.tenancy import unscoped

    with app.app_context(), unscoped():
        tenant_id = db.session.scalar(select(JobRun.tenant_id).where(JobRun.id == job_id))
        assert tenant_id is not None
        return tenant_id


def test_job_enqueued_from_a_job_is_dispatched_and_its_outbox_row_removed(app, tenant_a):
    first = _enqueue(app, tenant_a.id, "tests.chain", {"note": "chained"})
    Worker(app).drain()
    assert _row(app, first).status == "succeeded"
    assert [r.split(":")[1] for r in recorded_jobs()] == ["chained"]
    assert count(app, OutboxItem) == 0


def test_a_job_committed_but_never_pushed_is_re_sent_once_by_the_relay(app, tenant_a):
    """The process dies between commit and the push to RQ: the queued row is the record."""
    with service_ctx(app, tenant_a.id, hand_over=False) as ctx:  # "the process died"
        job_id = enqueue(ctx, "testkit.record", {"note": "lost"})
    q = jobs.queue("default")
    assert q.count == 0
    with app.app_context():
        assert jobs.relay_lost() == 0  # too young: its push may still be on the way
        clock.advance("31s")
        assert jobs.relay_lost() == 1
        assert jobs.relay_lost() == 0  # RQ holds it now
        jobs._push(job_id, tenant_a.id, "default")  # a duplicate delivery on top
    assert q.count == 2
    Worker(app).drain()
    assert _row(app, job_id).status == "succeeded"
    assert [r.split(":")[1] for r in recorded_jobs()] == ["lost"]  # ran once


def test_failing_job_rolls_back_its_writes_and_outbox(app, tenant_a):
    job_id = _enqueue(app, tenant_a.id, "tests.write_then_fail", {})
    Worker(app).drain()
    row = _row(app, job_id)
    assert row.status == "dead"
    assert "job failed after writing" in (row.error or "")
    assert count(app, Ticket) == 0
    assert count(app, OutboxItem) == 0
    assert recorded_jobs() == []


def test_transient_failures_retry_with_growing_backoff_then_succeed(app, tenant_a):
    job_id = _enqueue(app, tenant_a.id, "tests.flaky", {"key": new_id("k"), "fail_times": 2})
    worker = Worker(app)
    worker.drain()
    row = _row(app, job_id)
    assert row.status == "retrying" and row.attempts == 1
    first_wait = (row.run_at - clock.now()).total_seconds()
    assert 5 <= first_wait <= 10.5  # base 10 s, full jitter in [base/2, base]
    clock.advance("11s")
    worker.drain()
    row = _row(app, job_id)
    assert row.status == "retrying" and row.attempts == 2
    second_wait = (row.run_at - clock.now()).total_seconds()
    assert 10 <= second_wait <= 20.5  # doubled
    clock.advance("21s")
    worker.drain()
    row = _row(app, job_id)
    assert row.status == "succeeded" and row.attempts == 3
    assert [a["status"] for a in row.history["attempts"]] == ["retrying", "retrying", "succeeded"]
    assert "transient failure 1" in row.history["attempts"][0]["error"]


def test_out_of_retries_goes_to_the_dlq_and_replay_runs_it_again(app, tenant_a):
    key = new_id("k")
    job_id = _enqueue(app, tenant_a.id, "tests.flaky", {"key": key, "fail_times": 4}, retries=1)
    worker = Worker(app)
    worker.drain()
    clock.advance("1h")
    worker.drain()
    row = _row(app, job_id)
    assert row.status == "dead" and row.attempts == 2
    assert len(row.history["attempts"]) == 2
    with app.app_context(), tenant_scope(tenant_a.id):
        jobs.replay(db.session.get(JobRun, job_id))
        db.session.commit()
    worker.drain()
    clock.advance("1h")
    worker.drain()
    row = _row(app, job_id)
    assert row.status == "dead"  # fails twice more (calls 3 and 4)
    with app.app_context(), tenant_scope(tenant_a.id):
        jobs.replay(db.session.get(JobRun, job_id))
        db.session.commit()
    worker.drain()
    row = _row(app, job_id)
    assert row.status == "succeeded" and CALLS[key] == 5
    assert len(row.history["replays"]) == 2


def test_permanent_error_skips_retries(app, tenant_a):
    job_id = _enqueue(app, tenant_a.id, "tests.permanent", {})
    Worker(app).drain()
    row = _row(app, job_id)
    assert row.status == "dead" and row.attempts == 1
    assert "the card was declined" in (row.error or "")


def test_discard_removes_a_job_from_the_dlq(app, tenant_a):
    job_id = _enqueue(app, tenant_a.id, "tests.permanent", {})
    Worker(app).drain()
    with app.app_context(), tenant_scope(tenant_a.id):
        jobs.discard(db.session.get(JobRun, job_id))
        db.session.commit()
    assert _row(app, job_id).status == "discarded"


@pytest.mark.parametrize("fail", [False, True])
def test_a_job_discarded_while_it_runs_stays_discarded(app, tenant_a, fail):
    job_id = _enqueue(app, tenant_a.id, "tests.discarded_midway", {"fail": fail})
    worker = Worker(app)
    worker.drain()
    row = _row(app, job_id)
    assert row.status == "discarded" and row.attempts == 1
    # the attempt is on record, its outcome did not bring the job back
    assert [a["status"] for a in row.history["attempts"]] == ["failed" if fail else "succeeded"]
    clock.advance("1h")  # past any retry backoff: a failed attempt is not retried
    worker.drain()
    row = _row(app, job_id)
    assert row.status == "discarded" and row.attempts == 1


def test_idempotency_key_queues_a_job_once(app, tenant_a):
    first = _enqueue(app, tenant_a.id, "testkit.record", {"note": "once"}, idempotency_key="k-1")
    second = _enqueue(app, tenant_a.id, "testkit.record", {"note": "once"}, idempotency_key="k-1")
    other_tenant_same_key = first != _enqueue(app, tenant_a.id, "testkit.record", {"note": "x"},
                                              idempotency_key="k-2")
    assert first == second and other_tenant_same_key
    Worker(app).drain()
    assert [r.split(":")[1] for r in recorded_jobs()].count("once") == 1


def test_delay_holds_a_job_until_the_clock_reaches_it(app, tenant_a):
    job_id = _enqueue(app, tenant_a.id, "testkit.record", {"note": "later"}, delay="2h")
    worker = Worker(app)
    worker.drain()
    assert _row(app, job_id).status == "scheduled" and recorded_jobs() == []
    clock.advance("2h")
    worker.drain()
    assert _row(app, job_id).status == "succeeded"
    assert [r.split(":")[1] for r in recorded_jobs()] == ["later"]


def test_invalid_payload_is_refused_at_enqueue(app, tenant_a):
    from pydantic import BaseModel

    from bunbase.errors import ValidationFailed

    class Ping(BaseModel):
        n: int

    job("tests.typed", payload=Ping)(lambda payload, ctx: None)
    with pytest.raises(ValidationFailed):
        _enqueue(app, tenant_a.id, "tests.typed", {"n": "not a number"})


def test_per_tenant_concurrency_defers_only_the_busy_tenant(app, tenant_a, tenant_b, monkeypatch):
    monkeypatch.setattr(jobs, "tenant_concurrency", 1)
    monkeypatch.setattr(jobs, "_workers_running", lambda: 8)  # more workers than the limit
    # a job of tenant A is running elsewhere and holds A's only slot
    assert jobs._acquire_slot(tenant_a.id, "job_elsewhere", 60)
    a_job = _enqueue(app, tenant_a.id, "testkit.record", {"note": "a"})
    b_job = _enqueue(app, tenant_b.id, "testkit.record", {"note": "b"})
    Worker(app).drain()
    assert _row(app, b_job).status == "succeeded"
    assert _row(app, a_job).status == "scheduled"  # deferred, not lost
    jobs._release_slot(tenant_a.id, "job_elsewhere")
    clock.advance("2s")
    Worker(app).drain()
    assert _row(app, a_job).status == "succeeded"


def test_high_priority_queue_is_served_first(app, tenant_a):
    low = _enqueue(app, tenant_a.id, "testkit.record", {"note": "low"}, priority="low")
    high = _enqueue(app, tenant_a.id, "testkit.record", {"note": "high"}, priority="high")
    Worker(app).drain()
    assert {_row(app, low).status, _row(app, high).status} == {"succeeded"}
    assert [r.split(":")[1] for r in recorded_jobs()] == ["high", "low"]


def test_job_of_a_killed_worker_is_recovered_and_retried(app, tenant_a, tmp_path):
    marker = tmp_path / "started"
    job_id = _enqueue(app, tenant_a.id, "testkit.sleep", {"marker": str(marker), "seconds": 30})
    settings = app.extensions["bunbase"].settings
    env = dict(os.environ, DATABASE_URL=settings.resolved_database_url(), REDIS_URL=redis_conn.url(),
               BUNBASE_INSTANCE_DIR=str(settings.instance_dir),
               BUNBASE_EXTRA_MODULES="tests.fixture_modules",
               BUNBASE_LOG_LEVEL="CRITICAL")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "bunbase", "worker", "--burst"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _row(app, job_id).status == "queued"  # lost in flight, for now
    with app.app_context():
        recovered = jobs.recover_abandoned(at=time.time() + 3600)
    assert recovered == 1
    row = _row(app, job_id)
    assert row.status == "retrying" and "worker died" in (row.error or "")
    clock.advance("1h")
    Worker(app).drain()  # the marker exists now, so the retry finishes at once
    assert _row(app, job_id).status == "succeeded"


def test_a_job_past_its_timeout_is_stopped_and_recorded(app, tenant_a, monkeypatch):
    monkeypatch.setattr(jobs, "TIMEOUT_GRACE", 0)  # RQ stops it at the job's own timeout
    job_id = _enqueue(app, tenant_a.id, "tests.too_slow", {})
    (rq_job,) = jobs.queue("default").jobs
    assert rq_job.timeout == 1
    Worker(app).drain()
    row = _row(app, job_id)  # left alone, the handler would have finished after 5 s: succeeded
    assert row.status == "dead" and "JobTimeoutException" in (row.error or "")


def test_a_job_that_kills_its_worker_is_contained_by_the_supervisor(app, tenant_a, tmp_path):
    """No fork per job, yet a job that kills the process costs one attempt, not the worker:
    the supervisor records the attempt and starts a new worker, which goes on with the queue."""
    marker = tmp_path / "crashed"
    crasher = _enqueue(app, tenant_a.id, "testkit.crash", {"marker": str(marker)})
    after = _enqueue(app, tenant_a.id, "testkit.record", {"note": "after the crash"})
    settings = app.extensions["bunbase"].settings
    env = dict(os.environ, DATABASE_URL=settings.resolved_database_url(), REDIS_URL=redis_conn.url(),
               BUNBASE_INSTANCE_DIR=str(settings.instance_dir),
               BUNBASE_EXTRA_MODULES="tests.fixture_modules",
               BUNBASE_LOG_LEVEL="CRITICAL")
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "bunbase", "worker"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _row(app, after).status != "succeeded":
            assert proc.poll() is None, "the supervisor exited"
            assert time.monotonic() < deadline, "the queue stopped after the crash"
            time.sleep(0.2)
        assert marker.exists()
        # the dead run left nothing in RQ that its retry could later be mistaken for
        from rq.registry import StartedJobRegistry

        started = StartedJobRegistry("default", connection=redis_conn.client())
        assert not [m for m in started.get_job_ids() if m.split(":")[0] == crasher]
        row = _row(app, crasher)
        assert row.status == "retrying" and row.attempts == 1
        assert "worker process died" in (row.error or "") and "exit code 3" in (row.error or "")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    clock.advance("1h")
    Worker(app).drain()  # the marker exists now: the retry finishes
    assert _row(app, crasher).status == "succeeded"


def test_no_slot_is_taken_while_there_are_no_more_workers_than_the_limit(app, tenant_a, monkeypatch):
    """A tenant cannot run more jobs at once than there are workers: with one worker and a
    limit of 4 the limit cannot bind, and the job takes no slot (no Redis round trips)."""
    taken: list[str] = []
    monkeypatch.setattr(jobs, "_acquire_slot",
                        lambda tenant_id, job_id, timeout: taken.append(job_id) or True)
    _enqueue(app, tenant_a.id, "testkit.record", {"note": "one"})
    Worker(app).drain()
    assert taken == []
    monkeypatch.setattr(jobs, "_workers_running", lambda: 5)
    job_id = _enqueue(app, tenant_a.id, "testkit.record", {"note": "two"})
    Worker(app).drain()
    assert taken == [job_id]


def test_a_late_failure_report_never_overwrites_a_finished_job(app, tenant_a):
    """A recovery that raced the job's own run (it read "queued" before the run committed)
    must not turn the recorded success into a failure and run the job again."""
    job_id = _enqueue(app, tenant_a.id, "testkit.record", {"note": "done"})
    Worker(app).drain()
    assert _row(app, job_id).status == "succeeded"
    with app.app_context(), tenant_scope(tenant_a.id):
        jobs._record_failure(job_id, jobs.get("testkit.record"), 1, clock.now(), time.perf_counter(),
                             RuntimeError("the worker died while running this job"))
        assert jobs.record_lost_attempt(job_id, "the worker process died") is False
    row = _row(app, job_id)
    assert row.status == "succeeded" and row.attempts == 1 and row.error is None


def test_a_duplicate_delivery_of_a_job_waiting_to_retry_does_not_skip_its_backoff(app, tenant_a):
    job_id = _enqueue(app, tenant_a.id, "tests.flaky", {"key": new_id("k"), "fail_times": 5})
    Worker(app).drain()
    assert _row(app, job_id).status == "retrying"
    with app.app_context():
        jobs._push(job_id, tenant_a.id, "default")  # a stray second copy
    Worker(app).drain()
    row = _row(app, job_id)
    assert row.status == "retrying" and row.attempts == 1  # skipped: it waits for its time
