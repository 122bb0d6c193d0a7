"""Durable workflows: persisted step results, resuming after a crash without re-running
finished steps, waits (duration, until, event with match and timeout), compensation in
reverse order, pause/resume, cancel, replay from a step with edited input, retry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from bunbase import jobs, workflows
from bunbase.clock import clock
from bunbase.context import Context
from bunbase.contracts import Contract
from bunbase.db import db
from bunbase.errors import Conflict, NotFound
from bunbase.jobs import PermanentError
from bunbase.runtime_models import JobRun, WorkflowRun, WorkflowStep
from bunbase.tenancy import tenant_scope
from bunbase.testing import Worker, service_ctx
from bunbase.workflows import step, wait, workflow
from tests.helpers import rows

CALLS: list[tuple[str, Any]] = []
FAIL: dict[str, Any] = {}  # step name -> exception class (or instance) to raise
UNTIL = datetime(2030, 1, 1, 9, 0)


class Order(Contract):
    order_id: str
    value: int = 1


def _step(name: str) -> Callable[[Order, Context], Any]:
    def fn(input: Order, ctx: Context) -> dict[str, Any]:
        CALLS.append((name, input.value))
        failure = FAIL.get(name)
        if failure is not None:
            raise failure(f"{name} failed") if isinstance(failure, type) else failure
        return {"step": name, "value": input.value, "prev": sorted(ctx.extras["workflow"]["results"])}

    fn.__name__ = name
    return fn


def _undo(name: str) -> Callable[[Order, Context], None]:
    def fn(input: Order, ctx: Context) -> None:
        CALLS.append((f"undo:{name}", input.value))
        failure = FAIL.get(f"undo:{name}")
        if failure is not None:
            raise failure(f"undo:{name} failed") if isinstance(failure, type) else failure

    return fn


workflow("tests.wf.linear", input=Order,
         steps={"a": _step("a"), "b": step(_step("b"), retries=2), "c": _step("c")})
workflow("tests.wf.sleep", input=Order,
         steps={"a": _step("a"), "sleep": wait.for_duration("7d"), "b": _step("b")})
workflow("tests.wf.until", input=Order, steps={"hold": wait.until(UNTIL), "b": _step("b")})
workflow("tests.wf.pay", input=Order, steps={
    "reserve": step(_step("reserve"), compensate=_undo("reserve")),
    "paid": wait.for_event("tests.paid", match={"orderId": "$input.orderId"}, timeout="2d"),
    "ship": _step("ship"),
})
workflow("tests.wf.pay_or_not", input=Order, steps={
    "paid": wait.for_event("tests.paid", match=lambda p, i: p.get("orderId") == i["orderId"],
                           timeout="2d", on_timeout="continue"),
    "ship": _step("ship"),
})
workflow("tests.wf.saga", input=Order, steps={
    "s1": step(_step("s1"), compensate=_undo("s1")),
    "s2": step(_step("s2"), compensate=_undo("s2")),
    "s3": _step("s3"),
    "s4": step(_step("s4"), compensate=_undo("s4")),
    "s5": step(_step("s5"), retries=1),
})


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    FAIL.clear()


IN_STEP = threading.Event()
GO_ON = threading.Event()


def _held_step(input: Order, ctx: Context) -> dict[str, bool]:
    IN_STEP.set()
    assert GO_ON.wait(20), "the test never let the step finish"
    return {"done": True}


workflow("tests.wf.held", input=Order, steps={"only": _held_step})


def run_in(app, tenant_id: str, fn: Callable[[Context], Any]) -> Any:
    with service_ctx(app, tenant_id) as ctx:
        return fn(ctx)


def start(app, tenant, name: str, **input: Any) -> str:
    return run_in(app, tenant.id, lambda ctx: ctx.workflows.start(name, {"orderId": "o-1", **input}))


def run_of(app, run_id: str) -> WorkflowRun:
    (run,) = rows(app, WorkflowRun, WorkflowRun.id == run_id)
    return run


def steps(app, run_id: str) -> list[tuple[int, str, str, str]]:
    found = rows(app, WorkflowStep, WorkflowStep.run_id == run_id)
    return sorted((s.index, s.kind, s.name, s.status) for s in found)


def control(app, tenant, run_id: str, op: Callable[..., Any], **kw: Any) -> None:
    run_in(app, tenant.id, lambda ctx: op(ctx, workflows.get_run(ctx.db, run_id), **kw))


def names() -> list[str]:
    return [c[0] for c in CALLS]


def test_step_results_are_persisted(app, tenant_a):
    run_id = start(app, tenant_a, "tests.wf.linear")
    Worker(app).drain()
    run = run_of(app, run_id)
    assert run.state == "completed" and run.finished_at is not None
    assert run.results == {
        "a": {"step": "a", "value": 1, "prev": []},
        "b": {"step": "b", "value": 1, "prev": ["a"]},
        "c": {"step": "c", "value": 1, "prev": ["a", "b"]},
    }
    assert steps(app, run_id) == [(0, "step", "a", "completed"), (1, "step", "b", "completed"),
                                  (2, "step", "c", "completed")]
    found = {s.name: s.result for s in rows(app, WorkflowStep, WorkflowStep.run_id == run_id)}
    assert found["b"] == run.results["b"]
    assert names() == ["a", "b", "c"]


def test_a_crash_between_steps_resumes_without_rerunning_finished_steps(app, tenant_a):
    run_id = start(app, tenant_a, "tests.wf.linear")
    (first,) = rows(app, JobRun, JobRun.name == "bunbase.workflow.advance")
    assert first.payload == {"run_id": run_id, "step": 0}
    with app.app_context():
        assert jobs.run_job(first.id, tenant_a.id) == "succeeded"  # step a, then "the worker dies"
    assert names() == ["a"] and run_of(app, run_id).current_step == 1
    # the same advance payload delivered again (a redelivery after the crash): a is not re-run
    again = run_in(app, tenant_a.id, lambda ctx: workflows.advance.handler(first.payload, ctx))
    assert again == {"skipped": True}
    with app.app_context(), tenant_scope(tenant_a.id):
        jobs.replay(db.session.get(JobRun, first.id))
        db.session.commit()
    # b crashes once mid-step (its writes roll back) and is retried
    FAIL["b"] = ConnectionError
    worker = Worker(app)
    worker.drain()
    assert names() == ["a", "b"]
    assert run_of(app, run_id).state == "running"
    FAIL.clear()
    clock.advance("1h")
    worker.drain()
    assert names() == ["a", "b", "b", "c"]
    assert run_of(app, run_id).state == "completed"
    (b,) = rows(app, WorkflowStep, WorkflowStep.run_id == run_id, WorkflowStep.name == "b")
    assert b.attempts == 2


def test_wait_for_duration(app, tenant_a):
    run_id = start(app, tenant_a, "tests.wf.sleep")
    worker = Worker(app)
    worker.drain()
    run = run_of(app, run_id)
    assert run.state == "waiting" and names() == ["a"]
    assert steps(app, run_id)[1] == (1, "step", "sleep", "waiting")
    clock.advance("6d23h")
    worker.drain()
    assert run_of(app, run_id).state == "waiting"
    clock.advance("1h")
    worker.drain()
    run = run_of(app, run_id)
    assert run.state == "completed" and names() == ["a", "b"]
    assert "wokeAt" in run.results["sleep"]


def test_wait_until_a_datetime(app, tenant_a):
    clock.freeze(datetime(2029, 12, 31, 9, 0))
    run_id = start(app, tenant_a, "tests.wf.until")
    worker = Worker(app)
    worker.drain()
    assert run_of(app, run_id).wait_until == UNTIL
    clock.advance("23h59m")
    worker.drain()
    assert run_of(app, run_id).state == "waiting" and names() == []
    clock.advance("1m")
    worker.drain()
    assert run_of(app, run_id).state == "completed" and names() == ["b"]


def emit(app, tenant, payload: dict[str, Any]) -> None:
    run_in(app, tenant.id, lambda ctx: ctx.events.emit("tests.paid", payload))


def test_wait_for_event_resumes_only_on_a_matching_event(app, tenant_a, tenant_b):
    run_id = start(app, tenant_a, "tests.wf.pay", orderId="o-42")
    worker = Worker(app)
    worker.drain()
    assert run_of(app, run_id).wait_event == "tests.paid"
    emit(app, tenant_a, {"orderId": "o-other"})  # another order
    emit(app, tenant_b, {"orderId": "o-42"})     # another tenant
    worker.drain()
    assert run_of(app, run_id).state == "waiting" and names() == ["reserve"]
    emit(app, tenant_a, {"orderId": "o-42", "amount": 10})
    worker.drain()
    run = run_of(app, run_id)
    assert run.state == "completed" and names() == ["reserve", "ship"]
    assert run.results["paid"]["payload"] == {"orderId": "o-42", "amount": 10}


def test_wait_for_event_timeout_fails_and_compensates(app, tenant_a):
    run_id = start(app, tenant_a, "tests.wf.pay")
    worker = Worker(app)
    worker.drain()
    clock.advance("2d")
    worker.drain()
    run = run_of(app, run_id)
    assert run.state == "compensated" and "timed out waiting for tests.paid" in (run.error or "")
    assert names() == ["reserve", "undo:reserve"]
    assert (1, "step", "paid", "failed") in steps(app, run_id)
    emit(app, tenant_a, {"orderId": "o-1"})  # too late: nothing resumes
    worker.drain()
    assert names() == ["reserve", "undo:reserve"]


def test_wait_for_event_timeout_can_continue(app, tenant_a):
    run_id = start(app, tenant_a, "tests.wf.pay_or_not")
    worker = Worker(app)
    worker.drain()
    clock.advance("2d")
    worker.drain()
    run = run_of(app, run_id)
    assert run.state == "completed" and run.results["paid"] == {"timedOut": True}
    assert names() == ["ship"]


def test_compensation_runs_in_reverse_order_after_a_permanent_failure(app, tenant_a):
    FAIL["s5"] = PermanentError("card declined")
    run_id = start(app, tenant_a, "tests.wf.saga")
    Worker(app).drain()
    run = run_of(app, run_id)
    assert run.state == "compensated" and "card declined" in (run.error or "")
    assert names() == ["s1", "s2", "s3", "s4", "s5", "undo:s4", "undo:s2", "undo:s1"]
    assert (4, "step", "s5", "failed") in steps(app, run_id)
    assert [s[:2] for s in steps(app, run_id) if s[1] == "compensate"] == [
        (0, "compensate"), (1, "compensate"), (3, "compensate")]


def test_compensation_runs_when_a_step_exhausts_its_retries(app, tenant_a):
    FAIL["s5"] = TimeoutError
    run_id = start(app, tenant_a, "tests.wf.saga")
    worker = Worker(app)
    worker.drain()
    assert run_of(app, run_id).state == "running"  # s5 failed once, retry scheduled
    clock.advance("1h")
    worker.drain()  # retries=1: the second failure is the last
    run = run_of(app, run_id)
    assert run.state == "compensated"
    assert names() == ["s1", "s2", "s3", "s4", "s5", "s5", "undo:s4", "undo:s2", "undo:s1"]


def test_pause_and_resume(app, tenant_a):
    run_id = start(app, tenant_a, "tests.wf.sleep")
    control(app, tenant_a, run_id, workflows.pause)  # paused before it even started
    worker = Worker(app)
    worker.drain()
    assert run_of(app, run_id).state == "paused" and names() == []
    control(app, tenant_a, run_id, workflows.resume)
    worker.drain()
    assert run_of(app, run_id).state == "waiting" and names() == ["a"]
    control(app, tenant_a, run_id, workflows.pause)  # paused while waiting
    clock.advance("8d")
    worker.drain()
    assert run_of(app, run_id).state == "paused" and names() == ["a"]
    control(app, tenant_a, run_id, workflows.resume)
    worker.drain()
    run = run_of(app, run_id)
    assert run.state == "completed" and names() == ["a", "b"]
    assert "_pausedFrom" not in run.results


def test_cancel(app, tenant_a):
    run_id = start(app, tenant_a, "tests.wf.sleep")
    worker = Worker(app)
    worker.drain()
    control(app, tenant_a, run_id, workflows.cancel)
    clock.advance("8d")
    worker.drain()
    run = run_of(app, run_id)
    assert run.state == "cancelled" and names() == ["a"]
    with pytest.raises(Exception, match="cannot be cancelled"):
        control(app, tenant_a, run_id, workflows.cancel)


def test_replay_from_a_step_with_edited_input(app, tenant_a):
    run_id = start(app, tenant_a, "tests.wf.linear", value=1)
    worker = Worker(app)
    worker.drain()
    control(app, tenant_a, run_id, workflows.replay, from_step="b",
            input={"orderId": "o-1", "value": 2})
    worker.drain()
    run = run_of(app, run_id)
    assert run.state == "completed" and run.input == {"orderId": "o-1", "value": 2}
    assert CALLS == [("a", 1), ("b", 1), ("c", 1), ("b", 2), ("c", 2)]
    assert run.results["a"]["value"] == 1 and run.results["c"]["value"] == 2


def test_retry_of_a_failed_step(app, tenant_a):
    FAIL["b"] = PermanentError("bad data")
    run_id = start(app, tenant_a, "tests.wf.linear")
    worker = Worker(app)
    worker.drain()
    run = run_of(app, run_id)
    assert run.state == "failed" and run.current_step == 1  # nothing to compensate
    FAIL.clear()  # "the fix is deployed"
    control(app, tenant_a, run_id, workflows.retry)
    worker.drain()
    run = run_of(app, run_id)
    assert run.state == "completed" and run.error is None
    assert names() == ["a", "b", "b", "c"]


def test_pause_keeps_its_bookkeeping_out_of_the_step_results(app, tenant_a):
    run_id = start(app, tenant_a, "tests.wf.sleep")
    control(app, tenant_a, run_id, workflows.pause)  # paused while running
    assert run_of(app, run_id).results == {}
    control(app, tenant_a, run_id, workflows.resume)
    worker = Worker(app)
    worker.drain()
    control(app, tenant_a, run_id, workflows.pause)  # paused while waiting
    run = run_of(app, run_id)
    assert run.state == "paused" and list(run.results) == ["a"]
    control(app, tenant_a, run_id, workflows.resume)
    assert run_of(app, run_id).state == "waiting"


def test_a_run_paused_by_an_older_version_resumes_and_drops_the_legacy_key(app, tenant_a):
    run_id = start(app, tenant_a, "tests.wf.sleep")
    Worker(app).drain()
    with app.app_context(), tenant_scope(tenant_a.id):
        run = db.session.get(WorkflowRun, run_id)
        run.state, run.results = "paused", {**run.results, "_pausedFrom": "waiting"}
        db.session.commit()
        db.session.remove()
    control(app, tenant_a, run_id, workflows.resume)
    run = run_of(app, run_id)
    assert run.state == "waiting" and list(run.results) == ["a"]


def test_replay_refuses_a_run_with_work_in_flight_and_an_unknown_step(app, tenant_a):
    running = start(app, tenant_a, "tests.wf.linear")  # its first advance is queued
    with pytest.raises(Conflict, match="running workflow cannot be replayed"):
        control(app, tenant_a, running, workflows.replay, from_step="a", input=None)

    FAIL["s5"] = PermanentError("card declined")
    FAIL["undo:s2"] = ConnectionError  # the compensation is retrying: the run is compensating
    saga = start(app, tenant_a, "tests.wf.saga")
    Worker(app).drain()
    assert run_of(app, saga).state == "compensating"
    with pytest.raises(Conflict, match="compensating workflow cannot be replayed"):
        control(app, tenant_a, saga, workflows.replay, from_step=0, input=None)

    FAIL.clear()
    done = start(app, tenant_a, "tests.wf.linear", orderId="o-2")
    Worker(app).drain()
    assert run_of(app, done).state == "completed"
    for bad in ("nope", 7, "7"):
        with pytest.raises(NotFound):
            control(app, tenant_a, done, workflows.replay, from_step=bad, input=None)
    assert run_of(app, done).state == "completed"


def test_compensation_out_of_retries_ends_the_run_failed(app, tenant_a):
    FAIL["s5"] = PermanentError("card declined")
    FAIL["undo:s2"] = ConnectionError
    run_id = start(app, tenant_a, "tests.wf.saga")
    worker = Worker(app)
    worker.drain()
    for _ in range(workflows.COMPENSATE_RETRIES + 2):
        clock.advance("1h")  # past every backoff
        worker.drain()
    run = run_of(app, run_id)
    assert run.state == "failed" and run.finished_at is not None
    assert "card declined" in (run.error or "")
    assert "compensation of step 's2' failed" in (run.error or "")
    # the failed compensation ran 1 + retries times; the earlier step's one never ran
    assert names().count("undo:s2") == 1 + workflows.COMPENSATE_RETRIES
    assert "undo:s1" not in names()
    (comp,) = rows(app, WorkflowStep, WorkflowStep.run_id == run_id, WorkflowStep.kind == "compensate",
                   WorkflowStep.index == 1)
    assert comp.status == "failed" and comp.attempts == 1 + workflows.COMPENSATE_RETRIES
    assert "undo:s2 failed" in (comp.error or "")


def test_get_run_refuses_another_tenants_run_already_in_the_session(app, tenant_a, tenant_b):
    run_id = start(app, tenant_a, "tests.wf.sleep")
    with app.app_context():
        with tenant_scope(tenant_a.id):
            mine = workflows.get_run(db.session, run_id)  # held: it stays in the identity map
            assert mine.id == run_id
        with tenant_scope(tenant_b.id), pytest.raises(NotFound):
            workflows.get_run(db.session, run_id)
        db.session.remove()


def test_a_pause_during_a_step_is_decided_on_the_state_the_step_leaves(app, tenant_a):
    """The step holds its run's row lock: a pause sent mid-step waits, then sees the run
    completed and says so (409), instead of answering 200 and being overwritten."""
    IN_STEP.clear()
    GO_ON.clear()
    run_id = start(app, tenant_a, "tests.wf.held")
    (job,) = rows(app, JobRun, JobRun.name == "bunbase.workflow.advance")

    def run_step() -> None:
        with app.app_context():
            jobs.run_job(job.id, tenant_a.id)

    answer: dict[str, Any] = {}

    def pause() -> None:
        resp = app.test_client().post(f"/v1/workflows/runs/{run_id}/pause", headers=tenant_a.headers())
        answer["status"], answer["body"] = resp.status_code, resp.get_json()

    stepper = threading.Thread(target=run_step)
    stepper.start()
    try:
        assert IN_STEP.wait(20)
        pauser = threading.Thread(target=pause)
        pauser.start()
        time.sleep(0.5)  # the pause is now waiting on the run (or, unlocked, already done)
    finally:
        GO_ON.set()
        stepper.join(30)
    pauser.join(30)
    assert run_of(app, run_id).state == "completed"
    assert answer["status"] == 409, answer
    assert answer["body"]["error"]["code"] == "conflict"


def test_an_event_that_arrives_while_the_run_is_paused_resumes_it_on_resume(app, tenant_a, tenant_b):
    run_id = start(app, tenant_a, "tests.wf.pay", orderId="o-7")
    worker = Worker(app)
    worker.drain()
    assert run_of(app, run_id).state == "waiting"
    control(app, tenant_a, run_id, workflows.pause)
    emit(app, tenant_b, {"orderId": "o-7"})  # another tenant's event never counts
    emit(app, tenant_a, {"orderId": "o-other"})
    emit(app, tenant_a, {"orderId": "o-7", "amount": 3})  # missed while paused
    worker.drain()
    assert run_of(app, run_id).state == "paused" and names() == ["reserve"]
    control(app, tenant_a, run_id, workflows.resume)
    worker.drain()
    run = run_of(app, run_id)
    assert run.state == "completed" and names() == ["reserve", "ship"]
    assert run.results["paid"]["payload"] == {"orderId": "o-7", "amount": 3}


def _committing_step(input: Order, ctx: Context) -> dict[str, bool]:
    """A step that commits its own writes; an operator cancels the run right after."""
    ctx.db.commit()
    with db.engine.begin() as conn:  # another session: the operator's cancel
        conn.execute(WorkflowRun.__table__.update()
                     .where(WorkflowRun.__table__.c.id == ctx.extras["workflow"]["run_id"])
                     .values(state="cancelled"))
    return {"done": True}


workflow("tests.wf.commits", input=Order, steps={"first": _committing_step, "b": _step("b")})


def test_a_cancel_made_after_a_step_committed_on_its_own_is_not_overwritten(app, tenant_a):
    run_id = start(app, tenant_a, "tests.wf.commits")
    Worker(app).drain()
    run = run_of(app, run_id)
    assert run.state == "cancelled" and run.current_step == 0  # the operator's word stands
    assert "b" not in CALLS
