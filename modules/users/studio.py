"""Users in Studio: the list (search, filters, counts, keyset pages) and a user's detail
(sessions, orgs and roles, API keys, history). Every change goes through
`studio.runner.run_action`, so it is validated, authorized and audited like an API call.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import or_, select
from werkzeug.wrappers import Response

from bunbase.clock import clock
from bunbase.db import db
from bunbase.models import AuditEntry, User
from modules.auth.services import describe_device, live_sessions
from modules.users.services import user_counts, user_filters
from studio.paging import keyset
from studio.runner import error_message, run_action
from studio.views import htmx

blueprint = Blueprint("users_studio", __name__, template_folder="templates")

FILTERS = ("q", "status", "verified", "role")


def _loaded(name: str) -> bool:
    return name in current_app.extensions["bunbase"].registry.modules


@blueprint.get("/users")
def users() -> str:
    f = {k: request.args.get(k, "").strip() for k in FILTERS}
    stmt = select(User).where(
        *user_filters(q=f["q"], status=f["status"], verified=f["verified"], role=f["role"])
    )
    page = keyset(db.session, stmt, User.id, "users_studio.users")
    context = {"page": page, "filters": f, "counts": user_counts(db.session)}
    if htmx and htmx.target == "users-results":
        return render_template("users/_users_results.html", **context)
    return render_template("users/users.html", **context)


def _memberships(user_id: str) -> list[dict[str, Any]] | None:
    """The user's orgs and roles, or None when the rbac module is not loaded."""
    if not _loaded("rbac"):
        return None
    from modules.rbac.models import Membership

    rows = db.session.scalars(
        select(Membership)
        .where(Membership.principal_type == "user", Membership.principal_id == user_id)
        .order_by(Membership.created_at)
    ).all()
    orgs: dict[str, Any] = {}
    if _loaded("orgs") and rows:
        from modules.orgs.models import Organization

        orgs = {
            o.id: o
            for o in db.session.scalars(
                select(Organization).where(Organization.id.in_([m.org_id for m in rows]))
            )
        }
    return [{"membership": m, "org": orgs.get(m.org_id), "role": m.role, "org_id": m.org_id} for m in rows]


def _api_keys(user_id: str) -> list[Any] | None:
    """Keys owned by the user, or None when the api_keys module is absent or unfinished."""
    if not _loaded("api_keys"):
        return None
    try:
        from modules.api_keys.models import ApiKey

        return list(
            db.session.scalars(
                select(ApiKey)
                .where(ApiKey.owner_type == "user", ApiKey.owner_id == user_id)
                .order_by(ApiKey.id.desc())
                .limit(50)
            )
        )
    except Exception:  # noqa: BLE001 - another module's tables may not be migrated yet
        db.session.rollback()
        return None


@blueprint.get("/users/<user_id>")
def users_detail(user_id: str) -> str:
    # last-seen stamps are written in batches: write them, then end the read transaction
    # sign-in opened (on SQLite its snapshot predates the flush)
    db.session.rollback()
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    sessions = live_sessions(db.session, user.id)
    history = db.session.scalars(
        select(AuditEntry)
        .where(
            or_(
                AuditEntry.target_id == user.id,
                (AuditEntry.actor_id == user.id) & (AuditEntry.target_type == "user"),
            )
        )
        .order_by(AuditEntry.id.desc())
        .limit(25)
    ).all()
    return render_template(
        "users/user_detail.html",
        user=user,
        sessions=sessions,
        memberships=_memberships(user.id),
        api_keys=_api_keys(user.id),
        history=history,
        device=describe_device,
        now=clock.now(),
    )


def _run(name: str, payload: dict[str, Any], success: str, user_id: str) -> Response:
    outcome = run_action(name, payload)
    if outcome.status == 200:
        flash(success, "success")
    else:
        flash(error_message(outcome), "error")
    return redirect(url_for("users_studio.users_detail", user_id=user_id))


@blueprint.post("/users/<user_id>/disable")
def users_disable(user_id: str) -> Response:
    return _run(
        "users.user.disable",
        {"userId": user_id},
        "User disabled; their sessions were signed out.",
        user_id,
    )


@blueprint.post("/users/<user_id>/enable")
def users_enable(user_id: str) -> Response:
    return _run("users.user.enable", {"userId": user_id}, "User enabled.", user_id)


@blueprint.post("/users/<user_id>/sessions/<session_id>/revoke")
def users_revoke_session(user_id: str, session_id: str) -> Response:
    return _run(
        "users.session.revoke",
        {"userId": user_id, "sessionId": session_id},
        "Session signed out.",
        user_id,
    )


@blueprint.post("/users/<user_id>/sessions/revoke-all")
def users_revoke_all(user_id: str) -> Response:
    return _run("users.session.revoke_all", {"userId": user_id}, "All sessions signed out.", user_id)
