"""Every error code -> HTTP status and the one failure envelope; the success envelope."""

from __future__ import annotations

import threading
import time

from bunbase.clock import clock
from bunbase.errors import ERROR_TYPES
from tests.fixtures import TICKET
from tests.helpers import assert_failure, assert_success

TICKETS = "/v1/support/tickets"


def run(name: str) -> str:
    return f"/v1/actions/{name}/run"


def test_error_types_map_to_their_http_status():
    expected = {
        "validation_error": 400,
        "bad_request": 400,
        "invalid_cursor": 400,
        "unauthenticated": 401,
        "forbidden": 403,
        "not_found": 404,
        "conflict": 409,
        "idempotency_conflict": 409,
        "idempotency_mismatch": 422,
        "rate_limited": 429,
        "payload_too_large": 413,
        "internal": 500,
    }
    assert {cls.code: cls.status for cls in ERROR_TYPES} == expected


def test_success_envelope(client, tenant_a):
    resp = client.post(TICKETS, json=tenant_a.ticket(), headers=tenant_a.headers())
    body = assert_success(resp)
    assert body["data"]["ticketId"].startswith("tkt_")
    assert body["data"]["status"] == "open"


def test_incoming_trace_id_is_echoed(client, tenant_a):
    resp = client.post(TICKETS, json=tenant_a.ticket(),
                       headers=tenant_a.headers(**{"X-Trace-Id": "abc123"}))
    assert assert_success(resp)["trace_id"] == "abc123"


# -- 400 -------------------------------------------------------------------------------
def test_validation_error_has_per_field_details_in_wire_names(client, tenant_a):
    # the org guard runs before validation: X-Org-Id names the org the body does not
    resp = client.post(
        TICKETS, json={"orgId": "", "subject": "x", "body": "long enough body"},
        headers=tenant_a.headers(**{"X-Org-Id": tenant_a.org_id}),
    )
    body = assert_failure(resp, 400, "validation_error")
    details = body["error"]["details"]
    assert isinstance(details, list)
    fields = {d["field"] for d in details}
    assert fields == {"orgId", "subject"}
    for d in details:
        assert d["message"] and d["type"]


def test_validation_error_for_missing_fields_names_them_camelcase(client, tenant_a):
    resp = client.post(TICKETS, json={"subject": "valid subject"},
                       headers=tenant_a.headers(**{"X-Org-Id": tenant_a.org_id}))
    body = assert_failure(resp, 400, "validation_error")
    assert {d["field"] for d in body["error"]["details"]} == {"orgId", "body"}
    assert {d["type"] for d in body["error"]["details"]} == {"missing"}


def test_unknown_field_is_a_validation_error(client, tenant_a):
    resp = client.post(TICKETS, json=tenant_a.ticket(bogus=1), headers=tenant_a.headers())
    body = assert_failure(resp, 400, "validation_error")
    assert [d["field"] for d in body["error"]["details"]] == ["bogus"]


def test_missing_tenant_is_a_400(client):
    resp = client.post(TICKETS, json=TICKET)
    body = assert_failure(resp, 400, "bad_request")
    assert body["error"]["details"][0]["field"] == "X-Tenant-Id"


# -- 401 -------------------------------------------------------------------------------
def test_no_token_is_unauthenticated(client, tenant_a):
    resp = client.post(TICKETS, json=tenant_a.ticket(), headers={"X-Tenant-Id": tenant_a.id})
    assert_failure(resp, 401, "unauthenticated")


def test_bad_token_is_unauthenticated(client, tenant_a):
    for header in ("Bearer bbs_not-a-real-token", "Bearer garbage", "Basic abc", "Bearer "):
        resp = client.post(
            TICKETS, json=tenant_a.ticket(), headers={"X-Tenant-Id": tenant_a.id, "Authorization": header}
        )
        assert_failure(resp, 401, "unauthenticated")


def test_revoked_token_after_logout_is_unauthenticated(client, tenant_a):
    assert client.post(TICKETS, json=tenant_a.ticket(), headers=tenant_a.headers()).status_code == 200
    out = client.post("/v1/auth/logout", headers=tenant_a.headers())
    assert assert_success(out)["data"] == {"revoked": True}
    resp = client.post(TICKETS, json=tenant_a.ticket(), headers=tenant_a.headers())
    assert_failure(resp, 401, "unauthenticated")


def test_expired_session_is_unauthenticated(client, tenant_a):
    assert client.get("/v1/auth/me", headers=tenant_a.headers()).status_code == 200
    clock.advance("167h")  # the default session TTL is 7 days = 168 h
    assert client.get("/v1/auth/me", headers=tenant_a.headers()).status_code == 200
    clock.advance("2h")
    resp = client.get("/v1/auth/me", headers=tenant_a.headers())
    assert_failure(resp, 401, "unauthenticated")


def test_wrong_password_is_unauthenticated(client, tenant_a):
    resp = client.post(
        "/v1/auth/login", json={"email": tenant_a.email, "password": "wrong"},
        headers={"X-Tenant-Id": tenant_a.slug},
    )
    body = assert_failure(resp, 401, "unauthenticated")
    assert "wrong" not in resp.get_data(as_text=True).replace(body["trace_id"], "")


# -- 403 -------------------------------------------------------------------------------
def test_missing_permission_is_forbidden(client, world):
    # bob is a member of alice's org; the member role does not grant secret:read
    resp = client.post(run("testkit.secret"), json={},
                       headers=world["bob"].with_headers(**{"X-Org-Id": world.org_id}))
    body = assert_failure(resp, 403, "forbidden")
    assert body["error"]["details"] == {
        "permission": "secret:read", "reason": "role 'member' does not grant 'secret:read'"}
    # with no organization in context a plain user is refused too, saying why
    resp = client.post(run("testkit.secret"), json={}, headers=world["bob"].headers)
    body = assert_failure(resp, 403, "forbidden")
    assert body["error"]["details"] == {
        "permission": "secret:read", "reason": "'secret:read' needs an organization in context"}


def test_tenant_admin_without_org_context_is_allowed(client, tenant_a):
    """The documented exception: a tenant administrator with no org in context."""
    resp = client.post(run("testkit.secret"), json={}, headers=tenant_a.headers())
    assert assert_success(resp)["data"] == {"ok": True}


def test_permission_guard_without_token_is_unauthenticated(client, tenant_a):
    resp = client.post(run("testkit.secret"), json={}, headers={"X-Tenant-Id": tenant_a.id})
    assert_failure(resp, 401, "unauthenticated")


# -- 404 -------------------------------------------------------------------------------
def test_unknown_action_is_not_found(client, tenant_a):
    resp = client.post(run("support.ticket.explode"), json={}, headers=tenant_a.headers())
    assert_failure(resp, 404, "not_found")


def test_unknown_run_id_is_not_found(client, tenant_a):
    resp = client.get("/v1/runs/run_doesnotexist", headers=tenant_a.headers())
    assert_failure(resp, 404, "not_found")


def test_unknown_route_under_v1_is_not_found(client, tenant_a):
    for path in ("/v1/nothing/here", "/v1/support/tickets/x/y/z"):
        resp = client.get(path, headers=tenant_a.headers())
        assert_failure(resp, 404, "not_found")


def test_unknown_tenant_is_not_found(client, tenant_a):
    resp = client.post(TICKETS, json=tenant_a.ticket(), headers={"X-Tenant-Id": "no-such-tenant"})
    assert_failure(resp, 404, "not_found")


# -- 409 / 422 -------------------------------------------------------------------------
def test_retry_while_first_still_running_is_idempotency_conflict(app, tenant_a):
    headers = tenant_a.headers(**{"Idempotency-Key": "slow-1"})
    first: dict = {}

    def call() -> None:
        first["resp"] = app.test_client().post(
            run("testkit.slow"), json={"seconds": 1.5}, headers=headers
        )

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.5)
    try:
        resp = app.test_client().post(run("testkit.slow"), json={"seconds": 1.5}, headers=headers)
        assert_failure(resp, 409, "idempotency_conflict")
    finally:
        worker.join()
    assert first["resp"].status_code == 200
    # once the first finished, the same retry replays it
    again = app.test_client().post(run("testkit.slow"), json={"seconds": 1.5}, headers=headers)
    assert again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first["resp"].get_json()


def test_same_key_different_body_is_idempotency_mismatch(client, tenant_a):
    headers = tenant_a.headers(**{"Idempotency-Key": "k-mismatch"})
    assert client.post(TICKETS, json=tenant_a.ticket(), headers=headers).status_code == 200
    resp = client.post(TICKETS, json=tenant_a.ticket(subject="Another one"), headers=headers)
    assert_failure(resp, 422, "idempotency_mismatch")


def test_typed_conflict_from_handler_is_409(client, tenant_a):
    resp = client.post(run("testkit.fail.after_write"), json={"mode": "typed"},
                       headers=tenant_a.headers())
    body = assert_failure(resp, 409, "conflict")
    assert body["error"]["message"] == "deliberate failure after writing"


# -- 429 -------------------------------------------------------------------------------
def test_rate_limited_has_retry_after(client, tenant_a):
    for _ in range(2):  # testkit.limited allows 2/minute per actor
        resp = client.post(run("testkit.limited"), json={}, headers=tenant_a.headers())
        assert resp.status_code == 200
    resp = client.post(run("testkit.limited"), json={}, headers=tenant_a.headers())
    body = assert_failure(resp, 429, "rate_limited")
    retry_after = int(resp.headers["Retry-After"])
    assert 1 <= retry_after <= 61
    assert body["error"]["details"] == {"retryAfter": retry_after}


def test_rate_limit_is_per_actor(client, tenant_a, tenant_b):
    for _ in range(3):
        client.post(run("testkit.limited"), json={}, headers=tenant_a.headers())
    resp = client.post(run("testkit.limited"), json={}, headers=tenant_b.headers())
    assert resp.status_code == 200


# -- 500 -------------------------------------------------------------------------------
def test_crash_is_internal_without_leaking_details(client, tenant_a):
    resp = client.post(run("testkit.fail.after_write"), json={"mode": "crash"},
                       headers=tenant_a.headers())
    body = assert_failure(resp, 500, "internal")
    text = resp.get_data(as_text=True)
    for leak in ("passwd", "Traceback", "RuntimeError", "secret internal detail", ".py"):
        assert leak not in text
    assert body["error"]["details"] is None


def test_invalid_handler_output_is_internal(client, tenant_a):
    resp = client.post(run("testkit.bad_output"), json={}, headers=tenant_a.headers())
    body = assert_failure(resp, 500, "internal")
    assert "nope" not in resp.get_data(as_text=True)
    assert body["error"]["details"] is None


def test_a_body_that_is_not_a_json_object_is_a_bad_request(client, tenant_a):
    for data, content_type, says in (
        ("[1, 2]", "application/json", "The request body must be a JSON object"),
        ('{"orgId": ', "application/json", "The request body is not valid JSON: "),
        (b"{\"subject\": \"\xc3\x28\"}", "application/json", "The request body is not valid JSON: "),
        ('{"orgId": "org_1"}', "text/plain", "The request body must be a JSON object (Content-Type"),
    ):
        resp = client.post(TICKETS, data=data, content_type=content_type, headers=tenant_a.headers())
        err = assert_failure(resp, 400, "bad_request")["error"]
        assert err["message"].startswith(says), (data, content_type, err["message"])


def test_an_empty_body_is_an_empty_input_and_fails_validation_by_field(client, tenant_a):
    resp = client.post("/v1/auth/login", data=b"", content_type="application/json",
                       headers={"X-Tenant-Id": tenant_a.id})
    err = assert_failure(resp, 400, "validation_error")["error"]
    assert {d["field"] for d in err["details"]} == {"email", "password"}
