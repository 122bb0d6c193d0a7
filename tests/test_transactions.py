"""One transaction per action: a failing handler leaves nothing behind (rows, audit, outbox,
jobs); a succeeding one commits its audit entry with it and dispatches its jobs after commit.
"""

from __future__ import annotations

import pytest
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from bunbase import outbox, redis_conn
from bunbase.jobs import queue
from bunbase.models import AuditEntry, IdempotencyRecord, OutboxItem
from bunbase.runtime_models import JobRun
from modules.support.models import Ticket
from tests.helpers import (
    assert_failure,
    assert_success,
    count,
    queue_len,
    recorded_jobs,
    rows,
    run_jobs,
)

FAIL = "/v1/actions/testkit.fail.after_write/run"
#: the tenant fixtures sign in and create their org, which write their own audit entries;
#: these tests look at the rest
NOT_LOGIN = AuditEntry.action.notin_(("auth.session.login", "orgs.org.create"))


@pytest.mark.parametrize(("mode", "status", "code"), [("typed", 409, "conflict"),
                                                      ("crash", 500, "internal")])
def test_failing_handler_leaves_no_trace(app, client, tenant_a, mode, status, code):
    resp = client.post(FAIL, json={"mode": mode}, headers=tenant_a.headers())
    assert_failure(resp, status, code)

    assert count(app, Ticket) == 0
    assert count(app, AuditEntry, NOT_LOGIN) == 0
    assert count(app, OutboxItem) == 0
    assert queue_len("default") == 0  # nothing was dispatched

    run_jobs(app)
    assert recorded_jobs() == []
    conn = redis_conn.client()
    assert FinishedJobRegistry("default", connection=conn).count == 0
    assert FailedJobRegistry("default", connection=conn).count == 0


def test_failing_handler_does_not_disturb_later_requests(app, client, tenant_a):
    client.post(FAIL, json={"mode": "crash"}, headers=tenant_a.headers())
    assert_success(client.post("/v1/support/tickets", json=tenant_a.ticket(),
                               headers=tenant_a.headers()))
    assert count(app, Ticket) == 1
    assert count(app, AuditEntry, NOT_LOGIN) == 1


def test_enqueued_job_is_dispatched_after_commit_and_runs(app, client, tenant_a):
    resp = client.post("/v1/actions/testkit.job.enqueue/run", json={"note": "hello"},
                       headers=tenant_a.headers())
    body = assert_success(resp)
    # dispatched after commit, by the courier: on the queue, and no outbox row stays
    assert outbox.settle()
    assert queue_len("default") == 1
    assert count(app, OutboxItem) == 0
    job = queue("default").jobs[0]
    # the RQ job carries the id of its job_runs row, which names the job
    (job_run,) = rows(app, JobRun, JobRun.id == job.args[0])
    assert (job_run.name, job_run.tenant_id) == ("testkit.record", tenant_a.id)

    run_jobs(app)
    assert queue_len("default") == 0
    assert recorded_jobs() == [f"{tenant_a.id}:hello:{body['trace_id']}"]
    assert FailedJobRegistry("default", connection=redis_conn.client()).count == 0
    (job_run,) = rows(app, JobRun, JobRun.id == job.args[0])
    assert job_run.status == "succeeded"


def test_job_carries_the_callers_trace_id(app, client, tenant_a):
    resp = client.post("/v1/actions/testkit.job.enqueue/run", json={"note": "traced"},
                       headers=tenant_a.headers(**{"X-Trace-Id": "trace0001"}))
    assert assert_success(resp)["trace_id"] == "trace0001"
    run_jobs(app)
    assert recorded_jobs() == [f"{tenant_a.id}:traced:trace0001"]


def test_audit_entry_is_written_with_the_ticket(app, client, tenant_a):
    resp = client.post("/v1/support/tickets", json=tenant_a.ticket(), headers=tenant_a.headers())
    body = assert_success(resp)
    ticket_id = body["data"]["ticketId"]
    entries = rows(app, AuditEntry, NOT_LOGIN)
    assert len(entries) == 1
    entry = entries[0]
    assert entry.tenant_id == tenant_a.id
    assert entry.action == "support.ticket.create"
    assert entry.target_type == "ticket"
    assert entry.target_id == ticket_id
    assert entry.trace_id == body["trace_id"]
    assert entry.run_id == body["run_id"]
    assert entry.org_id == tenant_a.org_id
    assert entry.actor_type == "user"
    me = client.get("/v1/auth/me", headers=tenant_a.headers()).get_json()["data"]
    assert entry.actor_id == me["userId"]
    assert entry.decision.startswith("allowed")
    assert [t.id for t in rows(app, Ticket)] == [ticket_id]


def test_reads_write_no_audit_entry(app, client, tenant_a):
    assert_success(client.get("/v1/support/tickets", query_string={"orgId": tenant_a.org_id},
                              headers=tenant_a.headers()))
    assert_success(client.get("/v1/auth/me", headers=tenant_a.headers()))
    assert count(app, AuditEntry, NOT_LOGIN) == 0


def test_mutating_action_without_own_audit_gets_a_default_entry(app, client, tenant_a):
    resp = client.put("/v1/testkit/echo/item-9", json={"count": 1}, headers=tenant_a.headers())
    body = assert_success(resp)
    entries = rows(app, AuditEntry, NOT_LOGIN)
    assert [(e.action, e.target_type, e.target_id, e.trace_id) for e in entries] == [
        ("testkit.echo.put", "item", "item-9", body["trace_id"])
    ]


def test_replay_writes_no_second_audit_entry(app, client, tenant_a):
    headers = tenant_a.headers(**{"Idempotency-Key": "audit-once"})
    for _ in range(3):
        assert client.post("/v1/support/tickets", json=tenant_a.ticket(),
                           headers=headers).status_code == 200
    assert count(app, AuditEntry, NOT_LOGIN) == 1
    assert count(app, IdempotencyRecord) == 1
