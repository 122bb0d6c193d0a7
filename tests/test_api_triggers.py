"""How HTTP maps to action input: custom GET/PUT routes and the generic run route."""

from __future__ import annotations

import pytest

from bunbase.models import ActionRun
from bunbase.testing import settle
from tests.helpers import assert_failure, assert_success, rows

ECHO = "/v1/testkit/echo"


def test_get_maps_query_string_and_path_params(client, tenant_a):
    resp = client.get(f"{ECHO}/abc?flag=yes&count=3", headers=tenant_a.headers())
    assert assert_success(resp)["data"] == {"itemId": "abc", "flag": "yes", "count": 3}


def test_get_ignores_the_body(client, tenant_a):
    resp = client.get(f"{ECHO}/abc", json={"flag": "from-body"}, headers=tenant_a.headers())
    assert assert_success(resp)["data"] == {"itemId": "abc", "flag": None, "count": 0}


def test_get_query_is_validated(client, tenant_a):
    resp = client.get(f"{ECHO}/abc?count=many", headers=tenant_a.headers())
    body = assert_failure(resp, 400, "validation_error")
    assert [d["field"] for d in body["error"]["details"]] == ["count"]


def test_put_maps_json_body_and_path_params(client, tenant_a):
    resp = client.put(f"{ECHO}/xyz", json={"flag": "f", "count": 5}, headers=tenant_a.headers())
    assert assert_success(resp)["data"] == {"itemId": "xyz", "flag": "f", "count": 5}


def test_put_path_param_wins_over_body(client, tenant_a):
    resp = client.put(f"{ECHO}/from-path", json={"itemId": "from-body"}, headers=tenant_a.headers())
    assert assert_success(resp)["data"]["itemId"] == "from-path"


def test_put_ignores_the_query_string(client, tenant_a):
    resp = client.put(f"{ECHO}/q?flag=query", json={}, headers=tenant_a.headers())
    assert assert_success(resp)["data"]["flag"] is None


def test_wrong_method_on_a_route_is_an_error_envelope(client, tenant_a):
    resp = client.delete(f"{ECHO}/abc", headers=tenant_a.headers())
    assert_failure(resp, 400, "bad_request")


@pytest.mark.parametrize("data", ["[1, 2]", '"text"', "42", "null", "{not json", "true"])
def test_body_that_is_not_a_json_object_is_400(client, tenant_a, data):
    for url, method in (("/v1/actions/support.ticket.create/run", "post"),
                        ("/v1/support/tickets", "post"), (f"{ECHO}/abc", "put")):
        resp = getattr(client, method)(url, data=data, content_type="application/json",
                                       headers=tenant_a.headers())
        body = assert_failure(resp, 400, "bad_request")
        says = "not valid JSON" if data == "{not json" else "JSON object"
        assert says in body["error"]["message"]


# -- the generic route serves every action ---------------------------------------------
# test_authz_matrix.py runs every registered action through POST /v1/actions/<name>/run
# (alice's allowed calls, and every expected denial) as well as through its own routes.
def test_generic_run_route_serves_every_registered_action(app, client, tenant_a):
    """Each action answers on the generic route with the executor's envelope and a run."""
    actions = app.extensions["bunbase"].registry.actions
    for name in actions:
        resp = client.post(f"/v1/actions/{name}/run", json={"__probe__": 1},
                           headers={"X-Tenant-Id": tenant_a.id})
        body = resp.get_json()
        assert set(body) in ({"ok", "error", "trace_id"}, {"ok", "data", "run_id", "trace_id"})
        assert resp.headers["X-Run-Id"].startswith("run_"), name
    settle(app)
    ran = {r.action_name for r in rows(app, ActionRun, ActionRun.tenant_id == tenant_a.id)}
    assert set(actions) <= ran


def test_generic_route_with_empty_body_validates_input(client, tenant_a):
    # no body at all: the org comes from X-Org-Id, so the guards pass and validation speaks
    resp = client.post("/v1/actions/support.ticket.create/run",
                       headers=tenant_a.headers(**{"X-Org-Id": tenant_a.org_id}))
    body = assert_failure(resp, 400, "validation_error")
    assert {d["field"] for d in body["error"]["details"]} == {"orgId", "subject", "body"}


def test_generic_route_with_empty_body_and_no_org_is_not_found(client, tenant_a):
    """Guards run before validation: with no org anywhere, in_org answers first."""
    resp = client.post("/v1/actions/support.ticket.create/run", headers=tenant_a.headers())
    body = assert_failure(resp, 404, "not_found")
    assert body["error"]["message"] == "Organization not found"


def test_generic_route_is_post_only(client, tenant_a):
    resp = client.get("/v1/actions/support.ticket.list/run", headers=tenant_a.headers())
    assert_failure(resp, 400, "bad_request")
