"""Inside one tenant, a caller outside an org cannot tell its ids from made-up ones
(issue 11, finding 7).

The probe: "Organization not found" for a ticket of an org the caller is not in, against
"Ticket not found" for a made-up ticket id (and the same with keys and service accounts)
told which ids exist. For every action whose realistic input (tests/authz_cases.py) carries
one of alice's ids, erin — a user of alice's tenant in none of its orgs — sends alice's ids
and then made-up ids of the same shape: the status and the error body must be the same.
Bearer secrets (invitation tokens) are not ids and are left out: holding one is the proof.
"""

from __future__ import annotations

from typing import Any

from tests.actors import build_world
from tests.authz_cases import all_requests, case_for
from tests.test_cross_tenant import _error, _swap, alice_ids


def test_erin_cannot_tell_alices_ids_from_made_up_ones(app):
    world = build_world(app)
    erin = world["erin"]
    mapping = alice_ids(world)
    mapping.pop(world.invitation_token)
    client = app.test_client()
    problems: list[str] = []
    probed = 0
    for action in app.extensions["bunbase"].registry.actions.values():
        raw = case_for(action.name).input(world, erin)
        fake = _swap(raw, mapping)
        if fake == raw:
            continue
        for real_req, fake_req in zip(all_requests(action, raw), all_requests(action, fake), strict=True):
            probed += 1
            got, made_up = real_req.send(client, erin.headers), fake_req.send(client, erin.headers)
            if got.status_code == 200 or _error(got) != _error(made_up):
                problems.append(f"{action.name} {real_req.method} {real_req.url}: {got.status_code} "
                                f"{_body(got)} vs made-up {made_up.status_code} {_body(made_up)}")
    assert probed > 20, probed
    assert not problems, "\n".join(problems)


def _body(resp: Any) -> Any:
    return (resp.get_json() or {}).get("error")
