"""Response headers and cookie flags (issue 11, finding 9): every response of every kind."""

from __future__ import annotations

import re

from flask import Flask, session

from bunbase import security
from bunbase.config import Settings

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def _policy(resp) -> dict[str, str]:
    header = resp.headers["Content-Security-Policy"]
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] if " " in d else "" for d in header.split("; ")}


def _assert_common(resp) -> None:
    for name, value in COMMON.items():
        assert resp.headers.get(name) == value, (resp.request.path, name, resp.headers.get(name))


def test_html_pages_get_a_nonce_policy_without_unsafe_inline_scripts(client):
    resp = client.get("/studio/login")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    _assert_common(resp)
    policy = _policy(resp)
    script = policy["script-src"]
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script and "*" not in script
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{16,})'", script).group(1)
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'self'"
    page = resp.get_data(as_text=True)
    tags = re.findall(r"<script\b[^>]*>", page)
    assert tags and all(f'nonce="{nonce}"' in t for t in tags), tags
    assert not re.search(r"\son[a-z]+=", page), "an inline event handler in the sign-in page"
    # a fresh nonce for every response
    assert _policy(client.get("/studio/login"))["script-src"] != script


def test_json_static_and_error_responses_get_a_deny_all_policy(client):
    for resp in (
        client.get("/v1/system/health"),
        client.get("/v1/no/such/route"),
        client.get("/static/js/studio.js"),
        client.get("/v1/openapi.json"),
    ):
        _assert_common(resp)
        policy = _policy(resp)
        assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'", resp.request.path
        resp.close()


def test_the_studio_session_cookie_is_httponly_and_samesite_lax(app, tenant_a):
    c = app.test_client()
    page = c.get("/studio/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = c.post(
        "/studio/login",
        data={"email": tenant_a.email, "password": tenant_a.password, "csrf_token": csrf},
    )
    assert resp.status_code == 302
    cookie = next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith("session="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert "httponly" in flags and "samesite=lax" in cookie.lower()
    assert "secure" not in flags  # plain http in the tests; see the https test below
    assert "Strict-Transport-Security" not in resp.headers


def test_over_https_cookies_are_secure_and_hsts_is_sent():
    assert Settings(BUNBASE_PUBLIC_URL="https://studio.example.com").https
    assert not Settings(BUNBASE_PUBLIC_URL="http://127.0.0.1:5000").https
    assert Settings(BUNBASE_PUBLIC_URL="http://x", BUNBASE_SECURE_COOKIES="1").https

    app = Flask(__name__)
    app.config["SECRET_KEY"] = "k"
    security.init_app(app, secure=True)

    @app.get("/set")
    def _set() -> str:
        session["x"] = 1
        return "ok"

    resp = app.test_client().get("/set", base_url="https://studio.example.com")
    cookie = resp.headers["Set-Cookie"].lower()
    assert "; secure" in cookie and "; httponly" in cookie and "samesite=lax" in cookie
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
