"""Run records: GET /v1/runs/<id> after the buffered writer flushes."""

from __future__ import annotations

from bunbase.testing import settle
from tests.helpers import assert_failure, assert_success


def _flush(app) -> None:
    settle(app)


def _run(client, tenant, run_id) -> dict:
    return assert_success(client.get(f"/v1/runs/{run_id}", headers=tenant.headers()))["data"]


def test_run_has_input_output_status_duration_trace_and_logs(app, client, tenant_a):
    resp = client.put("/v1/testkit/echo/item-1", json={"flag": "on", "count": 7},
                      headers=tenant_a.headers())
    body = assert_success(resp)
    _flush(app)
    run = _run(client, tenant_a, body["run_id"])
    assert run["id"] == body["run_id"]
    assert run["actionName"] == "testkit.echo.put"
    assert run["moduleName"] == "testkit"
    assert run["triggerType"] == "api"
    assert run["status"] == "ok"
    assert run["httpStatus"] == 200
    assert run["errorCode"] is None
    assert run["error"] is None
    assert run["traceId"] == body["trace_id"]
    assert run["input"] == {"flag": "on", "count": 7, "itemId": "item-1"}
    assert run["output"] == {"itemId": "item-1", "flag": "on", "count": 7}
    assert isinstance(run["durationMs"], int | float) and run["durationMs"] >= 0
    assert run["startedAt"].endswith("Z")
    assert len(run["logs"]) == 1
    line = run["logs"][0]
    assert line["level"] == "info"
    assert line["message"] == "echo"
    assert line["meta"] == {"count": 7}


def test_failed_run_records_error(app, client, tenant_a):
    resp = client.post("/v1/actions/testkit.fail.after_write/run", json={"mode": "crash"},
                       headers=tenant_a.headers())
    assert_failure(resp, 500, "internal")
    _flush(app)
    run = _run(client, tenant_a, resp.headers["X-Run-Id"])
    assert run["status"] == "error"
    assert run["errorCode"] == "internal"
    assert run["httpStatus"] == 500
    assert run["error"] == resp.get_json()["error"]
    assert run["output"] is None
    assert run["input"] == {"mode": "crash"}
    assert run["traceId"] == resp.get_json()["trace_id"]
    assert "passwd" not in str(run)


def test_login_run_redacts_the_password(app, client, tenant_a):
    creds = {"email": tenant_a.email, "password": tenant_a.password}
    resp = client.post("/v1/auth/login", json=creds, headers={"X-Tenant-Id": tenant_a.slug})
    body = assert_success(resp)
    _flush(app)
    run = _run(client, tenant_a, body["run_id"])
    assert run["actionName"] == "auth.session.login"
    assert run["input"] == {"email": tenant_a.email, "password": "[redacted]"}
    assert tenant_a.password not in str(run)


def test_failed_login_run_redacts_the_password(app, client, tenant_a):
    resp = client.post("/v1/auth/login", json={"email": tenant_a.email, "password": "guess-123"},
                       headers={"X-Tenant-Id": tenant_a.slug})
    assert_failure(resp, 401, "unauthenticated")
    _flush(app)
    run = _run(client, tenant_a, resp.headers["X-Run-Id"])
    assert run["input"]["password"] == "[redacted]"
    assert run["errorCode"] == "unauthenticated"
    assert "guess-123" not in str(run)


def test_replayed_run_is_marked_replayed(app, client, tenant_a):
    headers = tenant_a.headers(**{"Idempotency-Key": "run-replay"})
    client.post("/v1/support/tickets", json=tenant_a.ticket(), headers=headers)
    second = client.post("/v1/support/tickets", json=tenant_a.ticket(), headers=headers)
    _flush(app)
    run = _run(client, tenant_a, second.headers["X-Run-Id"])
    assert run["status"] == "replayed"
    assert second.get_json()["run_id"] != second.headers["X-Run-Id"]  # body is the stored one


def test_runs_endpoint_requires_authentication(app, client, tenant_a):
    resp = client.post("/v1/support/tickets", json=tenant_a.ticket(), headers=tenant_a.headers())
    _flush(app)
    anon = client.get(f"/v1/runs/{resp.get_json()['run_id']}", headers={"X-Tenant-Id": tenant_a.id})
    assert_failure(anon, 401, "unauthenticated")


def test_runs_endpoint_flushes_pending_runs_itself(client, tenant_a):
    resp = client.get(f"/v1/support/tickets?orgId={tenant_a.org_id}", headers=tenant_a.headers())
    run = _run(client, tenant_a, resp.get_json()["run_id"])  # no explicit flush
    assert run["actionName"] == "support.ticket.list"


def test_a_full_buffer_is_flushed_by_the_request_once_its_response_is_out(app, client, tenant_a,
                                                                           monkeypatch):
    import threading

    from bunbase.models import ActionRun
    from tests.helpers import rows

    buffer = app.extensions["bunbase"].buffer
    buffer.flush()
    monkeypatch.setattr(buffer, "max_items", 1)
    woken: list[int] = []
    monkeypatch.setattr(buffer._wake, "set", lambda: woken.append(1))
    flushed_by: list[str] = []
    real_flush = buffer.flush

    def flush() -> int:
        flushed_by.append(threading.current_thread().name)
        return real_flush()

    monkeypatch.setattr(buffer, "flush", flush)
    # buffered=True: the test client then closes the response, as a WSGI server does
    body = assert_success(client.post("/v1/support/tickets", json=tenant_a.ticket(),
                                      headers=tenant_a.headers(), buffered=True))
    assert threading.current_thread().name in flushed_by  # this request's thread, after the response
    assert woken == []  # the buffer's own thread was not asked to
    (run,) = rows(app, ActionRun, ActionRun.id == body["run_id"])
    assert run.action_name == "support.ticket.create"


def test_the_buffer_thread_flushes_an_interval_after_the_last_flush_whoever_made_it(app):
    import time

    from bunbase.buffer import WriteBuffer
    from bunbase.db import db

    with app.app_context():
        buffer = WriteBuffer(db.engine, interval=0.6, max_items=10**6)
    try:
        buffer.add_row(_decision_table(), _decision_row("first"))  # starts the thread
        time.sleep(0.3)
        assert buffer.flush() == 0 and not buffer._rows  # a request's flush, say
        buffer.add_row(_decision_table(), _decision_row("second"))
        time.sleep(0.45)  # past the thread's first deadline, not yet an interval after the flush
        assert len(buffer._rows) == 1
        deadline = time.monotonic() + 5
        while buffer._rows and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not buffer._rows  # flushed by the thread, an interval after the last flush
    finally:
        buffer.close()


def _decision_table():
    from modules.rbac.models import DecisionRecord

    return DecisionRecord.__table__


def _decision_row(reason: str) -> dict:
    from bunbase.clock import clock
    from bunbase.ids import new_id

    return {"id": new_id("dec"), "tenant_id": "ten_test", "actor_type": "system", "actor_id": None,
            "principal_id": None, "org_id": None, "permission": "x:y", "allowed": True,
            "reason": reason, "action_name": None, "trace_id": None, "run_id": None,
            "created_at": clock.now()}
