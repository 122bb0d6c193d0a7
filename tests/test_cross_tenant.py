"""Mallory (tenant "globex") against every route that takes one of alice's ids.

For every API trigger of every action and the generic run route, mallory sends alice's ids
(org, ticket, member, invitation token, key, service account, role...) with her own valid
credentials: the answer is the same status and the same error body as the same request
with freshly made-up ids -- nothing tells her alice's ids exist. With her token in alice's
tenant she is simply unauthenticated (401, same body as a made-up token). Then alice's
rows are exactly as before. The same again with mallory promoted to administrator of her
own tenant, the strongest outsider (she passes tenant_admin guards at home).
"""

from __future__ import annotations

from typing import Any

import pytest

from bunbase import identity
from bunbase.db import db
from bunbase.ids import new_id
from bunbase.models import User
from bunbase.tenancy import tenant_scope
from tests.actors import World, build_world, snapshot
from tests.authz_cases import all_requests, case_for
from tests.test_authz_matrix import kind_of


def alice_ids(world: World) -> dict[str, str]:
    """alice's ids -> made-up ids of the same shape."""
    ids = [world.org_id, world.ticket_id, world.dave_id, world.invitation_id,
           world["alice"].user_id or "", world["bob"].user_id or "", *world.extras.values()]
    out = {i: new_id(i.split("_", 1)[0]) for i in ids if i}
    out[world.invitation_token] = identity.new_token("bbi_")
    return out


def _swap(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, list):
        return [_swap(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: _swap(v, mapping) for k, v in value.items()}
    return value


def _error(resp: Any) -> tuple[int, Any]:
    body = resp.get_json()
    assert body["ok"] is False, body
    return resp.status_code, body["error"]


def _probe(app, world: World) -> list[str]:
    client = app.test_client()
    mallory = world["mallory"]
    home = mallory.headers  # her token, her tenant
    abroad = {**home, "X-Tenant-Id": world.acme_id}  # her token, alice's tenant
    forged = {"Authorization": "Bearer bbs_made-up-token", "X-Tenant-Id": world.acme_id}
    mapping = alice_ids(world)
    problems: list[str] = []
    probed = 0
    for action in app.extensions["bunbase"].registry.actions.values():
        raw = case_for(action.name).input(world, mallory)
        if _swap(raw, mapping) == raw:
            continue  # nothing of alice's in this input
        fake = _swap(raw, mapping)
        in_org = any(kind_of(g, action) == "in_org" for g in action.all_guards())
        for real_req, fake_req in zip(all_requests(action, raw), all_requests(action, fake),
                                      strict=True):
            probed += 1
            where = f"{action.name} {real_req.method} {real_req.url}"
            got, made_up = real_req.send(client, home), fake_req.send(client, home)
            if got.status_code == 200 or _error(got) != _error(made_up):
                problems.append(f"{where}: {got.status_code} {got.get_json()} vs made-up ids "
                                f"{made_up.status_code} {made_up.get_json()}")
            elif in_org and got.status_code != 404:
                problems.append(f"{where}: in_org route answered {got.status_code}, not 404")
            there, forged_resp = real_req.send(client, abroad), real_req.send(client, forged)
            if there.status_code != 401 or _error(there) != _error(forged_resp):
                problems.append(f"{where}: her token in acme gave {there.status_code} "
                                f"{there.get_json()}")
    assert probed > 20, probed  # every id-taking route of orgs, support, ... was asked
    return problems


@pytest.mark.parametrize("mallory_is_tenant_admin", [False, True])
def test_mallory_cannot_reach_alices_data(app, mallory_is_tenant_admin):
    world = build_world(app)
    if mallory_is_tenant_admin:
        with app.app_context(), tenant_scope(world.globex_id):
            db.session.get(User, world["mallory"].user_id).is_tenant_admin = True
            db.session.commit()
            db.session.remove()
    before = snapshot(app, world.acme_id)
    assert before["organizations"] and before["support_tickets"] and before["memberships"]
    problems = _probe(app, world)
    assert not problems, "\n".join(problems)
    assert snapshot(app, world.acme_id) == before
    # and alice still works as before
    resp = app.test_client().get(f"/v1/support/tickets/{world.ticket_id}",
                                 headers=world["alice"].headers)
    assert resp.status_code == 200
