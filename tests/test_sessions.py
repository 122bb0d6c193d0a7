"""The caller's own sessions (/v1/auth/sessions), session rotation, and the brute-force
limits on password sign-in (per account and per IP, failed attempts only, in Redis)."""

from __future__ import annotations

import re

from bunbase import throttle
from bunbase.clock import clock
from bunbase.models import AuthSession
from bunbase.testing import settle
from tests.helpers import assert_failure, assert_success, rows
from tests.test_users import (
    PASSWORD,
    audit_entries,
    bearer,
    login,
    me_status,
    signup,
    studio_client,
    token_of,
)

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def _sessions(client, tenant, token):
    body = assert_success(client.get("/v1/auth/sessions", headers=bearer(tenant, token)))
    return body["data"]["items"]


# -- listing and revoking your own sessions ------------------------------------------
def test_session_list_shows_device_ip_times_and_current(client, tenant_a):
    signup(client, tenant_a, "sam@example.com")
    laptop = token_of(login(client, tenant_a, "sam@example.com", ip="10.0.0.1", agent=FIREFOX))
    phone = token_of(login(client, tenant_a, "sam@example.com", ip="10.0.0.2", agent=SAFARI))
    assert laptop != phone  # a new token and a new session on every sign-in

    items = _sessions(client, tenant_a, laptop)
    assert len(items) == 2
    by_ip = {s["ip"]: s for s in items}
    assert by_ip["10.0.0.1"]["device"] == "Firefox on Linux"
    assert by_ip["10.0.0.1"]["current"] is True and by_ip["10.0.0.2"]["current"] is False
    assert by_ip["10.0.0.2"]["device"] == "Safari on iOS"
    assert by_ip["10.0.0.2"]["userAgent"] == SAFARI
    for s in items:
        assert set(s) == {"sessionId", "kind", "device", "userAgent", "ip", "createdAt",
                          "lastSeenAt", "expiresAt", "current"}
        assert s["kind"] == "api" and s["createdAt"].endswith("Z")
    # the admin's own session is not among them
    assert len(_sessions(client, tenant_a, tenant_a.token)) == 1


def test_revoke_one_of_your_sessions_and_nobody_elses(app, client, tenant_a, tenant_b):
    signup(client, tenant_a, "tia@example.com")
    one = token_of(login(client, tenant_a, "tia@example.com", agent="one"))
    two = token_of(login(client, tenant_a, "tia@example.com", agent="two"))
    two_id = next(s["sessionId"] for s in _sessions(client, tenant_a, one) if not s["current"])

    resp = client.post(f"/v1/auth/sessions/{two_id}/revoke", headers=bearer(tenant_a, one))
    assert assert_success(resp)["data"] == {"sessionId": two_id, "revoked": True}
    assert me_status(client, tenant_a, two) == 401 and me_status(client, tenant_a, one) == 200
    (entry,) = audit_entries(app, "auth.session.revoke")
    assert entry.target_id == two_id and entry.diff["after"]["revoked"] is True

    # the admin's session, in the same tenant, is someone else's: 404
    admin_id = _sessions(client, tenant_a, tenant_a.token)[0]["sessionId"]
    resp = client.post(f"/v1/auth/sessions/{admin_id}/revoke", headers=bearer(tenant_a, one))
    assert_failure(resp, 404, "not_found")
    # and so is another tenant's session, or one that does not exist
    other_id = _sessions(client, tenant_b, tenant_b.token)[0]["sessionId"]
    for sid in (other_id, "ses_nope"):
        resp = client.post(f"/v1/auth/sessions/{sid}/revoke", headers=bearer(tenant_a, one))
        assert_failure(resp, 404, "not_found")
    assert me_status(client, tenant_a, tenant_a.token) == 200
    assert me_status(client, tenant_b, tenant_b.token) == 200
    assert_failure(client.get("/v1/auth/sessions", headers={"X-Tenant-Id": tenant_a.id}), 401,
                   "unauthenticated")


def test_revoke_all_optionally_keeps_the_current_session(client, tenant_a):
    signup(client, tenant_a, "uma@example.com")
    tokens = [token_of(login(client, tenant_a, "uma@example.com", agent=f"d{i}"))
              for i in range(3)]
    resp = client.post("/v1/auth/sessions/revoke-all", json={"keepCurrent": True},
                       headers=bearer(tenant_a, tokens[0]))
    data = assert_success(resp)["data"]
    assert data["revoked"] == 2 and data["keptSessionId"]
    assert [me_status(client, tenant_a, t) for t in tokens] == [200, 401, 401]
    assert [s["current"] for s in _sessions(client, tenant_a, tokens[0])] == [True]

    resp = client.post("/v1/auth/sessions/revoke-all", headers=bearer(tenant_a, tokens[0]))
    assert assert_success(resp)["data"] == {"revoked": 1, "keptSessionId": None}
    assert me_status(client, tenant_a, tokens[0]) == 401
    # the admin was not touched
    assert me_status(client, tenant_a, tenant_a.token) == 200


def test_expired_sessions_are_not_listed(client, tenant_a):
    signup(client, tenant_a, "vic@example.com")
    old = token_of(login(client, tenant_a, "vic@example.com", agent="old"))
    clock.advance("167h")
    new = token_of(login(client, tenant_a, "vic@example.com", agent="new"))
    assert len(_sessions(client, tenant_a, new)) == 2
    clock.advance("2h")
    assert me_status(client, tenant_a, old) == 401
    assert len(_sessions(client, tenant_a, new)) == 1


def test_studio_sign_in_rotates_the_session(app, tenant_a):
    first = studio_client(app, tenant_a)
    second = studio_client(app, tenant_a)
    studio_sessions = rows(app, AuthSession, AuthSession.kind == "studio")
    assert len({s.id for s in studio_sessions}) == 2
    assert len({s.token_hash for s in studio_sessions}) == 2
    # each browser holds its own session; signing one out leaves the other
    page = first.get("/studio/m/users/users").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    first.post("/studio/logout", data={"csrf_token": csrf})
    assert first.get("/studio/m/users/users").status_code == 302
    assert second.get("/studio/m/users/users").status_code == 200


def test_signing_in_again_in_the_same_browser_rotates_the_cookie_session(app, tenant_a):
    """No fixation: whatever the cookie carried before sign-in is dropped, and each sign-in
    in the same browser gets a new server-side session and a new token in the cookie."""
    settle(app)
    browser = app.test_client()

    def sign_in() -> str:
        # signed in, the login page redirects to Studio; its pages carry the CSRF token too
        page = browser.get("/studio/login", follow_redirects=True).get_data(as_text=True)
        csrf = re.search(r'name="csrf[-_]token" (?:value|content)="([^"]+)"', page).group(1)
        resp = browser.post("/studio/login", data={"email": tenant_a.email, "password": tenant_a.password,
                                                   "workspace": tenant_a.slug, "csrf_token": csrf})
        assert resp.status_code == 302, resp.get_data(as_text=True)
        with browser.session_transaction() as cookie:
            assert "planted" not in cookie
            return str(cookie["_user_id"])

    with browser.session_transaction() as cookie:
        cookie["planted"] = "by an attacker"
        cookie["_user_id"] = "bbs_planted-token"
    first = sign_in()
    with browser.session_transaction() as cookie:
        cookie["planted"] = "again"
    second = sign_in()
    assert first != second and "bbs_planted-token" not in (first, second)
    studio_sessions = rows(app, AuthSession, AuthSession.kind == "studio")
    assert len({s.id for s in studio_sessions}) == 2
    # the session the browser had before is over, not left valid until it expires
    assert sorted(s.revoked_at is None for s in studio_sessions) == [False, True]
    assert browser.get("/studio/m/users/users").status_code == 200
    # the API hands out a new token and session on every sign-in too
    client = app.test_client()
    tokens = {token_of(login(client, tenant_a, tenant_a.email, password=tenant_a.password))
              for _ in range(2)}
    assert len(tokens) == 2


# -- brute-force limits --------------------------------------------------------------
def test_account_locks_after_five_failures_even_with_the_right_password(app, client, tenant_a):
    user_id = signup(client, tenant_a, "wes@example.com").json["data"]["userId"]
    for i in range(5):
        resp = login(client, tenant_a, "wes@example.com", "wrong password", ip=f"10.9.0.{i}")
        assert_failure(resp, 401, "unauthenticated")
    assert throttle.failures(tenant_a.id, "wes@example.com") == 5

    locked = login(client, tenant_a, "wes@example.com", ip="10.9.1.1")
    body = assert_failure(locked, 429, "rate_limited")
    retry = int(locked.headers["Retry-After"])
    assert 890 <= retry <= 900 and body["error"]["details"]["retryAfter"] == retry
    # the lock is for that email in that tenant only
    assert login(client, tenant_a, tenant_a.email, tenant_a.password,
                 ip="10.9.1.1").status_code == 200

    clock.advance("14m")
    assert login(client, tenant_a, "wes@example.com", ip="10.9.1.1").status_code == 429
    clock.advance("61s")
    assert token_of(login(client, tenant_a, "wes@example.com", ip="10.9.1.1"))
    assert throttle.failures(tenant_a.id, "wes@example.com") == 0

    # failures and the lock-out are audited, outside the rolled-back transaction
    failed = audit_entries(app, "auth.session.login_failed")
    assert len(failed) == 5 and {e.target_id for e in failed} == {user_id}
    assert all(e.decision == "denied: wrong password" and e.ip for e in failed)
    assert "wrong password" not in str([e.diff for e in failed])
    blocked = audit_entries(app, "auth.session.login_blocked")
    assert len(blocked) == 2  # the two refused attempts, with the right password
    assert all(e.diff == {"email": "wes@example.com", "via": "api", "scope": "account"} for e in blocked)


def test_a_successful_sign_in_clears_the_account_counter(client, tenant_a):
    signup(client, tenant_a, "xan@example.com")
    for _ in range(2):
        for _ in range(4):
            assert login(client, tenant_a, "xan@example.com", "nope nope",
                         ip="10.8.0.1").status_code == 401
        assert login(client, tenant_a, "xan@example.com", ip="10.8.0.1").status_code == 200
        assert throttle.failures(tenant_a.id, "xan@example.com") == 0


def test_the_account_lock_is_per_tenant_and_counts_unknown_emails(client, tenant_a, tenant_b):
    signup(client, tenant_b, "yul@example.com")
    for _ in range(5):  # no such user in tenant a: still failures for that email there
        assert login(client, tenant_a, "yul@example.com", ip="10.7.0.1").status_code == 401
    assert login(client, tenant_a, "yul@example.com", ip="10.7.0.2").status_code == 429
    assert login(client, tenant_b, "yul@example.com", ip="10.7.0.3").status_code == 200


def test_ip_is_blocked_after_twenty_failures_across_accounts(app, client, tenant_a):
    signup(client, tenant_a, "zed@example.com")
    for i in range(20):
        resp = login(client, tenant_a, f"guess{i % 4}@example.com", "whatever", ip="10.6.6.6")
        assert resp.status_code == 401, (i, resp.json)
    blocked = login(client, tenant_a, "zed@example.com", ip="10.6.6.6")
    assert_failure(blocked, 429, "rate_limited")
    assert int(blocked.headers["Retry-After"]) > 60  # the failure window, not the flood guard
    # the same account from another address is fine, and the account itself is not locked
    assert login(client, tenant_a, "zed@example.com", ip="10.6.6.7").status_code == 200
    (entry,) = audit_entries(app, "auth.session.login_blocked")
    assert entry.diff["scope"] == "ip" and entry.ip == "10.6.6.6"
    clock.advance("15m1s")
    assert login(client, tenant_a, "zed@example.com", ip="10.6.6.6").status_code == 200


def test_successes_do_not_count_towards_the_ip_limit(client, tenant_a):
    signup(client, tenant_a, "amy@example.com")
    for _ in range(10):
        assert login(client, tenant_a, "amy@example.com", ip="10.5.5.5").status_code == 200
    for i in range(19):  # distinct emails, so no account locks: 19 failures for this IP
        assert login(client, tenant_a, f"n{i}@example.com", "x", ip="10.5.5.5").status_code == 401
    # 29 attempts, 19 of them failed: still under 20 failures
    assert login(client, tenant_a, "amy@example.com", ip="10.5.5.5").status_code == 200


def test_password_reset_unlocks_the_account(app, client, tenant_a, mailbox):
    from tests.test_users import code_from, deliver_mail

    signup(client, tenant_a, "bea@example.com")
    for _ in range(5):
        login(client, tenant_a, "bea@example.com", "bad guess!", ip="10.4.0.1")
    assert login(client, tenant_a, "bea@example.com", ip="10.4.0.2").status_code == 429
    client.post("/v1/users/password/reset-request", json={"email": "bea@example.com"},
                headers={"X-Tenant-Id": tenant_a.slug})
    deliver_mail(app)
    code = code_from(mailbox, "bea@example.com", "Reset")
    assert_success(client.post("/v1/users/password/reset",
                               json={"token": code, "newPassword": "fresh passphrase"},
                               headers={"X-Tenant-Id": tenant_a.slug}))
    assert login(client, tenant_a, "bea@example.com", "fresh passphrase",
                 ip="10.4.0.2").status_code == 200


def test_disabled_user_cannot_sign_in_and_its_sessions_stop(client, tenant_a):
    user_id = signup(client, tenant_a, "cal@example.com").json["data"]["userId"]
    token = token_of(login(client, tenant_a, "cal@example.com"))
    assert me_status(client, tenant_a, token) == 200
    assert_success(client.post(f"/v1/users/{user_id}/disable", headers=tenant_a.headers()))
    assert me_status(client, tenant_a, token) == 401
    assert_failure(client.get("/v1/auth/sessions", headers=bearer(tenant_a, token)), 401,
                   "unauthenticated")
    assert_failure(login(client, tenant_a, "cal@example.com", PASSWORD, ip="10.3.0.1"), 401,
                   "unauthenticated")
