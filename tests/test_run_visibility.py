"""Who may read a run record (issue 11, finding 2): `GET /v1/runs/{runId}` and Studio.

The probe: a member, a viewer and a `ticket:read` API key read an administrator's
`users.user.list` run (every user's email) and runs of other orgs. Now a run is visible to
its own actor, to tenant administrators and operators, and to members whose role in the
run's org grants its read permission; everyone else gets the 404 of an id that does not
exist.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from bunbase import identity
from bunbase.db import db
from bunbase.ids import new_id
from bunbase.models import User
from bunbase.tenancy import tenant_scope
from tests.actors import World, create_org

MADE_UP = new_id("run")


def _get(app: Flask, headers: dict[str, str], run_id: str) -> tuple[int, Any]:
    resp = app.test_client().get(f"/v1/runs/{run_id}", headers=headers)
    body = resp.get_json()
    return resp.status_code, (body["error"] if not body["ok"] else body["data"])


def _run_of(resp: Any) -> str:
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["run_id"])


def _make_admin(app: Flask, world: World, name: str) -> dict[str, str]:
    with app.app_context(), tenant_scope(world.acme_id):
        db.session.get(User, world[name].user_id).is_tenant_admin = True
        db.session.commit()
        db.session.remove()
    identity.forget_sessions()
    return world[name].headers


def _assert_hidden(app: Flask, world: World, run_id: str, *names: str) -> None:
    for name in names:
        status, error = _get(app, world[name].headers, run_id)
        made_up = _get(app, world[name].headers, MADE_UP)
        assert (status, error) == made_up == (404, error), (name, status, error)
        assert error["code"] == "not_found"


def test_an_admins_user_list_run_is_hidden_from_members_viewers_and_keys(app, world):
    admin = _make_admin(app, world, "erin")
    run_id = _run_of(app.test_client().get("/v1/users", headers=admin))
    status, run = _get(app, admin, run_id)
    assert status == 200 and run["actionName"] == "users.user.list"
    assert "bob@acme.test" in str(run["output"])  # what the probe could read
    _assert_hidden(app, world, run_id, "bob", "carol", "api_key", "alice", "mallory")


def test_runs_of_another_org_are_hidden(app, world):
    other_org = create_org(app, world["carol"], "Carol's shop", "carols-shop")
    run_id = _run_of(app.test_client().post(
        "/v1/support/tickets",
        json={"orgId": other_org, "subject": "Shop ticket", "body": "Only for the shop."},
        headers=world["carol"].headers))
    assert _get(app, world["carol"].headers, run_id)[0] == 200  # her own
    _assert_hidden(app, world, run_id, "bob", "alice", "api_key", "erin")


def test_members_with_the_read_permission_see_the_orgs_runs(app, world):
    run_id = _run_of(app.test_client().post(
        "/v1/support/tickets",
        json={"orgId": world.org_id, "subject": "Bob's ticket", "body": "Bob needs help here."},
        headers=world["bob"].headers))
    for name in ("bob", "carol", "alice", "api_key"):  # carol: viewer; the key has ticket:read
        status, run = _get(app, world[name].headers, run_id)
        assert status == 200, (name, run)
        assert run["orgId"] == world.org_id and run["actorId"] == world["bob"].user_id
    _assert_hidden(app, world, run_id, "erin", "mallory")
    # a tenant administrator sees every run, whoever made it
    assert _get(app, _make_admin(app, world, "erin"), run_id)[0] == 200


def test_a_role_without_the_read_permission_does_not_see_the_run(app, world):
    from modules.rbac.models import Role, RolePermission
    from tests.actors import bind

    # a custom role that may open tickets but not read them
    with app.app_context(), tenant_scope(world.acme_id):
        role = Role(tenant_id=world.acme_id, key="reporter", name="Reporter", description="",
                    is_system=False)
        role.grants = [RolePermission(tenant_id=world.acme_id, permission="ticket:create")]
        db.session.add(role)
        db.session.commit()
        db.session.remove()
    bind(app, world.acme_id, world.org_id, world["erin"].user_id or "", "reporter")
    run_id = _run_of(app.test_client().post(
        "/v1/support/tickets",
        json={"orgId": world.org_id, "subject": "Alice's ticket", "body": "Alice needs help."},
        headers=world["alice"].headers))
    _assert_hidden(app, world, run_id, "erin")
    own = _run_of(app.test_client().post(
        "/v1/support/tickets",
        json={"orgId": world.org_id, "subject": "Erin's ticket", "body": "Erin needs help."},
        headers=world["erin"].headers))
    assert _get(app, world["erin"].headers, own)[0] == 200


def test_a_key_of_another_org_does_not_see_the_run(app, world):
    other_org = create_org(app, world["alice"], "Alice Two", "alice-two")
    key = app.test_client().post(
        "/v1/api-keys", json={"orgId": other_org, "name": "k2", "scopes": ["ticket:read"]},
        headers=world["alice"].headers).get_json()["data"]["secret"]
    headers = {"Authorization": f"Bearer {key}", "X-Tenant-Id": world.acme_id}
    run_id = world.extras["ticket_run_id"]  # alice's ticket in Acme
    assert _get(app, headers, run_id)[0] == 404
    assert _get(app, world["api_key"].headers, run_id)[0] == 200
