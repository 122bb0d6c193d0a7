"""Organizations and memberships in Studio. Reads query the tenant's tables; every change
goes through `studio.runner.run_action`, so it is validated, authorized and audited.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import Select, func, or_, select

from bunbase.clock import clock
from bunbase.db import db
from bunbase.executor import Outcome
from bunbase.models import User
from modules.orgs.models import Invitation, Organization
from modules.orgs.services import effective_status
from modules.rbac.models import Membership, Role, RoleSet
from modules.rbac.services import list_roles
from studio.paging import keyset
from studio.runner import error_message, run_action
from studio.views import htmx

blueprint = Blueprint("orgs_studio", __name__, template_folder="templates")

INVITATION_STATUSES = ["pending", "accepted", "declined", "revoked", "expired"]


# -- helpers -------------------------------------------------------------------------
def _args(*names: str) -> dict[str, str]:
    return {k: request.args.get(k, "").strip() for k in names}


def _org(org_id: str) -> Organization:
    org = db.session.get(Organization, org_id)
    if org is None:
        abort(404)
    return org


def _users(ids: Iterable[str | None]) -> dict[str, User]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(wanted)))}


def _count(stmt: Select[Any]) -> int:
    return db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def _counts_by(column: Any, *where: Any) -> dict[str, int]:
    rows = db.session.execute(select(column, func.count()).where(*where).group_by(column)).all()
    return {key: n for key, n in rows}


def _role_set(org: Organization) -> RoleSet | None:
    if org.role_set_id:
        found = db.session.get(RoleSet, org.role_set_id)
        if found is not None:
            return found
    return db.session.scalar(select(RoleSet).where(RoleSet.is_default.is_(True)))


def _offered_roles(org: Organization) -> list[Role]:
    rs = _role_set(org)
    if rs is None:
        return list_roles(db.session)
    return sorted((e.role for e in rs.entries), key=lambda r: (not r.is_system, r.name))


def _ok(outcome: Outcome) -> bool:
    return outcome.status == 200


def _flash(outcome: Outcome, success: str) -> bool:
    if _ok(outcome):
        flash(success, "success")
        return True
    flash(error_message(outcome), "error")
    return False


def _toast(resp: Response, message: str, category: str) -> Response:
    resp.headers["HX-Trigger"] = json.dumps({"toast": {"message": message, "category": category}})
    return resp


def _tab_counts(org: Organization) -> dict[str, int]:
    now = clock.now()
    return {
        "members": _count(select(Membership.id).where(Membership.org_id == org.id)),
        "pending": _count(
            select(Invitation.id).where(
                Invitation.org_id == org.id,
                Invitation.status == "pending",
                Invitation.expires_at > now,
            )
        ),
        "roles": len(_offered_roles(org)),
        "owners": _count(
            select(Membership.id)
            .join(Role, Role.id == Membership.role_id)
            .where(Membership.org_id == org.id, Role.key == "owner")
        ),
    }


def _org_context(org: Organization, tab: str) -> dict[str, Any]:
    owner = db.session.get(User, org.owner_id)
    return {"org": org, "owner": owner, "tab": tab, "counts": _tab_counts(org)}


# -- organizations -------------------------------------------------------------------
@blueprint.get("/orgs")
def orgs() -> str:
    f = _args("q", "owner", "size")
    stmt = select(Organization)
    if f["q"]:
        like = f"%{f['q']}%"
        stmt = stmt.where(
            or_(
                Organization.name.ilike(like),
                Organization.slug.ilike(like),
                Organization.id == f["q"],
            )
        )
    if f["owner"]:
        stmt = stmt.where(Organization.owner_id == f["owner"])
    if f["size"] in {"solo", "team"}:
        members = (
            select(Membership.org_id).group_by(Membership.org_id).having(func.count() > 1).scalar_subquery()
        )
        wanted = Organization.id.in_(members)
        stmt = stmt.where(wanted if f["size"] == "team" else ~wanted)
    page = keyset(db.session, stmt, Organization.id, "orgs_studio.orgs")
    ids = [o.id for o in page.rows]
    context: dict[str, Any] = {
        "page": page,
        "filters": f,
        "owners": _users(o.owner_id for o in page.rows),
        "member_counts": _counts_by(Membership.org_id, Membership.org_id.in_(ids)),
        "pending_counts": _counts_by(
            Invitation.org_id,
            Invitation.org_id.in_(ids),
            Invitation.status == "pending",
            Invitation.expires_at > clock.now(),
        ),
    }
    if htmx and htmx.target == "orgs-results":
        return render_template("orgs/_orgs_results.html", **context)
    owner_ids = db.session.scalars(select(Organization.owner_id).distinct()).all()
    context["owner_options"] = sorted(
        ((u.id, u.email) for u in _users(owner_ids).values()), key=lambda p: p[1]
    )
    context["kpis"] = {
        "orgs": _count(select(Organization.id)),
        "memberships": _count(select(Membership.id)),
        "pending": _count(
            select(Invitation.id).where(Invitation.status == "pending", Invitation.expires_at > clock.now())
        ),
        "custom_roles": _count(select(Role.id).where(Role.is_system.is_(False))),
    }
    return render_template("orgs/orgs.html", **context)


@blueprint.route("/orgs/new", methods=["GET", "POST"])
def orgs_new() -> Any:
    form = {k: request.form.get(k, "").strip() for k in ("name", "slug", "owner_id")}
    error = None
    if request.method == "POST":
        payload = {"name": form["name"], "slug": form["slug"] or None}
        if form["owner_id"]:
            payload["ownerId"] = form["owner_id"]
        outcome = run_action("orgs.org.create", payload)
        if _ok(outcome):
            data = outcome.body["data"]
            flash(f"Organization {data['name']} created.", "success")
            return redirect(url_for("orgs_studio.orgs_detail", org_id=data["orgId"]))
        error = error_message(outcome)
    users = db.session.scalars(
        select(User).where(User.is_active.is_(True)).order_by(User.email).limit(1000)
    ).all()
    return render_template("orgs/org_new.html", form=form, error=error, users=users)


@blueprint.get("/orgs/<org_id>")
def orgs_detail(org_id: str) -> str:
    org = _org(org_id)
    f = _args("q", "role")
    stmt = select(Membership).where(Membership.org_id == org.id)
    if f["role"]:
        stmt = stmt.join(Role, Role.id == Membership.role_id).where(Role.key == f["role"])
    if f["q"]:
        like = f"%{f['q']}%"
        stmt = stmt.join(
            User, (User.id == Membership.principal_id) & (Membership.principal_type == "user")
        ).where(or_(User.email.ilike(like), User.name.ilike(like)))
    page = keyset(db.session, stmt, Membership.id, "orgs_studio.orgs_detail")
    context = {
        **_org_context(org, "members"),
        "page": page,
        "filters": f,
        "users": _users(m.principal_id for m in page.rows),
        "roles": _offered_roles(org),
    }
    if htmx and htmx.target == "members-results":
        return render_template("orgs/_members_results.html", **context)
    return render_template("orgs/org_members.html", **context)


def _member_row(org: Organization, user_id: str) -> str:
    m = db.session.scalar(
        select(Membership).where(
            Membership.org_id == org.id,
            Membership.principal_type == "user",
            Membership.principal_id == user_id,
        )
    )
    if m is None:
        return ""
    return render_template(
        "orgs/_member_row.html",
        org=org,
        m=m,
        users=_users([user_id]),
        roles=_offered_roles(org),
    )


@blueprint.post("/orgs/<org_id>/members/<user_id>/role")
def orgs_member_role(org_id: str, user_id: str) -> Any:
    org = _org(org_id)
    role = request.form.get("role", "")
    outcome = run_action("orgs.member.update_role", {"orgId": org.id, "userId": user_id, "role": role})
    user = db.session.get(User, user_id)
    who = user.email if user else user_id
    message = f"{who} is now {role}." if _ok(outcome) else error_message(outcome)
    if not htmx:
        flash(message, "success" if _ok(outcome) else "error")
        return redirect(url_for("orgs_studio.orgs_detail", org_id=org.id))
    resp = Response(_member_row(org, user_id))
    return _toast(resp, message, "success" if _ok(outcome) else "error")


@blueprint.post("/orgs/<org_id>/members/<user_id>/remove")
def orgs_member_remove(org_id: str, user_id: str) -> Any:
    org = _org(org_id)
    user = db.session.get(User, user_id)
    outcome = run_action("orgs.member.remove", {"orgId": org.id, "userId": user_id})
    _flash(outcome, f"{user.email if user else user_id} was removed from {org.name}.")
    return redirect(url_for("orgs_studio.orgs_detail", org_id=org.id))


# -- invitations ---------------------------------------------------------------------
@blueprint.get("/orgs/<org_id>/invitations")
def orgs_invitations(org_id: str) -> str:
    org = _org(org_id)
    f = _args("q", "status")
    now = clock.now()
    stmt = select(Invitation).where(Invitation.org_id == org.id)
    if f["status"] == "expired":
        stmt = stmt.where(Invitation.status == "pending", Invitation.expires_at <= now)
    elif f["status"] == "pending":
        stmt = stmt.where(Invitation.status == "pending", Invitation.expires_at > now)
    elif f["status"]:
        stmt = stmt.where(Invitation.status == f["status"])
    if f["q"]:
        stmt = stmt.where(Invitation.email.ilike(f"%{f['q']}%"))
    page = keyset(db.session, stmt, Invitation.id, "orgs_studio.orgs_invitations")
    context = {
        **_org_context(org, "invitations"),
        "page": page,
        "filters": f,
        "statuses": INVITATION_STATUSES,
        "status_of": {i.id: effective_status(i, now) for i in page.rows},
        "inviters": _users(i.invited_by for i in page.rows),
        "role_names": {r.id: r for r in list_roles(db.session)},
        "roles": _offered_roles(org),
        "default_role": _default_member_role_key(org),
    }
    if htmx and htmx.target == "invitations-results":
        return render_template("orgs/_invitations_results.html", **context)
    return render_template("orgs/org_invitations.html", **context)


def _default_member_role_key(org: Organization) -> str:
    rs = _role_set(org)
    entry = next((e for e in (rs.entries if rs else []) if e.is_default_member_role), None)
    return entry.role.key if entry else "member"


@blueprint.post("/orgs/<org_id>/invitations")
def orgs_invite(org_id: str) -> Any:
    org = _org(org_id)
    email = request.form.get("email", "").strip()
    role = request.form.get("role", "").strip() or None
    outcome = run_action("orgs.invitation.create", {"orgId": org.id, "email": email, "role": role})
    _flash(outcome, f"Invitation sent to {email}.")
    return redirect(url_for("orgs_studio.orgs_invitations", org_id=org.id))


@blueprint.post("/orgs/<org_id>/invitations/<invitation_id>/<verb>")
def orgs_invitation_act(org_id: str, invitation_id: str, verb: str) -> Any:
    if verb not in {"revoke", "resend"}:
        abort(404)
    org = _org(org_id)
    inv = db.session.get(Invitation, invitation_id)
    if inv is None or inv.org_id != org.id:
        abort(404)
    email = inv.email
    outcome = run_action(f"orgs.invitation.{verb}", {"orgId": org.id, "invitationId": invitation_id})
    done = {
        "revoke": f"The invitation for {email} was revoked.",
        "resend": f"A new invitation link was sent to {email}.",
    }
    _flash(outcome, done[verb])
    return redirect(url_for("orgs_studio.orgs_invitations", org_id=org.id))


# -- roles offered -------------------------------------------------------------------
@blueprint.get("/orgs/<org_id>/roles")
def orgs_roles(org_id: str) -> str:
    org = _org(org_id)
    rs = _role_set(org)
    entries = sorted(rs.entries if rs else [], key=lambda e: (not e.role.is_system, e.role.name))
    return render_template(
        "orgs/org_roles.html",
        **_org_context(org, "roles"),
        role_set=rs,
        entries=entries,
        held=_counts_by(Membership.role_id, Membership.org_id == org.id),
        is_default_set=rs is not None and rs.is_default,
    )


# -- memberships across the workspace ------------------------------------------------
@blueprint.get("/memberships")
def memberships() -> str:
    f = _args("q", "org", "role")
    stmt = select(Membership)
    if f["org"]:
        stmt = stmt.where(Membership.org_id == f["org"])
    if f["role"]:
        stmt = stmt.join(Role, Role.id == Membership.role_id).where(Role.key == f["role"])
    if f["q"]:
        like = f"%{f['q']}%"
        stmt = stmt.join(
            User, (User.id == Membership.principal_id) & (Membership.principal_type == "user")
        ).where(or_(User.email.ilike(like), User.name.ilike(like)))
    page = keyset(db.session, stmt, Membership.id, "orgs_studio.memberships")
    org_ids = {m.org_id for m in page.rows}
    context: dict[str, Any] = {
        "page": page,
        "filters": f,
        "users": _users(m.principal_id for m in page.rows),
        "orgs_by_id": {
            o.id: o for o in db.session.scalars(select(Organization).where(Organization.id.in_(org_ids)))
        },
    }
    if htmx and htmx.target == "memberships-results":
        return render_template("orgs/_memberships_results.html", **context)
    context["org_options"] = [
        (o.id, o.name)
        for o in db.session.scalars(select(Organization).order_by(Organization.name).limit(500))
    ]
    context["role_options"] = [(r.key, r.name) for r in list_roles(db.session)]
    return render_template("orgs/memberships.html", **context)
