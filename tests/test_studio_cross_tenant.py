"""Another tenant's ids through every Studio form (issue 11, finding 8).

The probe: as another tenant's admin, Studio's service-account form accepted an org id of
the demo tenant (and a key for it passed `in_org`); a made-up id gave "Internal error" (a
foreign-key failure), which told whether an id exists elsewhere. Here mallory, the
administrator of tenant "globex", posts every Studio form with alice's ids (tenant "acme")
in its URL and fields, and again with made-up ids of the same shape. The status and every
visible message must be the same, and alice's tenant must be unchanged. The forms are read
from the URL map: a new Studio form fails this test until it has a case below.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from bunbase import identity
from bunbase.clock import clock
from bunbase.db import db
from bunbase.ids import new_id
from bunbase.models import AuthSession, User
from bunbase.tenancy import tenant_scope
from tests.actors import PASSWORD, World, build_world, snapshot

#: endpoint -> (URL parameters, form fields); values name ids of the world ("{org}"...)
CASES: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "studio.switch_tenant": ({}, {"tenant_id": "{tenant}"}),
    "api_keys_studio.keys_new": ({}, {"org_id": "{org}", "name": "k", "scopes": "ticket:read",
                                      "service_account_id": "{sa}"}),
    "api_keys_studio.keys_revoke": ({"key_id": "{key}"}, {}),
    "api_keys_studio.keys_rotate": ({"key_id": "{key}"}, {"grace_hours": "1"}),
    "api_keys_studio.service_accounts_new": ({}, {"org_id": "{org}", "name": "robot2", "role": "viewer"}),
    "api_keys_studio.service_accounts_role": ({"sa_id": "{sa}"}, {"role": "member"}),
    "api_keys_studio.service_accounts_disable": ({"sa_id": "{sa}"}, {}),
    "orgs_studio.orgs_new": ({}, {"name": "Stolen", "slug": "stolen", "owner_id": "{alice}"}),
    "orgs_studio.orgs_invite": ({"org_id": "{org}"}, {"email": "x@globex.test", "role": "member"}),
    "orgs_studio.orgs_invitation_act": ({"org_id": "{org}", "invitation_id": "{invitation}",
                                         "verb": "revoke"}, {}),
    "orgs_studio.orgs_member_remove": ({"org_id": "{org}", "user_id": "{dave}"}, {}),
    "orgs_studio.orgs_member_role": ({"org_id": "{org}", "user_id": "{dave}"}, {"role": "viewer"}),
    "rbac_studio.roles_delete": ({"role_id": "{role}"}, {}),
    "rbac_studio.roles_grant": ({"role_id": "{role}"}, {"permission": "ticket:delete", "granted": "1"}),
    "runtime_studio.jobs_bulk": ({}, {"op": "discard_selected", "job_id": "{job}"}),
    "runtime_studio.jobs_discard": ({"job_id": "{job}"}, {}),
    "runtime_studio.jobs_replay": ({"job_id": "{job}"}, {}),
    "runtime_studio.schedules_control": ({"schedule_id": "{schedule}", "verb": "pause"}, {}),
    "runtime_studio.workflows_control": ({"run_id": "{workflow}", "verb": "cancel"}, {}),
    "runtime_studio.workflows_replay": ({"run_id": "{workflow}"}, {"from_step": "0"}),
    "users_studio.users_disable": ({"user_id": "{alice}"}, {}),
    "users_studio.users_enable": ({"user_id": "{alice}"}, {}),
    "users_studio.users_revoke_session": ({"user_id": "{alice}", "session_id": "{session}"}, {}),
    "users_studio.users_revoke_all": ({"user_id": "{alice}"}, {}),
}
#: forms that take no id (nothing of alice's to send): posted once, they must change nothing
#: of alice's (sign-in and sign-out are left to their own tests)
NO_IDS: dict[str, dict[str, Any]] = {
    "audit_studio.verify": {},
    "rbac_studio.roles_create": {"key": "thief", "name": "Thief", "description": ""},
}
NOT_POSTED = {"studio.login", "studio.logout"}


def _acme_ids(app: Flask, world: World) -> dict[str, str]:
    """alice's ids by name, including runtime rows made for this test."""
    from bunbase.runtime_models import Schedule
    from bunbase.testing import service_ctx

    acme = world.acme_id
    with service_ctx(app, acme) as ctx:
        job = ctx.jobs.enqueue("support.ticket.notify_assignee", {"ticket_id": world.ticket_id},
                               delay="1d")
        ctx.scheduler.once("cross-tenant-probe", run_at=clock.now() + timedelta(days=1),
                           job="support.ticket.notify_assignee", payload={"ticket_id": world.ticket_id})
        run = ctx.workflows.start("support.ticket.escalation", {"ticketId": world.ticket_id,
                                                                "orgId": world.org_id})
    with app.app_context(), tenant_scope(acme):
        schedule = db.session.query(Schedule).filter_by(key="cross-tenant-probe").one().id
        session_id = db.session.query(AuthSession).filter_by(user_id=world["alice"].user_id).first().id
        db.session.remove()
    return {"tenant": acme, "org": world.org_id, "alice": world["alice"].user_id or "",
            "dave": world.dave_id, "invitation": world.invitation_id,
            "key": world.extras["key_id"], "sa": world.extras["service_account_id"],
            "role": world.extras["member_role_id"], "job": job, "schedule": schedule,
            "workflow": run, "session": session_id}


def _made_up(ids: dict[str, str]) -> dict[str, str]:
    out = {}
    for name, value in ids.items():
        prefix, _, rest = value.partition("_")
        out[name] = f"{prefix}_k{'0' * (len(rest) - 1)}" if rest.startswith("k") else new_id(prefix)
    return out


def _studio(app: Flask, world: World) -> FlaskClient:
    with app.app_context(), tenant_scope(world.globex_id):
        db.session.get(User, world["mallory"].user_id).is_tenant_admin = True
        db.session.commit()
        db.session.remove()
    identity.forget_sessions()
    c = app.test_client()
    page = c.get("/studio/login").get_data(as_text=True)
    resp = c.post("/studio/login", data={"email": world["mallory"].email, "password": PASSWORD,
                                         "workspace": world.globex_slug, "csrf_token": _csrf(page)})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    return c


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _fill(template: Any, ids: dict[str, str]) -> Any:
    if isinstance(template, str):
        return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], template)
    return {k: _fill(v, ids) for k, v in template.items()}


def _seen(resp: Any, ids: dict[str, str]) -> tuple[int, list[str]]:
    """What mallory sees: the final status and every message on the page (ids blanked)."""
    text = resp.get_data(as_text=True)
    shown = re.findall(r'<div class="toast-body">(.*?)</div>', text, re.S)
    shown += re.findall(r'role="alert">(.*?)</div>', text, re.S)
    shown += re.findall(r"<h1>(.*?)</h1>", text, re.S)
    blank = [re.sub("|".join(map(re.escape, ids.values())), "<id>", s.strip()) for s in shown]
    return resp.status_code, blank


def test_studio_forms_treat_another_tenants_ids_as_made_up(app):
    world = build_world(app)
    real = _acme_ids(app, world)
    fake = _made_up(real)
    forms = {r.endpoint: r for r in app.url_map.iter_rules()
             if r.rule.startswith("/studio") and "POST" in (r.methods or set())}
    missing = set(forms) - set(CASES) - set(NO_IDS) - NOT_POSTED
    assert not missing, f"Studio forms without a cross-tenant case: {sorted(missing)}"
    before = snapshot(app, world.acme_id)
    c = _studio(app, world)
    csrf = _csrf(c.get("/studio/").get_data(as_text=True))
    problems = []
    for endpoint, (params, fields) in sorted(CASES.items()):
        rule = forms[endpoint]
        seen = []
        for ids in (real, fake):
            url = rule.build(_fill(params, ids), append_unknown=False)[1]
            resp = c.post(url, data={**_fill(fields, ids), "csrf_token": csrf}, follow_redirects=True)
            seen.append(_seen(resp, {**real, **fake}))
        (status, shown), made_up = seen
        if status >= 500 or seen[0] != made_up:
            problems.append(f"{endpoint}: alice's ids -> {seen[0]}; made-up ids -> {made_up}")
        if any("Internal error" in s for s in shown):
            problems.append(f"{endpoint}: {shown}")
    for endpoint, fields in NO_IDS.items():
        resp = c.post(forms[endpoint].rule, data={**fields, "csrf_token": csrf}, follow_redirects=True)
        if resp.status_code >= 500:
            problems.append(f"{endpoint}: {resp.status_code}")
    assert not problems, "\n".join(problems)
    assert snapshot(app, world.acme_id) == before
