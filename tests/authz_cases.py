"""What the authorization matrix sends to each action, and what it expects once the guards
have let the caller through. Every registered action has a case (test_authz_matrix checks).

Expected *denials* are never written here: test_authz_matrix.py derives them from each
action's declared guards. This table only says, per action, (1) the realistic raw input
(ids from the world: alice's org, a real ticket, a real member, a real invitation) and
(2) the exact status when every guard allowed the call (the handler's own answer: 200, or a
handler-level 401/403/404/409 such as "the last owner cannot leave"). An action missing
from the table still runs through the matrix with `FALLBACK` (orgId = alice's org); its
allowed outcome is then only checked to be no guard's denial.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bunbase.actions import Action
from tests.actors import PASSWORD, Person, World

Input = Callable[[World, Person], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    input: Input
    #: status when the guards allow: {actor name: status}, "*" for everyone else;
    #: None = unknown action (fallback): only "not a guard denial" is checked
    allowed: Mapping[str, int] | None = field(default_factory=lambda: {"*": 200})

    def allowed_status(self, actor: str) -> int | None:
        if self.allowed is None:
            return None
        return self.allowed.get(actor, self.allowed.get("*"))


def ok(*, default: int = 200, **per_actor: int) -> dict[str, int]:
    return {"*": default, **per_actor}


def _org(w: World, p: Person, **extra: Any) -> dict[str, Any]:
    return {"orgId": w.org_id, **extra}


def _slug(p: Person) -> str:
    return p.name.replace("_", "-")


CASES: dict[str, Case] = {
    # -- auth --------------------------------------------------------------------------
    "auth.session.login": Case(
        # each signs in with their own credentials (the key and anonymous use alice's)
        lambda w, p: {"email": p.email or w["alice"].email, "password": PASSWORD}),
    "auth.session.whoami": Case(lambda w, p: {}),
    # a key is not a session: signing it out is refused by the handler
    "auth.session.logout": Case(lambda w, p: {}, ok(api_key=401)),
    # -- orgs --------------------------------------------------------------------------
    "orgs.org.create": Case(
        lambda w, p: {"name": f"{p.name} Ltd", "slug": f"{_slug(p)}-ltd"},
        ok(api_key=403)),  # "Only users create organizations"
    "orgs.org.list": Case(lambda w, p: {}),
    "orgs.org.get": Case(_org),
    "orgs.org.update": Case(lambda w, p: _org(w, p, name=f"Acme by {p.name}")),
    "orgs.org.transfer_ownership": Case(lambda w, p: _org(w, p, userId=w.dave_id)),
    # the last owner cannot leave; an API key may never make its owner leave
    "orgs.org.leave": Case(_org, ok(alice=409, api_key=403)),
    "orgs.member.list": Case(_org),
    "orgs.member.update_role": Case(lambda w, p: _org(w, p, userId=w.dave_id, role="viewer")),
    "orgs.member.remove": Case(lambda w, p: _org(w, p, userId=w.dave_id)),
    "orgs.invitation.create": Case(lambda w, p: _org(w, p, email=f"new-{_slug(p)}@acme.test")),
    "orgs.invitation.list": Case(_org),
    "orgs.invitation.revoke": Case(lambda w, p: _org(w, p, invitationId=w.invitation_id)),
    "orgs.invitation.resend": Case(lambda w, p: _org(w, p, invitationId=w.invitation_id)),
    # zoe's invitation: anyone else signed in is refused (403), a key must be a user (401),
    # and in mallory's tenant the token does not exist (404)
    "orgs.invitation.accept": Case(lambda w, p: {"token": w.invitation_token},
                                   ok(default=403, api_key=401, mallory=404)),
    # public: the token is the proof. The first caller (anonymous) declines it; after that
    # it is no longer pending (409); mallory's tenant has no such token (404)
    "orgs.invitation.decline": Case(lambda w, p: {"token": w.invitation_token},
                                    ok(default=409, anonymous=200, mallory=404)),
    # -- support -----------------------------------------------------------------------
    "support.ticket.create": Case(lambda w, p: _org(
        w, p, subject=f"Printer on fire ({p.name})", body="It is really on fire.")),
    "support.ticket.get": Case(lambda w, p: {"ticketId": w.ticket_id}),
    "support.ticket.list": Case(lambda w, p: _org(w, p, limit=5)),
    # -- runtime: alice's ticket.create run in Acme (its read permission is ticket:read)
    "runtime.run.get": Case(lambda w, p: {"runId": w.extras["ticket_run_id"]}),
    # -- api_keys (alice's key and a service account "robot" exist in the world) ---------
    "api_keys.key.create": Case(lambda w, p: _org(w, p, name=f"key of {p.name}",
                                                  scopes=["ticket:read"])),
    "api_keys.key.list": Case(_org),
    "api_keys.key.rotate": Case(lambda w, p: {"keyId": w.extras.get("key_id", "key_none")}),
    "api_keys.key.revoke": Case(lambda w, p: {"keyId": w.extras.get("key_id", "key_none")}),
    "api_keys.service_account.create": Case(lambda w, p: _org(w, p, name=f"sa {p.name}")),
    "api_keys.service_account.list": Case(_org),
    "api_keys.service_account.update_role": Case(lambda w, p: {
        "serviceAccountId": w.extras.get("service_account_id", "sva_none"), "role": "member"}),
    "api_keys.service_account.disable": Case(lambda w, p: {
        "serviceAccountId": w.extras.get("service_account_id", "sva_none")}),
    # -- rbac / users: real ids; their handlers are checked by their own tests, so here
    # only "no guard said no" is asserted once the guards allow (allowed=None)
    # roles are workspace-wide: tenant administrators only (none of the actors is one)
    "rbac.role.list": Case(lambda w, p: {}),
    "rbac.role.create": Case(lambda w, p: {"key": f"r-{_slug(p)}", "name": "R"}),
    "rbac.role.update": Case(lambda w, p: {"roleId": w.extras["member_role_id"], "name": "M"}),
    "rbac.role.set_permission": Case(lambda w, p: {
        "roleId": w.extras["member_role_id"], "permission": "ticket:delete"}),
    "rbac.role.delete": Case(lambda w, p: {"roleId": w.extras["member_role_id"]}),
    # -- users: the account's own doings, and administration (tenant admins only) --------
    "users.user.signup": Case(lambda w, p: {"email": f"new-{_slug(p)}@acme.test",
                                            "password": PASSWORD, "name": "New"}),
    "users.user.verify_email": Case(lambda w, p: {"token": "bbv_not-a-real-token"}, ok(default=400)),
    "users.user.resend_verification": Case(lambda w, p: {}, ok(api_key=403)),
    "users.user.change_password": Case(
        lambda w, p: {"currentPassword": PASSWORD, "newPassword": PASSWORD + " again"}, ok(api_key=403)),
    "users.password.request_reset": Case(lambda w, p: {"email": "nobody@acme.test"}),
    "users.password.reset": Case(lambda w, p: {"token": "bbr_not-a-real-token", "newPassword": PASSWORD},
                                 ok(default=400)),
    "users.user.list": Case(lambda w, p: {}),
    "users.user.get": Case(lambda w, p: {"userId": w["bob"].user_id}),
    "users.user.disable": Case(lambda w, p: {"userId": w["bob"].user_id}),
    "users.user.enable": Case(lambda w, p: {"userId": w["bob"].user_id}),
    "users.session.list": Case(lambda w, p: {"userId": w["bob"].user_id}),
    "users.session.revoke": Case(lambda w, p: {"userId": w["bob"].user_id, "sessionId": "ses_none"}),
    "users.session.revoke_all": Case(lambda w, p: {"userId": w["bob"].user_id}),
    # -- auth: the caller's own sessions (a key has none: 403) --------------------------
    "auth.session.list": Case(lambda w, p: {}, ok(api_key=403)),
    "auth.session.revoke": Case(lambda w, p: {"sessionId": "ses_not-mine"}, ok(default=404, api_key=403)),
    "auth.session.revoke_all": Case(lambda w, p: {}, ok(api_key=403)),
    # -- audit -----------------------------------------------------------------------------
    "audit.event.list": Case(_org),
    "audit.chain.verify": Case(lambda w, p: {}),
    # -- runtime: the operations console, tenant administrators only ---------------------
    **{name: Case(lambda w, p: {}) for name in (
        "runtime.event.list", "runtime.job.list", "runtime.schedule.list", "runtime.workflow.list")},
    **{name: Case(lambda w, p: {"jobId": "job_none"}) for name in (
        "runtime.job.get", "runtime.job.replay", "runtime.job.discard")},
    **{name: Case(lambda w, p: {"jobIds": ["job_none"]}) for name in (
        "runtime.job.replay_matching", "runtime.job.discard_matching")},
    "runtime.job.enqueue": Case(lambda w, p: {"name": "testkit.record"}),
    **{name: Case(lambda w, p: {"scheduleId": "sch_none"}) for name in (
        "runtime.schedule.get", "runtime.schedule.pause", "runtime.schedule.resume",
        "runtime.schedule.trigger")},
    **{name: Case(lambda w, p: {"runId": "wfr_none"}) for name in (
        "runtime.workflow.get", "runtime.workflow.pause", "runtime.workflow.resume",
        "runtime.workflow.cancel", "runtime.workflow.retry")},
    "runtime.workflow.replay": Case(lambda w, p: {"runId": "wfr_none", "fromStep": 0}),
    "runtime.workflow.start": Case(lambda w, p: {"workflowName": "support.ticket.escalation",
                                                 "ticketId": w.ticket_id, "orgId": w.org_id}),
    # -- support's platform entry points: an event or the clock runs them, never a caller
    "support.ticket.on_created": Case(lambda w, p: {
        "ticketId": w.ticket_id, "orgId": w.org_id, "subject": "S", "priority": "high"}),
    "support.tickets.digest": Case(lambda w, p: {}),
    # -- testkit (tests/fixture_modules) -----------------------------------------------
    "testkit.fail.after_write": Case(lambda w, p: {"mode": "typed"}, ok(default=409)),
    "testkit.job.enqueue": Case(lambda w, p: {"note": p.name}),
    "testkit.slow": Case(lambda w, p: {"seconds": 0}),
    "testkit.limited": Case(lambda w, p: {}),
    "testkit.bad_output": Case(lambda w, p: {}, ok(default=500)),
    "testkit.secret": Case(lambda w, p: {}),
    "testkit.echo.get": Case(lambda w, p: {"itemId": "a", "count": 2}),
    "testkit.echo.put": Case(lambda w, p: {"itemId": "b", "flag": "f"}),
    # -- trial (the handbook's trial lifecycle, tests/fixture_modules/trial) ---------------
    "trial.subscription.start": Case(lambda w, p: _org(w, p, days=14)),
    "trial.subscription.get": Case(_org, ok(default=404)),  # no subscription in the world
    "trial.payment_method.add": Case(lambda w, p: _org(w, p, cardLast4="4242"), ok(default=404)),
    "trial.event.emit": Case(lambda w, p: {"name": "matrix.probe", "payload": {"by": p.name}}),
    "trial.payment.on_added": Case(lambda w, p: _org(w, p, last4="4242")),  # its event runs it
}

FALLBACK = Case(_org, None)


def case_for(name: str) -> Case:
    return CASES.get(name, FALLBACK)


# -- turning an action + raw input into an HTTP request -----------------------------------
@dataclass(frozen=True)
class Request:
    method: str
    url: str
    kwargs: dict[str, Any]

    def send(self, client: Any, headers: dict[str, str]) -> Any:
        return client.open(self.url, method=self.method, headers=headers, **self.kwargs)


def generic_request(action: Action, raw: dict[str, Any]) -> Request:
    return Request("POST", f"/v1/actions/{action.name}/run", {"json": raw})


def own_requests(action: Action, raw: dict[str, Any]) -> list[Request]:
    """One request per API trigger: path params filled from `raw`, the rest in the body
    (POST/PUT/PATCH) or the query string (GET/DELETE)."""
    prefix = action.module.api_prefix if action.module else ""
    out = []
    for trig in action.api_triggers:
        path = trig.openapi_path(prefix)
        rest = dict(raw)
        for param in trig.path_params:
            value = rest.pop(param, f"missing-{param}")
            path = path.replace("{" + param + "}", quote(str(value), safe=""))
        kwargs = {"json": rest} if trig.reads_body else {"query_string": rest}
        out.append(Request(trig.method, "/v1" + path, kwargs))
    return out


def all_requests(action: Action, raw: dict[str, Any]) -> list[Request]:
    return [*own_requests(action, raw), generic_request(action, raw)]
