"""Response headers and cookie settings that make a slip in a page harmless.

Every response gets `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, a
`Referrer-Policy` and a `Content-Security-Policy`. HTML pages get a policy whose scripts
must carry the nonce minted for that response (`csp_nonce()` in templates): an injected
`<script>`, an inline event handler (`onfocus=...`) or a `javascript:` URL does not run,
whatever a template prints. Everything else (JSON, files) gets `default-src 'none'`.
Over HTTPS (`BUNBASE_PUBLIC_URL` starting with https, or `BUNBASE_SECURE_COOKIES=1`) the
session and remember-me cookies are `Secure` and responses carry HSTS.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, Response, g

#: the policy of an HTML page; `{nonce}` is this response's script nonce. Styles may still
#: be inline (style attributes in templates); scripts may not.
HTML_POLICY = (
    "default-src 'self'; "
    "script-src 'nonce-{nonce}'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; "
    "font-src 'self'; "
    "connect-src 'self'; "
    "object-src 'none'; "
    "base-uri 'none'; "
    "form-action 'self'; "
    "frame-ancestors 'none'"
)
#: anything that is not HTML (the JSON API, static files): nothing may run or embed it
OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=31536000; includeSubDomains"


def csp_nonce() -> str:
    """This response's script nonce (made on first use)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return str(g.csp_nonce)


def secure_headers(resp: Response) -> Response:
    for name, value in HEADERS.items():
        resp.headers.setdefault(name, value)
    if "Content-Security-Policy" not in resp.headers:
        if resp.mimetype == "text/html":
            resp.headers["Content-Security-Policy"] = HTML_POLICY.format(nonce=csp_nonce())
        else:
            resp.headers["Content-Security-Policy"] = OTHER_POLICY
    return resp


def _hsts(resp: Response) -> Response:
    resp.headers.setdefault("Strict-Transport-Security", HSTS)
    return resp


def cookie_config(secure: bool) -> dict[str, Any]:
    """Flask's and Flask-Login's cookie settings. Set outright, not `setdefault`: Flask
    defines these keys (as None / False), so a default would never apply."""
    return {
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": secure,
    }


def init_app(app: Flask, *, secure: bool) -> None:
    app.config.update(cookie_config(secure))
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.after_request(secure_headers)
    if secure:
        app.after_request(_hsts)
