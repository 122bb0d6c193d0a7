"""Studio's redirects stay on this site (issue 11, finding 13): sign-in lands on the page
that was asked for (`next=`), and neither it nor the workspace switch goes to another host."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from tests.fixtures import Tenant

EVIL = ["https://evil.example/studio/", "//evil.example/studio/", "/\\evil.example/studio",
        "/\\/evil.example", "javascript:alert(1)", "http:/studio/", "/v1/system/health"]


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _sign_in(c: FlaskClient, t: Tenant, next_url: str | None) -> str:
    path = "/studio/login" + (f"?next={next_url}" if next_url is not None else "")
    page = c.get(path).get_data(as_text=True)
    resp = c.post(path, data={"email": t.email, "password": t.password, "csrf_token": _csrf(page)})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    return resp.headers["Location"]


def test_an_unsigned_visit_comes_back_to_its_page_after_sign_in(app, tenant_a):
    c = app.test_client()
    bounce = c.get("/studio/m/runtime/jobs?status=dead")
    assert bounce.status_code == 302
    login_url = bounce.headers["Location"]
    assert "next=" in login_url
    page = c.get(login_url).get_data(as_text=True)
    assert 'name="next" value="/studio/m/runtime/jobs?status=dead"' in page
    resp = c.post(login_url, data={"email": tenant_a.email, "password": tenant_a.password,
                                   "csrf_token": _csrf(page)})
    assert resp.headers["Location"] == "/studio/m/runtime/jobs?status=dead"


@pytest.mark.parametrize("target", EVIL)
def test_sign_in_never_redirects_off_site(app, tenant_a, target):
    assert _sign_in(app.test_client(), tenant_a, target) == "/studio/"


def test_the_workspace_switch_returns_to_the_page_and_only_on_this_site(app, operator_client):
    c, other_tenant_id, page = operator_client
    for target, expected in [("/studio/m/users/users?q=x", "/studio/m/users/users?q=x"),
                             ("/studio/\r\nLocation: https://evil.example", "/studio/"),
                             *((evil, "/studio/") for evil in EVIL)]:
        resp = c.post("/studio/tenant", data={"tenant_id": other_tenant_id, "next": target,
                                              "csrf_token": _csrf(page)},
                      headers={"Referer": "https://evil.example/studio/"})
        assert resp.status_code == 302 and resp.headers["Location"] == expected, (target, resp.headers)


@pytest.fixture
def operator_client(app):
    from bunbase.db import db
    from bunbase.seed import create_tenant

    with app.app_context():
        create_tenant("ops", "Ops", admin_email="op@ops.test", admin_password="op-pass-123",
                            operator=True)
        other = create_tenant("other", "Other", admin_email="a@other.test", admin_password="x-pass-123")
        db.session.remove()
    c = app.test_client()
    page = c.get("/studio/login").get_data(as_text=True)
    resp = c.post("/studio/login", data={"email": "op@ops.test", "password": "op-pass-123",
                                         "csrf_token": _csrf(page)})
    assert resp.status_code == 302
    page = c.get("/studio/").get_data(as_text=True)
    assert 'name="next" value="/studio/"' in page  # the switcher posts where it is
    return c, other.tenant_id, page
