"""A malformed `cursor` is 400 `invalid_cursor` on every list (issue 11, finding 12).

The probe: tickets, audit, users and keys answered garbage cursors with an empty page, and
the runtime lists with `bad_request`. Every action whose input has a `cursor` is asked here
with garbage, a cursor of another list and an overlong string; its own cursors still page.
"""

from __future__ import annotations

import base64
import json

from bunbase import cursors, identity
from bunbase.db import db
from bunbase.models import User
from bunbase.tenancy import tenant_scope
from tests.actors import build_world
from tests.authz_cases import case_for
from tests.helpers import assert_failure

OTHER_LISTS = cursors.encode("some-other-list", "x")
MALFORMED = ["garbage", "!!", "", " ", "W10", "x" * 5000, OTHER_LISTS,
             base64.urlsafe_b64encode(json.dumps(["tickets", 5]).encode()).decode(),
             "tkt_01M8W45Z4CENR4HB8A99W0SMAW"]  # an old-style raw id


def test_every_list_refuses_a_malformed_cursor(app):
    world = build_world(app)
    alice = world["alice"]
    with app.app_context(), tenant_scope(world.acme_id):
        db.session.get(User, alice.user_id).is_tenant_admin = True  # passes every list's guards
        db.session.commit()
        db.session.remove()
    identity.forget_sessions()
    client = app.test_client()
    lists = [a for a in app.extensions["bunbase"].registry.actions.values()
             if "cursor" in a.input.model_fields]
    assert len(lists) >= 8, [a.name for a in lists]
    problems = []
    for action in lists:
        fields = {f.alias or n for n, f in action.input.model_fields.items()}
        base = {k: v for k, v in case_for(action.name).input(world, alice).items() if k in fields}
        ok = client.post(f"/v1/actions/{action.name}/run", json=base, headers=alice.headers)
        assert ok.status_code == 200, (action.name, ok.get_json())
        for cursor in MALFORMED:
            if cursor.strip() == "":
                continue  # an empty cursor is the first page
            resp = client.post(f"/v1/actions/{action.name}/run", json={**base, "cursor": cursor},
                               headers=alice.headers)
            body = resp.get_json()
            if resp.status_code != 400 or body["error"]["code"] != "invalid_cursor":
                problems.append(f"{action.name} cursor={cursor[:30]!r}: {resp.status_code} {body}")
    assert not problems, "\n".join(problems)


def test_a_cursor_past_the_end_is_an_empty_page(client, tenant_a):
    end = cursors.encode("tickets", "tkt_00000000000000000000000000")
    resp = client.get("/v1/support/tickets", query_string={"orgId": tenant_a.org_id, "cursor": end},
                      headers=tenant_a.headers())
    assert resp.status_code == 200 and resp.get_json()["data"]["items"] == []


def test_the_error_names_the_field(client, tenant_a):
    resp = client.get("/v1/support/tickets", query_string={"orgId": tenant_a.org_id, "cursor": "nope"},
                      headers=tenant_a.headers())
    body = assert_failure(resp, 400, "invalid_cursor")
    assert body["error"]["details"][0]["field"] == "cursor"


def test_studio_pages_answer_a_garbage_cursor_without_a_500(app, tenant_a):
    from tests.test_users import studio_client

    c = studio_client(app, tenant_a)
    for path in ("/studio/m/runtime/jobs", "/studio/m/runtime/workflows", "/studio/m/runtime/events",
                 "/studio/m/runtime/scheduler", "/studio/runtime/actions", "/studio/m/users/users",
                 "/studio/m/audit/events", "/studio/m/support/tickets"):
        for arg in ("before", "after"):
            resp = c.get(path, query_string={arg: "garbage!"})
            assert resp.status_code in (200, 400), (path, arg, resp.status_code)
