"""Stored and reflected XSS across Studio (issue 11, finding 1).

Someone who is not an operator plants an XSS corpus in every field a user or member
controls — a sign-up name (no sign-in needed), a session's user agent, a ticket an ordinary
member opens (and so the `ticket.created` event and the run records), an org and its
rename (an audit diff), a role, an API key and a service account, a job's payload, result,
error and idempotency key, a workflow's input — then the operator crawls every Studio page
in Chromium. No dialog may fire, and no page may carry an inline event handler, a
`javascript:` URL or a script without this response's nonce.

The crawl runs with the browser's CSP switched off (`bypass_csp`), so it tests the escaping
on its own; `test_the_policy_stops_a_slip` shows the policy stops what an escaping slip
would let through.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask
from playwright.sync_api import Browser, Page
from werkzeug.exceptions import HTTPException

from bunbase import Contract
from bunbase.context import Context
from bunbase.jobs import PermanentError, job
from bunbase.workflows import workflow
from e2e.conftest import sign_in
from tests.actors import bind

CORPUS = [
    "x autofocus tabindex=1 onfocus=alert('xss-1') y",
    '"><img src=x onerror=alert("xss-2")>',
    "'><svg onload=alert('xss-3')>",
    '</textarea></pre></title><script>alert("xss-4")</script>',
    "\" autofocus onfocus=\"alert('xss-5')\" x=\"",
    "javascript:alert('xss-6')",
]
EVERYTHING = " ".join(CORPUS)
OPERATOR = ("operator@bunbase.local", "operator-pass-1")
MEMBER_PASSWORD = "member-pass-123"

#: GET pages the crawl does not reach by a link, and why
NOT_CRAWLED = {"studio.login": "the sign-in page: visited signed out by the header test"}
#: query parameters Studio's pages read (filters), for the reflected pass
FILTERS = ["q", "status", "action", "trigger", "window", "name", "queue", "org", "user", "permission",
           "verified", "role", "actor", "target", "from", "to", "state", "job", "key", "event"]


def one(i: int) -> str:
    """The i-th payload with a marker of the field it went into (fits 120-character fields)."""
    return CORPUS[i % len(CORPUS)][:110]


@job("xss.echo", api=True, retries=0)
def echo(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"echo": payload}


@job("xss.fail", api=True, retries=0)
def fail(payload: dict[str, Any], ctx: Context) -> None:
    raise PermanentError(str(payload.get("why", "")))


class NoteInput(Contract):
    note: str


workflow("xss.flow", input=NoteInput, steps={"echo": lambda input, ctx: {"note": input.note}})


def _api(app: Flask, method: str, path: str, token: str | None, tenant: str, body: Any = None,
         **headers: str) -> Any:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    resp = app.test_client().open(path, method=method, json=body,
                                  headers={"X-Tenant-Id": tenant, **headers})
    assert resp.status_code == 200, (path, resp.get_json())
    return resp.get_json()["data"]


def plant(app: Flask, operator: dict[str, Any]) -> None:
    demo = operator["demo"]
    tenant, admin, org_id = demo.tenant_id, operator["token"], operator["org_id"]
    # an anonymous sign-up, then that member's own doings
    _api(app, "POST", "/v1/users/signup", None, tenant,
         {"email": "mallory@example.com", "password": MEMBER_PASSWORD, "name": one(0)})
    member = _api(app, "POST", "/v1/auth/login", None, tenant,
                  {"email": "mallory@example.com", "password": MEMBER_PASSWORD},
                  **{"User-Agent": one(1)})["token"]
    bind(app, tenant, org_id, _api(app, "GET", "/v1/auth/me", member, tenant)["userId"], "member")
    _api(app, "POST", "/v1/support/tickets", member, tenant,
         {"orgId": org_id, "subject": EVERYTHING[:200], "body": EVERYTHING, "priority": "high"})
    # what tenant admins and org owners name
    org = _api(app, "POST", "/v1/orgs", admin, tenant, {"name": one(2)})
    _api(app, "PATCH", f"/v1/orgs/{org['orgId']}", admin, tenant, {"name": one(3)})
    role = _api(app, "POST", "/v1/roles", admin, tenant,
                {"key": "xss-role", "name": one(4), "description": EVERYTHING})
    _api(app, "PATCH", f"/v1/roles/{role['roleId']}", admin, tenant, {"name": one(5)})
    _api(app, "POST", "/v1/api-keys", admin, tenant,
         {"orgId": org_id, "name": one(0), "scopes": ["ticket:read"]})
    _api(app, "POST", "/v1/api-keys/service-accounts", admin, tenant,
         {"orgId": org_id, "name": one(1), "description": EVERYTHING, "role": "viewer"})
    _api(app, "POST", "/v1/jobs", admin, tenant,
         {"name": "xss.echo", "payload": {"note": EVERYTHING, one(2): one(3)}, "idempotencyKey": one(4)})
    _api(app, "POST", "/v1/jobs", admin, tenant, {"name": "xss.fail", "payload": {"why": EVERYTHING}})
    _api(app, "POST", "/v1/workflows/xss.flow/start", admin, tenant, {"note": EVERYTHING})
    _drain(app)


def _drain(app: Flask) -> None:
    from bunbase.testing import Worker

    Worker(app).drain()


_FIND_INJECTED = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (a.name.startsWith('on')) bad.push(`${el.tagName} ${a.name}=${a.value.slice(0, 60)}`);
      if (['href', 'src', 'action', 'formaction', 'hx-get', 'hx-post'].includes(a.name)
          && /^\\s*javascript:/i.test(a.value)) bad.push(`${el.tagName} ${a.name}=${a.value}`);
    }
  }
  for (const s of document.scripts) {
    if (!s.nonce) bad.push('script without nonce: ' + s.outerHTML.slice(0, 80));
  }
  return bad;
}"""


def _endpoint(app: Flask, url: str) -> str | None:
    adapter = app.url_map.bind("localhost")
    try:
        endpoint, _ = adapter.match(urlsplit(url).path, method="GET")
    except HTTPException:
        return None
    return str(endpoint)


def _visit(page: Page, url: str, dialogs: list[str], problems: list[str]) -> list[str]:
    before = len(dialogs)
    resp = page.goto(url)
    page.wait_for_load_state("load")
    page.wait_for_timeout(50)  # autofocus and onerror fire right after load
    if resp is not None and resp.status >= 500:
        problems.append(f"{url}: {resp.status}")
    if len(dialogs) > before:
        problems.append(f"{url}: dialog {dialogs[before:]}")
    injected = page.evaluate(_FIND_INJECTED)
    if injected:
        problems.append(f"{url}: {injected}")
    hrefs: list[str] = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    return [h for h in hrefs if h.startswith("/studio")]


def crawl(app: Flask, page: Page, dialogs: list[str]) -> tuple[list[str], set[str]]:
    """Breadth-first over Studio links, at most a few URLs per page kind (endpoint)."""
    problems: list[str] = []
    seen: set[str] = set()
    per_endpoint: Counter[str] = Counter()
    queue = deque(["/studio/"])
    while queue:
        url = queue.popleft().split("#")[0]
        endpoint = _endpoint(app, url)
        if url in seen or endpoint is None or per_endpoint[endpoint] >= 3:
            continue
        seen.add(url)
        per_endpoint[endpoint] += 1
        queue.extend(_visit(page, url, dialogs, problems))
    # reflected: every page without an id in its path, with every filter set to the corpus
    for endpoint in sorted(per_endpoint):
        rule = next(r for r in app.url_map.iter_rules(endpoint))
        if not rule.arguments:
            query = urlencode({name: EVERYTHING for name in FILTERS})
            _visit(page, f"{rule.rule}?{query}", dialogs, problems)
    return problems, set(per_endpoint)


def test_no_studio_page_runs_planted_script(app: Flask, browser: Browser, live_server: str,
                                            operator: dict[str, Any]) -> None:
    plant(app, operator)
    context = browser.new_context(base_url=live_server, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, *OPERATOR)
    problems, visited = crawl(app, page, dialogs)
    context.close()
    assert not problems, "\n".join(problems)
    assert dialogs == [] and errors == [], (dialogs, errors)
    studio_pages = {r.endpoint for r in app.url_map.iter_rules()
                    if r.rule.startswith("/studio") and "GET" in (r.methods or set())}
    missing = studio_pages - visited - set(NOT_CRAWLED)
    assert not missing, f"Studio pages the crawl never reached: {sorted(missing)}"


def test_the_policy_stops_a_slip(browser: Browser, live_server: str, app: Flask) -> None:
    """Were a template ever to print markup unescaped, Studio's real policy keeps it inert."""
    policy = app.test_client().get("/studio/login").headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    slip = (
        f"<!doctype html><html><head><script nonce='{nonce}'>window.ok = 1;</script></head><body>"
        + "<a id=j href=\"javascript:alert('xss-8')\">j</a>"
        + "<script nonce='not-this-one'>alert('xss-7')</script>"
        + EVERYTHING
        + "</body></html>"
    )
    context = browser.new_context(base_url=live_server)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.route("**/csp-probe", lambda route: route.fulfill(
        status=200, body=slip, headers={"Content-Type": "text/html", "Content-Security-Policy": policy}))
    page.goto("/csp-probe")
    page.wait_for_timeout(200)
    page.click("#j")
    page.wait_for_timeout(100)
    assert page.evaluate("window.ok") == 1  # the nonce'd script ran: the page itself works
    context.close()
    assert dialogs == [], dialogs
