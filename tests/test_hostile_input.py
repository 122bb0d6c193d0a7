"""Bad input gets a clear, typed error and never a 500 (issue 11, finding 5).

The probe: a 60 MB JSON body grew a worker to 923 MB, 1,000-level nested bodies and
`"delay": "99999999999999d"` were 500s. Here every registered action gets, field by field,
values that overflow, nest, are the wrong type or too long, on top of the realistic input
of the authorization matrix (tests/authz_cases.py), sent by alice (the org's owner, so the
guards let the value through to validation and the handler). The answer is always a JSON
envelope with a status below 500. Then the body-level limits: size (413
`payload_too_large` before the body is read), depth, malformed JSON.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bunbase import Contract, identity
from bunbase.db import db
from bunbase.jobs import job
from bunbase.models import User
from bunbase.tenancy import tenant_scope
from bunbase.workflows import workflow
from tests.actors import build_world
from tests.authz_cases import case_for
from tests.helpers import assert_failure

HOSTILE: list[Any] = [
    10**20,
    -(10**20),
    1e308,
    "99999999999999d",
    "",
    "\u0000",
    "x" * 5000,
    {"$ne": None},
    [[["deep"]]],
    None,
    True,
]


@job("hostile.echo", api=True)
def echo(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return payload


class NoteInput(Contract):
    note: str


workflow("hostile.flow", input=NoteInput, steps={"echo": lambda input, ctx: {"note": input.note}})


def _fields(action: Any) -> list[str]:
    schema = action.input.model_json_schema(by_alias=True)
    return sorted(schema.get("properties", {}))


#: base inputs for actions whose matrix case does not reach their handler as an owner
BASES: dict[str, dict[str, Any]] = {
    "runtime.job.enqueue": {"name": "hostile.echo", "payload": {}, "delay": "1m"},
    "runtime.workflow.start": {"workflowName": "hostile.flow", "note": "n"},
}


def test_every_field_of_every_action_answers_hostile_values_without_a_500(app):
    world = build_world(app)
    alice = world["alice"]
    with app.app_context(), tenant_scope(world.acme_id):
        # owner of the org and tenant administrator: every guard lets her through
        db.session.get(User, alice.user_id).is_tenant_admin = True
        db.session.commit()
        db.session.remove()
    identity.forget_sessions()
    client = app.test_client()
    problems: list[str] = []
    sent = 0
    for action in sorted(app.extensions["bunbase"].registry.actions.values(), key=lambda a: a.name):
        base = BASES.get(action.name) or case_for(action.name).input(world, alice)
        for field in _fields(action):
            for value in HOSTILE:
                resp = client.post(f"/v1/actions/{action.name}/run", json={**base, field: value},
                                   headers=alice.headers)
                sent += 1
                body = resp.get_json(silent=True)
                if resp.status_code >= 500 or not isinstance(body, dict) or "ok" not in body:
                    problems.append(f"{action.name} {field}={str(value)[:40]!r}: {resp.status_code} "
                                    f"{resp.get_data(as_text=True)[:200]}")
    assert sent > 500, sent
    assert not problems, "\n".join(problems)


def test_the_probes_delay_is_a_validation_error(client, tenant_a):
    resp = client.post("/v1/jobs", json={"name": "hostile.echo", "delay": "99999999999999d"},
                       headers=tenant_a.headers())
    body = assert_failure(resp, 400, "validation_error")
    assert body["error"]["details"][0]["field"] == "delay"


def test_a_body_over_the_limit_is_413_before_it_is_read(client, tenant_a):
    huge = b'{"subject": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    for headers in ({"X-Tenant-Id": tenant_a.id}, tenant_a.headers()):  # anonymous, signed in
        resp = client.post("/v1/support/tickets", data=huge,
                           headers={**headers, "Content-Type": "application/json"})
        body = assert_failure(resp, 413, "payload_too_large")
        assert "1,048,576 bytes" in body["error"]["message"]
        assert resp.headers["Connection"] == "close"


def test_the_limit_is_checked_before_reading(app, tenant_a):
    """A body that claims to be larger than the limit is refused from its Content-Length:
    the stream is never read (it would raise here)."""

    class Unreadable:
        def read(self, *_args: Any) -> bytes:
            raise AssertionError("the body was read")

        readline = read

    environ = {"wsgi.input": Unreadable(), "CONTENT_LENGTH": str(60 * 1024 * 1024),
               "CONTENT_TYPE": "application/json"}
    resp = app.test_client().post("/v1/support/tickets", environ_overrides=environ,
                                  headers={"X-Tenant-Id": tenant_a.id})
    assert_failure(resp, 413, "payload_too_large")


def test_an_action_may_declare_a_larger_body(app, client, tenant_a):
    from bunbase.actions import Action

    action: Action = app.extensions["bunbase"].registry.get("testkit.echo.put")
    body = json.dumps({"flag": "x" * (1024 * 1024)})
    assert client.put("/v1/testkit/echo/a", data=body, content_type="application/json",
                      headers=tenant_a.headers()).status_code == 413
    saved, action.max_body = action.max_body, 4 * 1024 * 1024
    try:
        resp = client.put("/v1/testkit/echo/a", data=body, content_type="application/json",
                          headers=tenant_a.headers())
        assert resp.status_code == 200, resp.get_json()
    finally:
        action.max_body = saved


def test_studio_forms_have_the_same_limit(client):
    resp = client.post("/studio/login", data={"email": "x" * (2 * 1024 * 1024)})
    assert resp.status_code == 413


@pytest.mark.parametrize("raw", [
    "[" * 1000 + "]" * 1000,
    '{"a": ' + "[" * 33 + "]" * 33 + "}",
    "[" * 100_000 + "]" * 100_000,
])
def test_deeply_nested_json_is_a_bad_request(client, tenant_a, raw):
    resp = client.post("/v1/support/tickets", data=raw, content_type="application/json",
                       headers=tenant_a.headers())
    body = assert_failure(resp, 400, "bad_request")
    assert "nested deeper than 32 levels" in body["error"]["message"]


def test_nesting_within_the_limit_reaches_validation(client, tenant_a):
    raw = json.dumps({"orgId": tenant_a.org_id, "subject": [[[[["five levels"]]]]], "body": "b" * 20})
    resp = client.post("/v1/support/tickets", data=raw, content_type="application/json",
                       headers=tenant_a.headers())
    body = assert_failure(resp, 400, "validation_error")  # parsed; the field is the wrong type
    assert body["error"]["details"][0]["field"] == "subject"


@pytest.mark.parametrize("raw, words", [
    ("{not json", "not valid JSON"),
    ('{"n": ' + "9" * 5000 + "}", "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
])
def test_malformed_json_says_why(client, tenant_a, raw, words):
    resp = client.post("/v1/support/tickets", data=raw, content_type="application/json",
                       headers=tenant_a.headers())
    body = assert_failure(resp, 400, "bad_request")
    assert words in body["error"]["message"]
