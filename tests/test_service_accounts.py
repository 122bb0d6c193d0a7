"""Service accounts: org-scoped non-human principals whose keys act with their role."""

from __future__ import annotations

from bunbase.models import AuditEntry
from tests.fixtures import make_tenant
from tests.helpers import assert_failure, rows
from tests.test_api_keys import add_member, create_key, key_headers, list_tickets


def create_sa(client, tenant, role="member", headers=None, **extra):
    body = {"orgId": tenant.org_id, "name": "ci-deployer", "role": role, **extra}
    resp = client.post("/v1/api-keys/service-accounts", json=body,
                       headers=headers or tenant.headers())
    assert resp.status_code == 200, resp.json
    return resp.json["data"]


def test_create_and_list_service_accounts(app, client):
    t = make_tenant(app, "alpha")
    sa = create_sa(client, t, description="deploys from CI")
    assert sa["serviceAccountId"].startswith("sva_")
    assert (sa["role"], sa["status"], sa["orgId"]) == ("member", "active", t.org_id)
    listed = client.get(f"/v1/api-keys/service-accounts?orgId={t.org_id}", headers=t.headers())
    assert listed.status_code == 200, listed.json
    assert [i["serviceAccountId"] for i in listed.json["data"]["items"]] == [sa["serviceAccountId"]]
    dup = client.post("/v1/api-keys/service-accounts", headers=t.headers(),
                      json={"orgId": t.org_id, "name": "ci-deployer"})
    assert_failure(dup, 409, "conflict")
    unknown_role = client.post("/v1/api-keys/service-accounts", headers=t.headers(),
                               json={"orgId": t.org_id, "name": "other", "role": "wizard"})
    assert_failure(unknown_role, 400, "bad_request")
    audit = rows(app, AuditEntry, AuditEntry.target_id == sa["serviceAccountId"])
    assert [a.action for a in audit] == ["api_keys.service_account.create"]


def test_service_account_key_works_with_the_service_accounts_role(app, client):
    t = make_tenant(app, "alpha")
    sa = create_sa(client, t, role="member")
    key = create_key(client, t, ["ticket:read", "ticket:create"],
                     serviceAccountId=sa["serviceAccountId"])
    assert (key["ownerType"], key["ownerId"]) == ("service_account", sa["serviceAccountId"])
    headers = key_headers(t, key["secret"])
    assert client.post("/v1/support/tickets", json=t.ticket(), headers=headers).status_code == 200
    assert list_tickets(client, t, key["secret"]).status_code == 200

    # the role is checked on every use: a viewer service account cannot create any more
    resp = client.patch(f"/v1/api-keys/service-accounts/{sa['serviceAccountId']}",
                        json={"role": "viewer"}, headers=t.headers())
    assert resp.status_code == 200, resp.json
    assert resp.json["data"]["role"] == "viewer"
    assert_failure(client.post("/v1/support/tickets", json=t.ticket(), headers=headers),
                   403, "forbidden")
    assert list_tickets(client, t, key["secret"]).status_code == 200


def test_service_account_key_cannot_exceed_its_role(app, client):
    t = make_tenant(app, "alpha")
    sa = create_sa(client, t, role="viewer")
    resp = client.post("/v1/api-keys", headers=t.headers(), json={
        "orgId": t.org_id, "name": "x", "scopes": ["ticket:create"],
        "serviceAccountId": sa["serviceAccountId"]})
    body = assert_failure(resp, 403, "forbidden")
    assert "service account" in body["error"]["details"]["reason"]
    assert body["error"]["details"]["scopes"] == ["ticket:create"]


def test_disabled_service_account_keys_are_401(app, client):
    t = make_tenant(app, "alpha")
    sa = create_sa(client, t)
    key = create_key(client, t, ["ticket:read"], serviceAccountId=sa["serviceAccountId"])
    assert list_tickets(client, t, key["secret"]).status_code == 200
    resp = client.post(f"/v1/api-keys/service-accounts/{sa['serviceAccountId']}/disable",
                       headers=t.headers())
    assert resp.status_code == 200, resp.json
    assert resp.json["data"]["status"] == "disabled"
    body = assert_failure(list_tickets(client, t, key["secret"]), 401, "unauthenticated")
    assert "disabled" in body["error"]["message"]
    again = client.post(f"/v1/api-keys/service-accounts/{sa['serviceAccountId']}/disable",
                        headers=t.headers())
    assert_failure(again, 409, "conflict")
    new_key = client.post("/v1/api-keys", headers=t.headers(), json={
        "orgId": t.org_id, "name": "x", "scopes": ["ticket:read"],
        "serviceAccountId": sa["serviceAccountId"]})
    assert_failure(new_key, 409, "conflict")
    active = client.get(f"/v1/api-keys/service-accounts?orgId={t.org_id}&status=active",
                        headers=t.headers())
    assert active.json["data"]["items"] == []


def test_service_account_role_ceiling(app, client):
    t = make_tenant(app, "alpha")
    lead = add_member(app, client, t, "lead@alpha.test", "lead",
                      ["service_account:create", "service_account:update", "ticket:*", "*:read"])
    sa = create_sa(client, t, role="viewer", headers=lead)
    for role in ("owner", "admin"):
        resp = client.post("/v1/api-keys/service-accounts", headers=lead,
                           json={"orgId": t.org_id, "name": f"sa-{role}", "role": role})
        body = assert_failure(resp, 403, "forbidden")
        assert "'lead'" in body["error"]["details"]["reason"]
    resp = client.patch(f"/v1/api-keys/service-accounts/{sa['serviceAccountId']}",
                        json={"role": "owner"}, headers=lead)
    assert_failure(resp, 403, "forbidden")


def test_service_accounts_are_org_and_tenant_scoped(app, client):
    a, b = make_tenant(app, "alpha"), make_tenant(app, "bravo")
    sa = create_sa(client, a)
    # another tenant: the id does not exist there
    resp = client.post(f"/v1/api-keys/service-accounts/{sa['serviceAccountId']}/disable",
                       headers=b.headers())
    assert_failure(resp, 404, "not_found")
    # another org of the same tenant cannot own a key through it
    other = client.post("/v1/orgs", json={"name": "Second"}, headers=a.headers()).json["data"]
    resp = client.post("/v1/api-keys", headers=a.headers(), json={
        "orgId": other["orgId"], "name": "x", "scopes": ["ticket:read"],
        "serviceAccountId": sa["serviceAccountId"]})
    assert_failure(resp, 404, "not_found")
    # a member without service_account:read cannot list them
    viewer = add_member(app, client, a, "m@alpha.test", "member")
    resp = client.get(f"/v1/api-keys/service-accounts?orgId={a.org_id}", headers=viewer)
    assert_failure(resp, 403, "forbidden")


def test_studio_service_accounts_create_and_disable(app):
    from tests.test_api_keys import studio_login

    t = make_tenant(app, "alpha")
    client = app.test_client()
    csrf = studio_login(client, t)
    assert "No service accounts yet" in client.get(
        "/studio/m/api_keys/service-accounts").get_data(as_text=True)
    resp = client.post("/studio/m/api_keys/service-accounts/new", data={
        "csrf_token": csrf, "org_id": t.org_id, "name": "nightly-sync", "role": "member",
        "description": "syncs tickets"})
    assert resp.status_code == 302
    page = client.get("/studio/m/api_keys/service-accounts").get_data(as_text=True)
    assert "nightly-sync" in page and "data-confirm" in page
    [sa] = client.get(f"/v1/api-keys/service-accounts?orgId={t.org_id}",
                      headers=t.headers()).json["data"]["items"]
    resp = client.post(f"/studio/m/api_keys/service-accounts/{sa['serviceAccountId']}/disable",
                       data={"csrf_token": csrf})
    assert resp.status_code == 302
    [sa] = client.get(f"/v1/api-keys/service-accounts?orgId={t.org_id}",
                      headers=t.headers()).json["data"]["items"]
    assert sa["status"] == "disabled"
