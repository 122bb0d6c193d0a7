"""API keys: creation, hashing, scopes, expiry, rotation, revocation, tenancy, last use, Studio."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from bunbase.clock import clock
from bunbase.db import db
from bunbase.models import ActionRun, AuditEntry, User
from bunbase.tenancy import tenant_scope
from bunbase.testing import settle
from modules.api_keys.models import ApiKey
from tests.fixtures import Tenant, make_tenant
from tests.helpers import assert_failure, rows

SECRET = re.compile(r"^bbk_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}$")


# -- helpers (also used by test_service_accounts.py) ----------------------------------
def key_headers(tenant: Tenant, secret: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", "X-Tenant-Id": tenant.id, **extra}


def create_key(
    client: FlaskClient,
    tenant: Tenant,
    scopes: list[str],
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body = {"orgId": tenant.org_id, "name": "ci", "scopes": scopes, **extra}
    resp = client.post("/v1/api-keys", json=body, headers=headers or tenant.headers())
    assert resp.status_code == 200, resp.json
    return dict(resp.json["data"])


def list_tickets(client: FlaskClient, tenant: Tenant, secret: str, org_id: str | None = None):
    return client.get(
        f"/v1/support/tickets?orgId={org_id or tenant.org_id}", headers=key_headers(tenant, secret)
    )


def add_member(
    app: Flask,
    client: FlaskClient,
    tenant: Tenant,
    email: str,
    role_key: str,
    permissions: list[str] | None = None,
) -> dict[str, str]:
    """A signed-in user of `tenant` holding `role_key` (created with `permissions` if given)
    in `tenant.org_id`; returns their API headers."""
    from bunbase import identity
    from modules.rbac import services as rbac
    from modules.rbac.models import Role, RolePermission

    with app.app_context(), tenant_scope(tenant.id):
        role = db.session.scalar(db.select(Role).where(Role.key == role_key))
        if role is None:
            role = Role(tenant_id=tenant.id, key=role_key, name=role_key.title())
            role.grants = [
                RolePermission(tenant_id=tenant.id, permission=p) for p in permissions or []
            ]
            db.session.add(role)
            db.session.flush()
        user = User(
            tenant_id=tenant.id,
            email=email,
            name=email.split("@")[0],
            password_hash=identity.hash_password("member-pass-1"),
        )
        db.session.add(user)
        db.session.flush()
        rbac.bind(db.session, tenant.id, tenant.org_id, user.id, role)
        db.session.commit()
        db.session.remove()
    login = client.post(
        "/v1/auth/login",
        json={"email": email, "password": "member-pass-1"},
        headers={"X-Tenant-Id": tenant.id},
    )
    assert login.status_code == 200, login.json
    return {"Authorization": f"Bearer {login.json['data']['token']}", "X-Tenant-Id": tenant.id}


# -- the handbook case -----------------------------------------------------------------
def test_read_scoped_key_lists_tickets_but_cannot_create(app, client):
    t = make_tenant(app, "alpha")
    key = create_key(client, t, ["ticket:read"])
    assert SECRET.match(key["secret"])
    assert key["secret"].startswith(f"bbk_{key['prefix']}_")
    assert key["scopes"] == ["ticket:read"] and key["status"] == "active"
    assert key["ownerType"] == "user" and key["expiresAt"] is None

    resp = list_tickets(client, t, key["secret"])
    assert resp.status_code == 200, resp.json
    denied = client.post("/v1/support/tickets", json=t.ticket(),
                         headers=key_headers(t, key["secret"]))
    body = assert_failure(denied, 403, "forbidden")
    assert "ticket:create" in body["error"]["message"]


def test_secret_is_stored_hashed_with_an_indexed_prefix(app, client):
    t = make_tenant(app, "alpha")
    key = create_key(client, t, ["ticket:read"])
    [row] = rows(app, ApiKey, ApiKey.id == key["keyId"])
    assert row.prefix == key["prefix"] and len(row.prefix) == 8
    assert row.token_hash == hashlib.sha256(key["secret"].encode()).hexdigest()
    secret_part = key["secret"].split("_", 2)[2]
    stored = {col.key: str(getattr(row, col.key)) for col in ApiKey.__table__.columns}
    assert secret_part not in json.dumps(stored)


def test_wildcard_scopes_and_invalid_scopes(app, client):
    t = make_tenant(app, "alpha")
    key = create_key(client, t, ["ticket:*"])
    assert list_tickets(client, t, key["secret"]).status_code == 200
    created = client.post("/v1/support/tickets", json=t.ticket(),
                          headers=key_headers(t, key["secret"]))
    assert created.status_code == 200, created.json
    bad = client.post("/v1/api-keys", json={"orgId": t.org_id, "name": "x", "scopes": ["Ticket"]},
                      headers=t.headers())
    assert_failure(bad, 400, "bad_request")
    empty = client.post("/v1/api-keys", json={"orgId": t.org_id, "name": "x", "scopes": []},
                        headers=t.headers())
    assert_failure(empty, 400, "validation_error")


# -- expiry, revocation, rotation -------------------------------------------------------
def test_expired_key_is_401(app, client):
    t = make_tenant(app, "alpha")
    expires = (clock.aware() + timedelta(hours=1)).isoformat()
    key = create_key(client, t, ["ticket:read"], expiresAt=expires)
    assert key["expiresAt"].endswith("Z")
    assert list_tickets(client, t, key["secret"]).status_code == 200
    clock.advance("2h")
    body = assert_failure(list_tickets(client, t, key["secret"]), 401, "unauthenticated")
    assert "expired" in body["error"]["message"]
    past = (clock.aware() - timedelta(minutes=1)).isoformat()
    resp = client.post("/v1/api-keys", headers=t.headers(),
                       json={"orgId": t.org_id, "name": "x", "scopes": ["ticket:read"],
                             "expiresAt": past})
    assert_failure(resp, 400, "bad_request")


def test_revoked_key_is_401_and_revoking_twice_conflicts(app, client):
    t = make_tenant(app, "alpha")
    key = create_key(client, t, ["ticket:read"])
    assert list_tickets(client, t, key["secret"]).status_code == 200
    resp = client.post(f"/v1/api-keys/{key['keyId']}/revoke", headers=t.headers())
    assert resp.status_code == 200, resp.json
    assert resp.json["data"]["status"] == "revoked"
    assert_failure(list_tickets(client, t, key["secret"]), 401, "unauthenticated")
    again = client.post(f"/v1/api-keys/{key['keyId']}/revoke", headers=t.headers())
    assert_failure(again, 409, "conflict")


def test_rotation_keeps_both_keys_working_until_the_grace_period_ends(app, client):
    t = make_tenant(app, "alpha")
    old = create_key(client, t, ["ticket:read"], name="deploys")
    resp = client.post(f"/v1/api-keys/{old['keyId']}/rotate", json={"graceSeconds": 3600},
                       headers=t.headers())
    assert resp.status_code == 200, resp.json
    new = resp.json["data"]
    assert new["keyId"] != old["keyId"] and new["secret"] != old["secret"]
    assert SECRET.match(new["secret"]) and new["prefix"] != old["prefix"]
    assert (new["name"], new["scopes"], new["ownerId"], new["orgId"]) == (
        old["name"], old["scopes"], old["ownerId"], old["orgId"])
    assert new["rotatedFromId"] == old["keyId"] and new["previousKeyId"] == old["keyId"]
    assert new["previousExpiresAt"] is not None

    assert list_tickets(client, t, old["secret"]).status_code == 200
    assert list_tickets(client, t, new["secret"]).status_code == 200
    clock.advance("59m")
    assert list_tickets(client, t, old["secret"]).status_code == 200
    clock.advance("2m")
    assert_failure(list_tickets(client, t, old["secret"]), 401, "unauthenticated")
    assert list_tickets(client, t, new["secret"]).status_code == 200

    # the old key was rotated: rotating it again is refused (rotate the new one)
    again = client.post(f"/v1/api-keys/{old['keyId']}/rotate", json={}, headers=t.headers())
    assert_failure(again, 409, "conflict")


def test_rotation_defaults_to_24h_and_zero_grace_stops_the_old_key_now(app, client):
    t = make_tenant(app, "alpha")
    a = create_key(client, t, ["ticket:read"])
    rotated = client.post(f"/v1/api-keys/{a['keyId']}/rotate", headers=t.headers())
    assert rotated.status_code == 200, rotated.json
    clock.advance("23h")
    assert list_tickets(client, t, a["secret"]).status_code == 200
    clock.advance("2h")
    assert list_tickets(client, t, a["secret"]).status_code == 401

    b = create_key(client, t, ["ticket:read"])
    now = client.post(f"/v1/api-keys/{b['keyId']}/rotate", json={"graceSeconds": 0},
                      headers=t.headers())
    assert now.status_code == 200, now.json
    assert_failure(list_tickets(client, t, b["secret"]), 401, "unauthenticated")
    assert list_tickets(client, t, now.json["data"]["secret"]).status_code == 200


def test_unknown_key_routes_are_404(app, client):
    t = make_tenant(app, "alpha")
    for verb in ("rotate", "revoke"):
        resp = client.post(f"/v1/api-keys/key_nope/{verb}", json={}, headers=t.headers())
        assert_failure(resp, 404, "not_found")


# -- never more than the owner ----------------------------------------------------------
def test_key_cannot_have_a_scope_its_owner_lacks(app, client):
    t = make_tenant(app, "alpha")
    dev = add_member(app, client, t, "dev@alpha.test", "dev", ["api_key:create", "ticket:read"])
    ok = create_key(client, t, ["ticket:read"], headers=dev)
    assert ok["ownerType"] == "user"
    resp = client.post("/v1/api-keys", headers=dev,
                       json={"orgId": t.org_id, "name": "x", "scopes": ["ticket:read", "ticket:create"]})
    body = assert_failure(resp, 403, "forbidden")
    assert body["error"]["details"]["scopes"] == ["ticket:create"]
    assert "'dev'" in body["error"]["details"]["reason"]
    wider = client.post("/v1/api-keys", headers=dev,
                        json={"orgId": t.org_id, "name": "x", "scopes": ["ticket:*"]})
    assert_failure(wider, 403, "forbidden")


def test_use_time_follows_the_owners_current_role(app, client):
    """Scopes are intersected with the owner's role on every call (rbac.decide)."""
    t = make_tenant(app, "alpha")
    dev = add_member(app, client, t, "dev@alpha.test", "dev", ["api_key:create", "ticket:read"])
    key = create_key(client, t, ["ticket:read"], headers=dev)
    assert list_tickets(client, t, key["secret"]).status_code == 200
    from modules.rbac.models import Role, RolePermission

    with app.app_context(), tenant_scope(t.id):
        role = db.session.scalar(db.select(Role).where(Role.key == "dev"))
        db.session.execute(db.delete(RolePermission).where(RolePermission.role_id == role.id,
                                                           RolePermission.permission == "ticket:read"))
        db.session.commit()
        db.session.remove()
    assert_failure(list_tickets(client, t, key["secret"]), 403, "forbidden")


def test_keys_of_a_disabled_user_stop_working_until_the_user_is_enabled(app, client):
    t = make_tenant(app, "alpha")
    dev = add_member(app, client, t, "dev@alpha.test", "dev", ["api_key:create", "ticket:read"])
    key = create_key(client, t, ["ticket:read"], headers=dev)
    assert list_tickets(client, t, key["secret"]).status_code == 200
    user_id = key["ownerId"]
    # Studio's confirmation says so before the operator disables the account
    studio = app.test_client()
    studio_login(studio, t)
    page = studio.get(f"/studio/m/users/users/{user_id}").get_data(as_text=True)
    assert "Their 1 API key stops working until the account is enabled again." in page
    assert client.post(f"/v1/users/{user_id}/disable", headers=t.headers()).status_code == 200
    body = assert_failure(list_tickets(client, t, key["secret"]), 401, "unauthenticated")
    assert "deactivated" in body["error"]["message"]
    [row] = rows(app, ApiKey, ApiKey.id == key["keyId"])
    assert row.revoked_at is None  # the key is kept: enabling the owner brings it back
    assert client.post(f"/v1/users/{user_id}/enable", headers=t.headers()).status_code == 200
    assert list_tickets(client, t, key["secret"]).status_code == 200


def test_a_key_cannot_mint_a_wider_key(app, client):
    t = make_tenant(app, "alpha")
    minter = create_key(client, t, ["api_key:create", "ticket:read"])
    headers = key_headers(t, minter["secret"])
    narrower = create_key(client, t, ["ticket:read"], headers=headers)
    assert narrower["ownerId"] == minter["ownerId"]  # the key's owner, not the key
    resp = client.post("/v1/api-keys", headers=headers,
                       json={"orgId": t.org_id, "name": "x", "scopes": ["ticket:create"]})
    body = assert_failure(resp, 403, "forbidden")
    assert "calling key" in body["error"]["details"]["reason"]


# -- secrets stay secret ----------------------------------------------------------------
def test_secret_never_appears_in_list_audit_or_run_records(app, client):
    t = make_tenant(app, "alpha")
    key = create_key(client, t, ["ticket:read"])
    rotated = client.post(f"/v1/api-keys/{key['keyId']}/rotate", json={"graceSeconds": 60},
                          headers=t.headers()).json["data"]
    secrets_ = [key["secret"], rotated["secret"]]

    listed = client.get(f"/v1/api-keys?orgId={t.org_id}", headers=t.headers())
    assert listed.status_code == 200, listed.json
    assert listed.json["data"]["total"] == 2
    assert all("secret" not in item for item in listed.json["data"]["items"])
    text = listed.get_data(as_text=True)
    assert not any(s in text for s in secrets_)

    settle(app)
    audit = rows(app, AuditEntry, AuditEntry.target_type == "api_key")
    assert {a.action for a in audit} >= {"api_keys.key.create", "api_keys.key.rotate"}
    runs = rows(app, ActionRun, ActionRun.action_name.like("api_keys.%"))
    assert runs
    dumped = json.dumps([a.diff for a in audit] + [[r.input, r.output] for r in runs],
                        default=str)
    hashes = [hashlib.sha256(s.encode()).hexdigest() for s in secrets_]
    assert not any(s in dumped or s.split("_", 2)[2] in dumped for s in secrets_)
    assert not any(h in dumped for h in hashes)
    assert any(r.output and r.output.get("secret") == "[redacted]" for r in runs)


def test_list_filters_by_status(app, client):
    t = make_tenant(app, "alpha")
    a = create_key(client, t, ["ticket:read"])
    create_key(client, t, ["ticket:read"])
    client.post(f"/v1/api-keys/{a['keyId']}/revoke", headers=t.headers())
    revoked = client.get(f"/v1/api-keys?orgId={t.org_id}&status=revoked", headers=t.headers())
    assert [i["keyId"] for i in revoked.json["data"]["items"]] == [a["keyId"]]
    active = client.get(f"/v1/api-keys?orgId={t.org_id}&status=active", headers=t.headers())
    assert active.json["data"]["total"] == 1


# -- tenancy and orgs -----------------------------------------------------------------
def test_key_of_another_tenant_is_401(app, client):
    a, b = make_tenant(app, "alpha"), make_tenant(app, "bravo")
    key = create_key(client, a, ["ticket:read"])
    resp = client.get(f"/v1/support/tickets?orgId={b.org_id}", headers=key_headers(b, key["secret"]))
    assert_failure(resp, 401, "unauthenticated")
    # and its id is unknown there
    resp = client.post(f"/v1/api-keys/{key['keyId']}/revoke", headers=b.headers())
    assert_failure(resp, 404, "not_found")


def test_key_used_on_another_org_is_404(app, client):
    t = make_tenant(app, "alpha")
    key = create_key(client, t, ["ticket:read", "org:read"])
    other = client.post("/v1/orgs", json={"name": "Second Org"}, headers=t.headers())
    other_id = other.json["data"]["orgId"]
    assert_failure(list_tickets(client, t, key["secret"], org_id=other_id), 404, "not_found")
    resp = client.get(f"/v1/orgs/{other_id}", headers=key_headers(t, key["secret"]))
    assert_failure(resp, 404, "not_found")


def test_unknown_and_malformed_keys_are_401_and_sessions_still_work(app, client):
    t = make_tenant(app, "alpha")
    key = create_key(client, t, ["ticket:read"])
    tampered = key["secret"][:-2] + ("AA" if not key["secret"].endswith("AA") else "BB")
    for token in (tampered, "bbk_deadbeef_" + "x" * 43, "bbk_", "bbk_short"):
        assert_failure(list_tickets(client, t, token), 401, "unauthenticated")
    assert client.get(f"/v1/support/tickets?orgId={t.org_id}", headers=t.headers()).status_code == 200


def test_last_used_time_and_ip_are_recorded_after_a_flush(app, client):
    t = make_tenant(app, "alpha")
    key = create_key(client, t, ["ticket:read"])
    [row] = rows(app, ApiKey, ApiKey.id == key["keyId"])
    assert row.last_used_at is None
    before = clock.now()
    assert list_tickets(client, t, key["secret"]).status_code == 200
    settle(app)
    [row] = rows(app, ApiKey, ApiKey.id == key["keyId"])
    assert row.last_used_at is not None and row.last_used_at >= before
    assert row.last_used_ip == "127.0.0.1"
    listed = client.get(f"/v1/api-keys?orgId={t.org_id}", headers=t.headers())
    assert listed.json["data"]["items"][0]["lastUsedAt"].endswith("Z")


# -- Studio -----------------------------------------------------------------------------
def _csrf(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def studio_login(client: FlaskClient, tenant: Tenant) -> str:
    page = client.get("/studio/login")
    form = {"email": tenant.email, "password": tenant.password, "workspace": tenant.slug,
            "csrf_token": _csrf(page.get_data(as_text=True))}
    resp = client.post("/studio/login", data=form)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return _csrf(client.get("/studio/m/api_keys/keys").get_data(as_text=True))


def test_studio_creates_shows_the_secret_once_rotates_and_revokes(app):
    t = make_tenant(app, "alpha")
    client = app.test_client()
    csrf = studio_login(client, t)
    empty = client.get("/studio/m/api_keys/keys").get_data(as_text=True)
    assert "No API keys yet" in empty

    resp = client.post("/studio/m/api_keys/keys/new", data={
        "csrf_token": csrf, "org_id": t.org_id, "name": "studio key",
        "scopes": "ticket:read, ticket:create"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    secret = re.search(r'data-testid="key-secret"[^>]*>(bbk_[^<]+)<', html).group(1)
    assert f'data-copy="{secret}"' in html
    assert list_tickets(client, t, secret).status_code == 200

    listing = client.get("/studio/m/api_keys/keys?status=active").get_data(as_text=True)
    assert "studio key" in listing and secret not in listing
    [row] = rows(app, ApiKey)
    detail = client.get(f"/studio/m/api_keys/keys/{row.id}").get_data(as_text=True)
    assert "data-confirm" in detail and secret not in detail

    rotated = client.post(f"/studio/m/api_keys/keys/{row.id}/rotate",
                          data={"csrf_token": csrf, "grace_hours": "0"})
    new_secret = re.search(r'data-testid="key-secret"[^>]*>(bbk_[^<]+)<',
                           rotated.get_data(as_text=True)).group(1)
    assert list_tickets(client, t, secret).status_code == 401
    assert list_tickets(client, t, new_secret).status_code == 200

    [new_row] = rows(app, ApiKey, ApiKey.rotated_from_id == row.id)
    revoked = client.post(f"/studio/m/api_keys/keys/{new_row.id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 302
    assert list_tickets(client, t, new_secret).status_code == 401

    settle(app)
    studio_runs = rows(app, ActionRun, ActionRun.trigger_type == "studio")
    assert {r.action_name for r in studio_runs} == {
        "api_keys.key.create", "api_keys.key.rotate", "api_keys.key.revoke"}

    # a refused scope comes back as a flash on the form
    bad = client.post("/studio/m/api_keys/keys/new", data={
        "csrf_token": csrf, "org_id": t.org_id, "name": "bad", "scopes": "Not A Scope"})
    assert "Scopes are permissions" in bad.get_data(as_text=True)
