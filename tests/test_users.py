"""The users module: sign-up and email verification, password change and reset, user
administration (list, get, disable, enable) and its Studio pages. Mail goes through the
real outbox -> worker -> SMTP path into the test SMTP server (`mailbox`)."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from bunbase.clock import clock
from bunbase.models import ActionRun, AuditEntry, AuthSession, User
from bunbase.testing import settle
from modules.users.models import UserToken
from tests.fixtures import Tenant
from tests.helpers import assert_failure, assert_success, count, rows

PASSWORD = "correct horse battery"


# -- helpers (shared with test_sessions.py) ------------------------------------------
def deliver_mail(app: Flask) -> None:
    from bunbase import outbox
    from bunbase.worker import run_worker

    outbox.settle()  # the courier pushes after commit, in the background

    run_worker(app, ["high", "default", "low"], burst=True)


def code_from(mailbox: Any, address: str, label: str) -> str:
    """The code in the latest mail to `address`: label is "Verification" or "Reset"."""
    found = mailbox.to(address)
    assert found, f"no mail to {address}; got {[m['To'] for m in mailbox.messages]}"
    body = found[-1].get_content()
    path = {"Verification": "verify-email", "Reset": "reset-password"}[label]
    codes = re.findall(rf"https?://[^/\s]+/{path}/(bb[a-z]_[A-Za-z0-9_-]+)", body)
    assert codes, body
    assert f"code is {codes[-1]}" in body  # the same code, for apps that call the API
    return codes[-1]


def signup(
    client: FlaskClient, tenant: Tenant, email: str, password: str = PASSWORD, name: str = "Ann"
) -> Any:
    return client.post(
        "/v1/users/signup",
        json={"email": email, "password": password, "name": name},
        headers={"X-Tenant-Id": tenant.slug},
    )


def login(
    client: FlaskClient,
    tenant: Tenant,
    email: str,
    password: str = PASSWORD,
    *,
    ip: str = "127.0.0.1",
    agent: str = "pytest",
) -> Any:
    return client.post(
        "/v1/auth/login",
        json={"email": email, "password": password},
        headers={"X-Tenant-Id": tenant.slug, "User-Agent": agent},
        environ_base={"REMOTE_ADDR": ip},
    )


def token_of(resp: Any) -> str:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return str(resp.json["data"]["token"])


def bearer(tenant: Tenant, token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Tenant-Id": tenant.id}


def me_status(client: FlaskClient, tenant: Tenant, token: str) -> int:
    return client.get("/v1/auth/me", headers=bearer(tenant, token)).status_code


def audit_entries(app: Flask, action: str, **where: Any) -> list[AuditEntry]:
    settle(app)
    clauses = [AuditEntry.action == action]
    clauses += [getattr(AuditEntry, k) == v for k, v in where.items()]
    return rows(app, AuditEntry, *clauses)


# -- sign-up and email verification --------------------------------------------------
def test_signup_contract_mails_a_single_use_verification_code(app, client, tenant_a, mailbox):
    resp = signup(client, tenant_a, "Ann@Example.com", name="Ann Example")
    body = assert_success(resp)
    assert set(body["data"]) == {"userId", "email"}
    assert body["data"]["email"] == "ann@example.com"
    user_id = body["data"]["userId"]
    assert user_id.startswith("usr_")

    deliver_mail(app)
    msg = mailbox.to("ann@example.com")[-1]
    assert msg["X-Bunbase-Kind"] == "verify_email"
    code = code_from(mailbox, "ann@example.com", "Verification")
    # only the hash is stored
    (token_row,) = rows(app, UserToken, UserToken.user_id == user_id)
    assert code not in token_row.token_hash and token_row.purpose == "verify_email"

    # the account can sign in before verifying (the invitation-accept flow relies on it)
    assert login(client, tenant_a, "ann@example.com").status_code == 200

    verified = assert_success(
        client.post("/v1/users/verify-email", json={"token": code},
                    headers={"X-Tenant-Id": tenant_a.slug})
    )
    assert verified["data"]["userId"] == user_id
    assert verified["data"]["emailVerifiedAt"].endswith("Z")
    (user,) = rows(app, User, User.id == user_id)
    assert user.email_verified_at is not None

    again = client.post("/v1/users/verify-email", json={"token": code},
                        headers={"X-Tenant-Id": tenant_a.slug})
    assert_failure(again, 400, "bad_request")

    # secrets never reach run records or the audit log
    settle(app)
    (run,) = rows(app, ActionRun, ActionRun.action_name == "users.user.signup")
    assert run.input["password"] == "[redacted]"
    (entry,) = audit_entries(app, "users.user.signup")
    assert entry.target_id == user_id and PASSWORD not in str(entry.diff)
    assert entry.diff["after"]["email_verified"] is False
    (entry,) = audit_entries(app, "users.user.verify_email")
    assert entry.diff == {
        "before": {"email": "ann@example.com", "name": "Ann Example", "status": "active",
                   "email_verified": False},
        "after": {"email": "ann@example.com", "name": "Ann Example", "status": "active",
                  "email_verified": True},
    }


def test_verification_code_expires_and_a_resend_replaces_it(app, client, tenant_a, mailbox):
    user_id = signup(client, tenant_a, "bo@example.com").json["data"]["userId"]
    deliver_mail(app)
    first = code_from(mailbox, "bo@example.com", "Verification")
    clock.advance("25h")
    expired = client.post("/v1/users/verify-email", json={"token": first},
                          headers={"X-Tenant-Id": tenant_a.slug})
    assert_failure(expired, 400, "bad_request")

    token = token_of(login(client, tenant_a, "bo@example.com"))
    resp = client.post("/v1/users/verify-email/resend", headers=bearer(tenant_a, token))
    assert assert_success(resp)["data"] == {"sent": True}
    deliver_mail(app)
    second = code_from(mailbox, "bo@example.com", "Verification")
    assert second != first
    ok = client.post("/v1/users/verify-email", json={"token": second},
                     headers={"X-Tenant-Id": tenant_a.slug})
    assert_success(ok)
    (user,) = rows(app, User, User.id == user_id)
    assert user.email_verified_at is not None


def test_signup_validation_duplicates_and_tenancy(client, tenant_a, tenant_b):
    short = signup(client, tenant_a, "cy@example.com", password="short")
    body = assert_failure(short, 400, "validation_error")
    assert body["error"]["details"][0]["field"] == "password"
    bad = client.post("/v1/users/signup", json={"email": "not-an-email", "password": PASSWORD},
                      headers={"X-Tenant-Id": tenant_a.slug})
    fields = {d["field"] for d in assert_failure(bad, 400, "validation_error")["error"]["details"]}
    assert fields == {"email", "name"}

    first = assert_success(signup(client, tenant_a, "cy@example.com"))["data"]
    # a second sign-up with a taken email gets the same answer (no account is created)
    dup = assert_success(signup(client, tenant_a, "CY@example.com"))["data"]
    assert set(dup) == set(first) and dup["email"] == first["email"] == "cy@example.com"
    assert dup["userId"] != first["userId"] and dup["userId"].startswith("usr_")
    # the same email is a different account in another tenant
    assert signup(client, tenant_b, "cy@example.com").status_code == 200
    # a verification code only works in its own tenant
    assert client.post("/v1/users/signup", json={}, headers={}).status_code == 400


def test_wrong_purpose_and_garbage_tokens_are_rejected(app, client, tenant_a, mailbox):
    signup(client, tenant_a, "dee@example.com")
    deliver_mail(app)
    code = code_from(mailbox, "dee@example.com", "Verification")
    for token in (code + "x", "bbv_" + "A" * 43, "nonsense-token"):
        resp = client.post("/v1/users/verify-email", json={"token": token},
                           headers={"X-Tenant-Id": tenant_a.slug})
        assert_failure(resp, 400, "bad_request")
    # a verification code is not a reset code
    resp = client.post("/v1/users/password/reset", json={"token": code, "newPassword": "x" * 12},
                       headers={"X-Tenant-Id": tenant_a.slug})
    assert_failure(resp, 400, "bad_request")


# -- password reset ------------------------------------------------------------------
def test_password_reset_is_single_use_and_revokes_every_session(app, client, tenant_a, mailbox):
    user_id = signup(client, tenant_a, "eve@example.com").json["data"]["userId"]
    phone = token_of(login(client, tenant_a, "eve@example.com", agent="phone"))
    laptop = token_of(login(client, tenant_a, "eve@example.com", agent="laptop"))
    mailbox.clear()

    headers = {"X-Tenant-Id": tenant_a.slug}
    known = client.post("/v1/users/password/reset-request", json={"email": "eve@example.com"},
                        headers=headers)
    unknown = client.post("/v1/users/password/reset-request",
                          json={"email": "nobody@example.com"}, headers=headers)
    assert assert_success(known)["data"] == assert_success(unknown)["data"] == {"accepted": True}
    deliver_mail(app)
    assert mailbox.to("nobody@example.com") == []
    assert mailbox.to("eve@example.com")[-1]["X-Bunbase-Kind"] == "password_reset"
    code = code_from(mailbox, "eve@example.com", "Reset")

    new_password = "a much better passphrase"
    done = assert_success(
        client.post("/v1/users/password/reset", json={"token": code, "newPassword": new_password},
                    headers=headers)
    )
    assert done["data"] == {"userId": user_id, "revokedSessions": 2}
    assert me_status(client, tenant_a, phone) == 401
    assert me_status(client, tenant_a, laptop) == 401

    reuse = client.post("/v1/users/password/reset",
                        json={"token": code, "newPassword": "yet another passphrase"},
                        headers=headers)
    assert_failure(reuse, 400, "bad_request")
    assert login(client, tenant_a, "eve@example.com").status_code == 401
    assert login(client, tenant_a, "eve@example.com", new_password).status_code == 200

    (entry,) = audit_entries(app, "users.password.reset")
    assert entry.target_id == user_id and new_password not in str(entry.diff)
    assert {e.target_id for e in audit_entries(app, "users.password.request_reset")} == {
        user_id, None}
    settle(app)
    for run in rows(app, ActionRun, ActionRun.action_name == "users.password.reset"):
        assert run.input["token"] == "[redacted]" and run.input["newPassword"] == "[redacted]"


def test_reset_code_expires_after_an_hour_and_a_newer_one_replaces_it(
    app, client, tenant_a, mailbox
):
    signup(client, tenant_a, "fay@example.com")
    headers = {"X-Tenant-Id": tenant_a.slug}
    client.post("/v1/users/password/reset-request", json={"email": "fay@example.com"},
                headers=headers)
    deliver_mail(app)
    first = code_from(mailbox, "fay@example.com", "Reset")
    clock.advance("61m")
    expired = client.post("/v1/users/password/reset",
                          json={"token": first, "newPassword": "new passphrase one"},
                          headers=headers)
    assert_failure(expired, 400, "bad_request")

    client.post("/v1/users/password/reset-request", json={"email": "fay@example.com"},
                headers=headers)
    deliver_mail(app)
    second = code_from(mailbox, "fay@example.com", "Reset")
    client.post("/v1/users/password/reset-request", json={"email": "fay@example.com"},
                headers=headers)
    deliver_mail(app)
    third = code_from(mailbox, "fay@example.com", "Reset")
    replaced = client.post("/v1/users/password/reset",
                           json={"token": second, "newPassword": "new passphrase two"},
                           headers=headers)
    assert_failure(replaced, 400, "bad_request")
    assert_success(client.post("/v1/users/password/reset",
                               json={"token": third, "newPassword": "new passphrase three"},
                               headers=headers))
    assert login(client, tenant_a, "fay@example.com", "new passphrase three").status_code == 200


def test_reset_requests_are_capped_per_account_silently(app, client, tenant_a, mailbox):
    signup(client, tenant_a, "gus@example.com")
    mailbox.clear()
    for _ in range(5):
        resp = client.post("/v1/users/password/reset-request", json={"email": "gus@example.com"},
                           headers={"X-Tenant-Id": tenant_a.slug})
        assert resp.status_code == 200
    deliver_mail(app)
    kinds = [m["X-Bunbase-Kind"] for m in mailbox.to("gus@example.com")]
    assert kinds.count("password_reset") == 3


# -- password change -----------------------------------------------------------------
def test_change_password_keeps_this_session_and_revokes_the_others(app, client, tenant_a):
    user_id = signup(client, tenant_a, "hal@example.com").json["data"]["userId"]
    here = token_of(login(client, tenant_a, "hal@example.com", agent="here"))
    there = token_of(login(client, tenant_a, "hal@example.com", agent="there"))

    wrong = client.post("/v1/users/password/change",
                        json={"currentPassword": "wrong password!", "newPassword": "x" * 12},
                        headers=bearer(tenant_a, here))
    body = assert_failure(wrong, 400, "bad_request")
    assert body["error"]["details"][0]["field"] == "currentPassword"
    short = client.post("/v1/users/password/change",
                        json={"currentPassword": PASSWORD, "newPassword": "short"},
                        headers=bearer(tenant_a, here))
    assert_failure(short, 400, "validation_error")
    assert me_status(client, tenant_a, there) == 200

    resp = client.post("/v1/users/password/change",
                       json={"currentPassword": PASSWORD, "newPassword": "brand new passphrase"},
                       headers=bearer(tenant_a, here))
    assert assert_success(resp)["data"] == {"userId": user_id, "revokedSessions": 1}
    assert me_status(client, tenant_a, here) == 200
    assert me_status(client, tenant_a, there) == 401
    assert login(client, tenant_a, "hal@example.com").status_code == 401
    assert login(client, tenant_a, "hal@example.com", "brand new passphrase").status_code == 200
    (entry,) = audit_entries(app, "users.user.change_password", target_type="user")
    assert "brand new passphrase" not in str(entry.diff)
    assert client.post("/v1/users/password/change", json={}).status_code == 400


# -- administration ------------------------------------------------------------------
def _user_token(client: FlaskClient, tenant: Tenant, email: str) -> tuple[str, str]:
    user_id = signup(client, tenant, email).json["data"]["userId"]
    return user_id, token_of(login(client, tenant, email))


def test_user_admin_needs_a_tenant_admin(client, tenant_a):
    _, token = _user_token(client, tenant_a, "ivy@example.com")
    resp = client.get("/v1/users", headers=bearer(tenant_a, token))
    assert_failure(resp, 403, "forbidden")
    assert_failure(client.get("/v1/users", headers={"X-Tenant-Id": tenant_a.id}), 401,
                   "unauthenticated")
    admin = client.get("/v1/users", headers=tenant_a.headers())
    assert assert_success(admin)["data"]["total"] == 2


def test_list_search_filters_and_cursor(app, client, tenant_a, mailbox):
    ids = {}
    for email, name in [("jo@example.com", "Jo Smith"), ("kim@example.com", "Kim Smith"),
                        ("lee@other.org", "Lee Jones")]:
        ids[email] = signup(client, tenant_a, email, name=name).json["data"]["userId"]
    deliver_mail(app)
    client.post("/v1/users/verify-email",
                json={"token": code_from(mailbox, "kim@example.com", "Verification")},
                headers={"X-Tenant-Id": tenant_a.slug})
    client.post(f"/v1/users/{ids['lee@other.org']}/disable", headers=tenant_a.headers())

    def emails(**query: str) -> list[str]:
        body = assert_success(client.get("/v1/users", query_string=query,
                                         headers=tenant_a.headers()))
        return [u["email"] for u in body["data"]["items"]]

    assert emails(q="smith") == ["kim@example.com", "jo@example.com"]
    assert emails(q="OTHER.org") == ["lee@other.org"]
    assert emails(status="disabled") == ["lee@other.org"]
    assert emails(verified="yes") == ["kim@example.com"]
    assert emails(role="admin") == [tenant_a.email]
    assert emails(role="member", status="active", verified="no") == ["jo@example.com"]
    first = assert_success(client.get("/v1/users", query_string={"limit": 2},
                                      headers=tenant_a.headers()))["data"]
    assert first["total"] == 4 and len(first["items"]) == 2 and first["nextCursor"]
    rest = assert_success(client.get("/v1/users",
                                     query_string={"limit": 2, "cursor": first["nextCursor"]},
                                     headers=tenant_a.headers()))["data"]
    seen = [u["userId"] for u in first["items"] + rest["items"]]
    assert len(set(seen)) == 4 and rest["nextCursor"] is None
    bad = client.get("/v1/users", query_string={"status": "weird"}, headers=tenant_a.headers())
    assert_failure(bad, 400, "validation_error")


def test_disable_ends_sessions_blocks_sign_in_and_enable_restores(app, client, tenant_a):
    user_id, token = _user_token(client, tenant_a, "max@example.com")
    detail = assert_success(client.get(f"/v1/users/{user_id}", headers=tenant_a.headers()))
    assert detail["data"]["activeSessions"] == 1 and detail["data"]["status"] == "active"

    resp = client.post(f"/v1/users/{user_id}/disable", headers=tenant_a.headers())
    assert assert_success(resp)["data"] == {"userId": user_id, "status": "disabled",
                                            "revokedSessions": 1}
    assert me_status(client, tenant_a, token) == 401
    assert_failure(login(client, tenant_a, "max@example.com"), 401, "unauthenticated")
    (entry,) = audit_entries(app, "users.user.disable")
    assert entry.diff["before"]["status"] == "active"
    assert entry.diff["after"]["status"] == "disabled"
    assert entry.actor_id is not None
    # a disabled account gets no reset mail, and the reply does not tell
    assert client.post("/v1/users/password/reset-request", json={"email": "max@example.com"},
                       headers={"X-Tenant-Id": tenant_a.slug}).status_code == 200

    resp = client.post(f"/v1/users/{user_id}/enable", headers=tenant_a.headers())
    assert assert_success(resp)["data"]["status"] == "active"
    assert me_status(client, tenant_a, token) == 401  # revoked sessions stay revoked
    assert login(client, tenant_a, "max@example.com").status_code == 200
    (entry,) = audit_entries(app, "users.user.enable")
    assert entry.diff["after"]["status"] == "active"

    admin_id = rows(app, User, User.email == tenant_a.email)[0].id
    assert_failure(client.post(f"/v1/users/{admin_id}/disable", headers=tenant_a.headers()),
                   409, "conflict")


def test_another_tenants_user_is_not_found(app, client, tenant_a, tenant_b):
    other_id, other_token = _user_token(client, tenant_b, "ned@example.com")
    for method, path in [("get", f"/v1/users/{other_id}"),
                         ("post", f"/v1/users/{other_id}/disable"),
                         ("post", f"/v1/users/{other_id}/enable"),
                         ("get", f"/v1/users/{other_id}/sessions"),
                         ("post", f"/v1/users/{other_id}/sessions/revoke-all"),
                         ("get", "/v1/users/usr_doesnotexist")]:
        resp = getattr(client, method)(path, headers=tenant_a.headers())
        assert_failure(resp, 404, "not_found")
    assert me_status(client, tenant_b, other_token) == 200
    assert count(app, AuthSession, AuthSession.user_id == other_id,
                 AuthSession.revoked_at.is_(None)) == 1


def test_admin_sees_and_revokes_a_users_sessions(app, client, tenant_a, tenant_b):
    user_id, token = _user_token(client, tenant_a, "oz@example.com")
    second = token_of(login(client, tenant_a, "oz@example.com", ip="10.1.2.3",
                            agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"))
    listed = assert_success(client.get(f"/v1/users/{user_id}/sessions",
                                       headers=tenant_a.headers()))["data"]["items"]
    assert len(listed) == 2
    firefox = next(s for s in listed if s["ip"] == "10.1.2.3")
    assert firefox["device"] == "Firefox on Linux" and firefox["current"] is False

    resp = client.post(f"/v1/users/{user_id}/sessions/{firefox['sessionId']}/revoke",
                       headers=tenant_a.headers())
    assert_success(resp)
    assert me_status(client, tenant_a, second) == 401 and me_status(client, tenant_a, token) == 200
    # a session of someone else, under this user's id, is 404
    admin_sessions = assert_success(client.get("/v1/auth/sessions",
                                               headers=tenant_a.headers()))["data"]["items"]
    resp = client.post(f"/v1/users/{user_id}/sessions/{admin_sessions[0]['sessionId']}/revoke",
                       headers=tenant_a.headers())
    assert_failure(resp, 404, "not_found")
    all_ = client.post(f"/v1/users/{user_id}/sessions/revoke-all", headers=tenant_a.headers())
    assert assert_success(all_)["data"]["revoked"] == 1
    assert me_status(client, tenant_a, token) == 401


# -- Studio --------------------------------------------------------------------------
def studio_client(app: Flask, tenant: Tenant) -> FlaskClient:
    # Studio's sign-in reads, then writes, outside a BEGIN IMMEDIATE: on SQLite a buffered
    # session touch committing in between fails it with "database is locked", so write
    # the pending touches first
    settle(app)
    c = app.test_client()
    page = c.get("/studio/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = c.post("/studio/login", data={"email": tenant.email, "password": tenant.password,
                                         "workspace": tenant.slug, "csrf_token": csrf})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return c


def _csrf(c: FlaskClient, url: str) -> str:
    page = c.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_studio_users_list_filters_and_detail(app, client, tenant_a, tenant_b):
    user_id, _ = _user_token(client, tenant_a, "pia@example.com")
    other_id, _ = _user_token(client, tenant_b, "quin@example.com")
    studio = studio_client(app, tenant_a)

    page = studio.get("/studio/m/users/users").get_data(as_text=True)
    assert "pia@example.com" in page and "quin@example.com" not in page
    assert 'data-kpi="total">2<' in page
    filtered = studio.get("/studio/m/users/users?q=nobody").get_data(as_text=True)
    assert "No users match these filters" in filtered
    partial = studio.get("/studio/m/users/users?status=active",
                         headers={"HX-Request": "true", "HX-Target": "users-results"})
    assert "<html" not in partial.get_data(as_text=True)

    detail = studio.get(f"/studio/m/users/users/{user_id}").get_data(as_text=True)
    assert "pia@example.com" in detail and "Revoke all" in detail and "Disable user" in detail
    assert studio.get(f"/studio/m/users/users/{other_id}").status_code == 404


def test_studio_disable_and_revoke_go_through_actions(app, client, tenant_a):
    user_id, token = _user_token(client, tenant_a, "ray@example.com")
    studio = studio_client(app, tenant_a)
    url = f"/studio/m/users/users/{user_id}"

    resp = studio.post(f"{url}/sessions/revoke-all", data={"csrf_token": _csrf(studio, url)})
    assert resp.status_code == 302
    assert me_status(client, tenant_a, token) == 401
    token = token_of(login(client, tenant_a, "ray@example.com"))

    resp = studio.post(f"{url}/disable", data={"csrf_token": _csrf(studio, url)},
                       follow_redirects=True)
    assert "User disabled" in resp.get_data(as_text=True)
    assert me_status(client, tenant_a, token) == 401
    settle(app)
    runs = rows(app, ActionRun, ActionRun.action_name == "users.user.disable")
    assert [r.trigger_type for r in runs] == ["studio"]
    (entry,) = audit_entries(app, "users.user.disable")
    assert entry.run_id == runs[0].id

    resp = studio.post(f"{url}/enable", data={"csrf_token": _csrf(studio, url)},
                       follow_redirects=True)
    assert "User enabled" in resp.get_data(as_text=True)
    # errors are flashed, not raised
    admin_id = rows(app, User, User.email == tenant_a.email)[0].id
    admin_url = f"/studio/m/users/users/{admin_id}"
    resp = studio.post(f"{admin_url}/disable", data={"csrf_token": _csrf(studio, admin_url)},
                       follow_redirects=True)
    assert "cannot disable or enable your own account" in resp.get_data(as_text=True)


# -- the pages behind the mail links ---------------------------------------------------
def _page_csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_the_verification_link_opens_a_page_that_confirms_on_the_button(app, client, tenant_a, mailbox):
    user_id = signup(client, tenant_a, "vic@example.com").json["data"]["userId"]
    deliver_mail(app)
    code = code_from(mailbox, "vic@example.com", "Verification")
    browser = app.test_client()
    page = browser.get(f"/verify-email/{code}")
    assert page.status_code == 200 and "Confirm vic@example.com" in page.get_data(as_text=True)
    (user,) = rows(app, User, User.id == user_id)
    assert user.email_verified_at is None  # opening the link (a mail scanner) changes nothing
    done = browser.post(f"/verify-email/{code}", data={"csrf_token": _page_csrf(page.get_data(as_text=True))})
    assert 'data-result="verified"' in done.get_data(as_text=True)
    (user,) = rows(app, User, User.id == user_id)
    assert user.email_verified_at is not None
    again = browser.get(f"/verify-email/{code}").get_data(as_text=True)
    assert 'data-result="invalid"' in again  # single use
    assert browser.get("/verify-email/bbv_" + "x" * 43).status_code == 404
    # a reset token does not open the verification page
    client.post("/v1/users/password/reset-request", json={"email": "vic@example.com"},
                headers={"X-Tenant-Id": tenant_a.slug})
    deliver_mail(app)
    assert browser.get(f"/verify-email/{code_from(mailbox, 'vic@example.com', 'Reset')}").status_code == 404


def test_the_reset_link_opens_a_page_that_sets_the_new_password(app, client, tenant_a, mailbox):
    signup(client, tenant_a, "rex@example.com")
    client.post("/v1/users/password/reset-request", json={"email": "rex@example.com"},
                headers={"X-Tenant-Id": tenant_a.slug})
    deliver_mail(app)
    code = code_from(mailbox, "rex@example.com", "Reset")
    browser = app.test_client()
    page = browser.get(f"/reset-password/{code}").get_data(as_text=True)
    assert 'data-testid="reset-form"' in page and "rex@example.com" in page
    csrf = _page_csrf(page)
    differ = browser.post(f"/reset-password/{code}", data={
        "csrf_token": csrf, "password": "a new passphrase", "confirm": "another one!"}).get_data(as_text=True)
    assert "The two passwords differ." in differ
    short = browser.post(f"/reset-password/{code}", data={
        "csrf_token": csrf, "password": "short", "confirm": "short"}).get_data(as_text=True)
    assert "newPassword" in short and 'data-testid="reset-form"' in short  # typed error, token kept
    assert login(client, tenant_a, "rex@example.com").status_code == 200  # nothing changed yet
    done = browser.post(f"/reset-password/{code}", data={
        "csrf_token": csrf, "password": "a new passphrase", "confirm": "a new passphrase"})
    assert 'data-result="reset"' in done.get_data(as_text=True)
    assert login(client, tenant_a, "rex@example.com").status_code == 401
    assert login(client, tenant_a, "rex@example.com", "a new passphrase").status_code == 200
    assert 'data-result="invalid"' in browser.get(f"/reset-password/{code}").get_data(as_text=True)
