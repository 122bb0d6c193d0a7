"""Every door to an account answers alike (issue 11, findings 6 and 7).

The API, Studio and the public invitation page share one sign-in check (`bunbase.signin`):
one lock-out (failures at any door count at every door, the right password is refused
while locked), one answer for an unknown email, a wrong password or a disabled account,
and the same work (one password verification) whatever the case. Studio no longer says
"this email is in several workspaces" for any password; sign-up no longer says "already
registered" (the owner is mailed instead).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bunbase import identity, throttle
from bunbase.db import db
from bunbase.models import User
from bunbase.tenancy import tenant_scope
from bunbase.testing import settle
from tests.actors import PASSWORD, add_user
from tests.fixtures import Tenant
from tests.helpers import assert_failure, assert_success
from tests.test_users import PASSWORD as USER_PASSWORD
from tests.test_users import deliver_mail, signup

WRONG = "wrong horse battery staple"


def _csrf(c: FlaskClient, url: str) -> str:
    page = c.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def api_login(app: Flask, tenant: Tenant, email: str, password: str, ip: str = "10.1.0.1") -> Any:
    return app.test_client().post("/v1/auth/login", json={"email": email, "password": password},
                                  headers={"X-Tenant-Id": tenant.slug},
                                  environ_overrides={"REMOTE_ADDR": ip})


def studio_login(app: Flask, email: str, password: str, workspace: str = "", ip: str = "10.2.0.1") -> str:
    c = app.test_client()
    resp = c.post("/studio/login", data={"email": email, "password": password, "workspace": workspace,
                                         "csrf_token": _csrf(c, "/studio/login")},
                  environ_overrides={"REMOTE_ADDR": ip})
    if resp.status_code == 302:
        return "signed in"
    text = resp.get_data(as_text=True)
    return re.search(r'role="alert">.*?<div>(.*?)</div>', text, re.S).group(1).strip()


@pytest.fixture
def invited(app: Flask, tenant_a: Tenant, mailbox: Any) -> Iterator[tuple[str, str]]:
    """An invitation of tenant a for iris@example.com, who already has an account there."""
    add_user(app, tenant_a.id, "iris@example.com", "Iris")
    resp = app.test_client().post(f"/v1/orgs/{tenant_a.org_id}/invitations",
                                  json={"email": "iris@example.com"}, headers=tenant_a.headers())
    assert resp.status_code == 200, resp.get_json()
    deliver_mail(app)
    yield "iris@example.com", mailbox.last_token("iris@example.com")


def invite_sign_in(app: Flask, token: str, password: str, ip: str = "10.3.0.1") -> str:
    c = app.test_client()
    url = f"/invite/{token}"
    resp = c.post(url, data={"op": "accept", "password": password, "csrf_token": _csrf(c, url)},
                  environ_overrides={"REMOTE_ADDR": ip})
    return resp.get_data(as_text=True)


# -- finding 6: one lock-out for every door --------------------------------------------------
def test_wrong_passwords_on_the_invitation_page_lock_the_account_everywhere(app, tenant_a, invited):
    email, token = invited
    for _ in range(5):
        assert "Email or password is incorrect." in invite_sign_in(app, token, WRONG)
    assert throttle.failures(tenant_a.id, email) == 5
    # now the right password is refused on the page, in the API and in Studio alike
    assert "Too many failed sign-ins" in invite_sign_in(app, token, PASSWORD)
    assert_failure(api_login(app, tenant_a, email, PASSWORD), 429, "rate_limited")
    assert "You joined" not in invite_sign_in(app, token, PASSWORD)


def test_api_failures_lock_the_invitation_page(app, tenant_a, invited):
    email, token = invited
    for _ in range(5):
        assert_failure(api_login(app, tenant_a, email, WRONG), 401, "unauthenticated")
    page = invite_sign_in(app, token, PASSWORD)
    assert "Too many failed sign-ins" in page
    from modules.rbac.models import Membership

    with app.app_context(), tenant_scope(tenant_a.id):
        assert db.session.query(Membership).filter_by(org_id=tenant_a.org_id).count() == 1  # only the admin
        db.session.remove()


def test_the_right_password_on_the_invitation_page_accepts(app, tenant_a, invited):
    _email, token = invited
    page = invite_sign_in(app, token, PASSWORD)
    assert "Email or password is incorrect" not in page and "Too many" not in page
    assert "accepted" in page.lower() or "joined" in page.lower(), page[:2000]


def test_failures_are_audited_at_every_door(app, tenant_a, invited):
    from bunbase.models import AuditEntry
    from tests.helpers import rows

    email, token = invited
    invite_sign_in(app, token, WRONG)
    api_login(app, tenant_a, email, WRONG)
    studio_login(app, email, WRONG, workspace=tenant_a.slug)
    settle(app)
    failed = rows(app, AuditEntry, AuditEntry.action == "auth.session.login_failed")
    assert sorted(e.diff["via"] for e in failed) == ["api", "invitation", "studio"]
    assert all(e.tenant_id == tenant_a.id and e.decision == "denied: wrong password" for e in failed)


# -- finding 7: the same answer for existing and unknown ---------------------------------------
@pytest.fixture
def twins(app: Flask, tenant_a: Tenant, tenant_b: Tenant) -> str:
    """One email with a Studio account in two workspaces."""
    for t in (tenant_a, tenant_b):
        user_id = add_user(app, t.id, "twin@example.com", "Twin")
        with app.app_context(), tenant_scope(t.id):
            db.session.get(User, user_id).is_tenant_admin = True
            db.session.commit()
            db.session.remove()
    return "twin@example.com"


def test_studio_answers_alike_for_unknown_ambiguous_and_wrong(app, tenant_a, twins):
    answers = {
        studio_login(app, "nobody@example.com", WRONG),
        studio_login(app, twins, WRONG),
        studio_login(app, twins, PASSWORD),  # even the right password: which workspace?
        studio_login(app, tenant_a.email, WRONG),
        studio_login(app, twins, PASSWORD, workspace="no-such-workspace"),
    }
    assert len(answers) == 1, answers
    assert "Email or password is incorrect" in answers.pop()
    assert studio_login(app, twins, PASSWORD, workspace=tenant_a.slug) == "signed in"


def test_studio_counts_ambiguous_attempts(app, twins, tenant_a):
    for i in range(5):  # counted against the email with no workspace, and the address
        assert "Email or password" in studio_login(app, twins, f"guess {i}", ip="10.4.0.1")
    assert throttle.failures("-", twins) == 5
    assert "Too many failed sign-ins" in studio_login(app, twins, PASSWORD, ip="10.4.0.2")
    # naming the workspace is another account: not locked by guesses made without it
    assert studio_login(app, twins, PASSWORD, workspace=tenant_a.slug, ip="10.4.0.3") == "signed in"


class _Counting:
    """The real Argon2 hasher, counting its calls (what a timing attacker would measure)."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if name not in {"hash", "verify"}:
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return attr(*args, **kwargs)

        return counted


@pytest.fixture
def argon(monkeypatch) -> _Counting:
    counting = _Counting(identity._hasher)
    monkeypatch.setattr(identity, "_hasher", counting)
    return counting


def _work(argon: _Counting, call: Any) -> int:
    before = argon.calls
    call()
    return argon.calls - before


def test_every_sign_in_costs_one_password_check(app, tenant_a, twins, argon):
    costs = {
        "api unknown": _work(argon, lambda: api_login(app, tenant_a, "nobody@example.com", WRONG)),
        "api wrong": _work(argon, lambda: api_login(app, tenant_a, tenant_a.email, WRONG)),
        "studio unknown": _work(argon, lambda: studio_login(app, "nobody@example.com", WRONG)),
        "studio several": _work(argon, lambda: studio_login(app, twins, WRONG)),
        "studio wrong": _work(argon, lambda: studio_login(app, tenant_a.email, WRONG)),
    }
    assert set(costs.values()) == {1}, costs


def test_signup_of_a_registered_email_answers_the_same_and_mails_its_owner(app, client, tenant_a,
                                                                           mailbox, argon):
    new = _work(argon, lambda: assert_success(signup(client, tenant_a, "new@example.com")))
    deliver_mail(app)
    mailbox.clear()
    responses = []
    taken = _work(argon, lambda: responses.append(signup(client, tenant_a, "NEW@example.com")))
    assert new == taken == 1  # one hash each
    body = assert_success(responses[0])
    assert set(body["data"]) == {"userId", "email"} and body["data"]["email"] == "new@example.com"
    deliver_mail(app)
    (notice,) = mailbox.to("new@example.com")
    assert notice["X-Bunbase-Kind"] == "signup_existing"
    assert "already has one" in notice.get_content()
    # the account is untouched: its password still works
    assert api_login(app, tenant_a, "new@example.com", USER_PASSWORD).status_code == 200
    # a second try within the hour mails nobody again
    signup(client, tenant_a, "new@example.com")
    deliver_mail(app)
    assert len(mailbox.to("new@example.com")) == 1


def test_the_invitation_pages_sign_up_never_opens_an_existing_account(app, tenant_a, invited):
    _email, token = invited
    c = app.test_client()
    url = f"/invite/{token}"
    page = c.post(url, data={"op": "signup", "password": "a brand new password", "name": "Not Iris",
                             "csrf_token": _csrf(c, url)}).get_data(as_text=True)
    assert "already exists: sign in to accept" in page
    assert invite_sign_in(app, token, "a brand new password").count("Email or password is incorrect") == 1


def test_studio_tells_a_non_administrator_only_after_the_right_password(app, tenant_a):
    add_user(app, tenant_a.id, "plain@example.com", "Plain")
    assert "Email or password is incorrect" in studio_login(app, "plain@example.com", WRONG)
    assert studio_login(app, "plain@example.com", PASSWORD) == "This account cannot use Studio."


def test_three_studio_failures_and_two_api_failures_make_one_lockout(app, tenant_a):
    """Issue 12's acceptance: the doors count toward one lock-out, each failure audited."""
    from bunbase.models import AuditEntry
    from tests.helpers import rows

    for _ in range(3):
        assert "Email or password is incorrect" in studio_login(app, tenant_a.email, WRONG,
                                                                workspace=tenant_a.slug)
    for _ in range(2):
        assert_failure(api_login(app, tenant_a, tenant_a.email, WRONG), 401, "unauthenticated")
    assert throttle.failures(tenant_a.id, tenant_a.email) == 5
    assert_failure(api_login(app, tenant_a, tenant_a.email, tenant_a.password), 429, "rate_limited")
    assert "Too many failed sign-ins" in studio_login(app, tenant_a.email, tenant_a.password,
                                                      workspace=tenant_a.slug)
    settle(app)
    failed = rows(app, AuditEntry, AuditEntry.action == "auth.session.login_failed")
    assert sorted(e.diff["via"] for e in failed) == ["api", "api", "studio", "studio", "studio"]
    blocked = rows(app, AuditEntry, AuditEntry.action == "auth.session.login_blocked")
    assert sorted(e.diff["via"] for e in blocked) == ["api", "studio"]
