"""The generated authorization matrix: every registered action x every actor.

The expected outcome is computed only from what the action declares (`all_guards()`:
authenticated, in_org, has_permission, has_role, rate_limit; `public=True`) and the role
permission sets of `modules.rbac.services.SYSTEM_ROLES` matched with `bunbase.authz.grants`.
The real HTTP response must agree:

* an expected denial must be exactly that status and error code (401 unauthenticated,
  404 not_found for a non-member, 403 forbidden with `{"permission", "reason"}` naming the
  first permission the actor's role lacks). Denials are checked on the action's own routes
  AND on the generic run route (a denial changes nothing, so both can be asked).
* an expected allow must be the handler's answer recorded in tests/authz_cases.py (exact
  status), or, for an action that table does not know, anything but a guard's denial.
  Alice's allowed calls go through the generic run route, everyone else's through the
  action's own route (so both paths serve every action).

A new action is covered without a new test (FALLBACK input: orgId = alice's org), and an
unknown guard kind fails the matrix until it is taught here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bunbase import authz
from bunbase.actions import Action
from bunbase.guards import Guard
from bunbase.registry import Registry, load
from modules.rbac.services import SYSTEM_ROLES
from tests.actors import World, build_world
from tests.authz_cases import CASES, case_for, generic_request, own_requests

KNOWN_GUARD_KINDS = {
    "authenticated", "in_org", "has_permission", "has_role", "rate_limit", "tenant_admin",
    "run_visible", "only_trigger"}
#: guard kinds that mean "the caller must be signed in"; a public action carries none
AUTH_KINDS = {"authenticated", "in_org", "has_permission", "has_role", "tenant_admin", "run_visible"}


@dataclass(frozen=True)
class Denial:
    status: int
    code: str
    permission: str | None = None  # for a has_permission denial
    reason: str | None = None


#: plain-callable guards (kind "custom") the matrix has been taught one by one, keyed by
#: (action, function name). Any other custom guard fails the matrix.
CUSTOM_GUARDS: dict[tuple[str, str], Callable[[Any], Denial | None]] = {
}


def _registered_names() -> list[str]:
    """The same module packages the app fixture loads (modules + tests.fixture_modules)."""
    return sorted(load(Registry(), ["modules", "tests.fixture_modules"]).actions)


ACTION_NAMES = _registered_names()


class UnknownGuard(AssertionError):
    pass


def kind_of(guard: Any, action: Action | None = None) -> str:
    if isinstance(guard, Guard):
        return guard.kind
    if action is not None and (action.name, getattr(guard, "__name__", "")) in CUSTOM_GUARDS:
        return "taught"
    return "custom"


def role_permissions(role: str | None) -> frozenset[str]:
    return frozenset(SYSTEM_ROLES[role][2]) if role else frozenset()


def expected_denial(action: Action, person: Any, world: World) -> Denial | None:
    """What the guards should say to `person`, from the declarations alone."""
    kinds = [kind_of(g, action) for g in action.all_guards()]
    unknown = set(kinds) - KNOWN_GUARD_KINDS - {"taught"}
    if unknown:
        raise UnknownGuard(f"{action.name}: guard kinds {sorted(unknown)} are unknown to the "
                           "matrix; teach expected_denial() what they deny")
    if action.public:
        assert not set(kinds) & AUTH_KINDS, f"{action.name} is public but guarded by {kinds}"
        return None
    anonymous = person.kind == "anonymous"
    # mallory's token is valid in her own tenant, where none of alice's ids exist
    member_role = person.role if person.tenant_id == world.acme_id else None
    org_in_context = False
    for guard in action.all_guards():
        kind = kind_of(guard, action)
        if kind == "taught":
            denial = CUSTOM_GUARDS[(action.name, guard.__name__)](person)
            if denial is not None:
                return denial
        elif kind == "authenticated":
            if anonymous:
                return Denial(401, "unauthenticated")
        elif kind == "in_org":
            if anonymous:
                return Denial(401, "unauthenticated")
            if member_role is None:
                return Denial(404, "not_found")
            org_in_context = True
        elif kind == "has_permission":
            if anonymous:
                return Denial(401, "unauthenticated")
            for wanted in guard.permissions:
                if not org_in_context:  # none of the actors is a tenant administrator
                    return Denial(403, "forbidden", wanted,
                                  f"{wanted!r} needs an organization in context")
                role = member_role or ""
                if authz.grants(role_permissions(member_role), wanted) is None:
                    return Denial(403, "forbidden", wanted,
                                  f"role {role!r} does not grant {wanted!r}")
                if person.kind == "api_key" and authz.grants(person.scopes, wanted) is None:
                    return Denial(403, "forbidden", wanted,
                                  f"API key scopes {sorted(person.scopes)} do not include "
                                  f"{wanted!r}")
        elif kind == "has_role":
            if member_role is None or not org_in_context:
                return Denial(404, "not_found")
            if member_role not in guard.roles:
                return Denial(403, "forbidden")
        elif kind == "run_visible":  # the case's run: alice's support.ticket.create in Acme
            if anonymous:
                return Denial(401, "unauthenticated")
            if person.name == "alice":
                continue  # her own run
            if member_role is None or authz.grants(role_permissions(member_role), "ticket:read") is None:
                return Denial(404, "not_found")
            if person.kind == "api_key" and authz.grants(person.scopes, "ticket:read") is None:
                return Denial(404, "not_found")
        elif kind in ("only_trigger", "tenant_admin"):
            # only the platform runs it (an event, the clock), or only a tenant administrator:
            # none of the actors is either
            if anonymous:
                return Denial(401, "unauthenticated")
            return Denial(403, "forbidden")
        # rate_limit: the matrix stays far below every limit
    return None


def _is_guard_denial(resp: Any) -> bool:
    body = resp.get_json() or {}
    err = body.get("error") or {}
    details = err.get("details")
    if resp.status_code == 401:
        return True
    if resp.status_code == 403 and isinstance(details, dict) and "permission" in details:
        return True
    return resp.status_code == 404 and err.get("message") == "Organization not found"


def _check_denial(resp: Any, denial: Denial, where: str) -> list[str]:
    body = resp.get_json() or {}
    problems = []
    if resp.status_code != denial.status:
        return [f"{where}: expected {denial.status} {denial.code}, got {resp.status_code} "
                f"{body.get('error') or body.get('data')}"]
    err = body.get("error") or {}
    if body.get("ok") is not False or err.get("code") != denial.code:
        problems.append(f"{where}: expected code {denial.code}, got {body}")
    if denial.permission is not None:
        want = {"permission": denial.permission, "reason": denial.reason}
        if err.get("details") != want:
            problems.append(f"{where}: details {err.get('details')} != {want}")
    return problems


def _check_allowed(resp: Any, status: int | None, where: str) -> list[str]:
    body = resp.get_json() or {}
    if status is None:  # an action the case table does not know
        if _is_guard_denial(resp) or resp.status_code >= 500:
            return [f"{where}: guards should allow, got {resp.status_code} {body.get('error')}"]
        return []
    if resp.status_code != status:
        return [f"{where}: allowed, handler should answer {status}, got {resp.status_code} "
                f"{body.get('error') or body.get('data')}"]
    return []


def test_matrix_knows_every_registered_action(app):
    """The collected list is the app's registry (no action escapes the matrix), every action
    has a case with an expected outcome (no fallback, no "any allowed answer"), and the case
    table names no action that no longer exists."""
    registered = set(app.extensions["bunbase"].registry.actions)
    assert set(ACTION_NAMES) == registered
    assert set(CASES) == registered, {"no case": sorted(registered - set(CASES)),
                                      "unknown": sorted(set(CASES) - registered)}
    assert not [name for name, case in CASES.items() if case.allowed is None]


def test_every_guard_kind_is_known_to_the_matrix(app):
    for action in app.extensions["bunbase"].registry.actions.values():
        kinds = {kind_of(g, action) for g in action.all_guards()}
        assert kinds <= KNOWN_GUARD_KINDS | {"taught"}, (action.name, kinds - KNOWN_GUARD_KINDS)


def test_unknown_guard_kind_fails_the_matrix(world):
    from bunbase import Contract, Empty, action

    class Out(Contract):
        ok: bool

    def sneaky(ctx: Any) -> None:  # a plain callable guard: kind "custom"
        return None

    @action(name="testkit.sneaky.run", input=Empty, output=Out, guards=[sneaky])
    def handler(input: Any, ctx: Any) -> Out:
        return Out(ok=True)

    with pytest.raises(UnknownGuard, match="custom"):
        expected_denial(handler, world["bob"], world)


@pytest.mark.parametrize("name", ACTION_NAMES)
def test_authz_matrix(app, name):
    action = app.extensions["bunbase"].registry.actions[name]
    world = build_world(app)
    case = case_for(name)
    client = app.test_client()
    problems: list[str] = []
    for person in world.actors:
        raw = case.input(world, person)
        denial = expected_denial(action, person, world)
        own = own_requests(action, raw)
        if denial is not None:
            # a denial writes nothing, so every route can be asked
            for req in [*own, generic_request(action, raw)]:
                resp = req.send(client, person.headers)
                assert resp.headers.get("X-Run-Id", "").startswith("run_"), (name, req.url)
                problems += _check_denial(resp, denial, f"{person.name} {req.method} {req.url}")
            continue
        req = generic_request(action, raw) if person.name == "alice" or not own else own[0]
        resp = req.send(client, person.headers)
        assert resp.headers.get("X-Run-Id", "").startswith("run_"), (name, req.url)
        problems += _check_allowed(resp, case.allowed_status(person.name),
                                   f"{person.name} {req.method} {req.url}")
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)
