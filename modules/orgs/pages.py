"""The public invitation page: `/invite/<token>`.

The token is the only key: the invitation is found by its hash across tenants, then the
invited person signs in (or signs up) and `orgs.invitation.accept` runs through the
executor as them (trigger "web"), or they decline with `orgs.invitation.decline`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, render_template, request
from limits import parse
from sqlalchemy import select

from bunbase import identity, signin, tenancy_cache, throttle
from bunbase.clock import clock
from bunbase.context import ANONYMOUS, Actor, TenantRef
from bunbase.db import db
from bunbase.models import User
from bunbase.redis_conn import rate_limiter
from bunbase.tenancy import tenant_scope, unscoped
from modules.orgs.models import Invitation, Organization
from modules.orgs.services import effective_status
from modules.rbac.models import Role
from studio.runner import error_message, run_as

blueprint = Blueprint("orgs_pages", __name__, template_folder="templates")

SIGNUP_ACTION = "users.user.signup"
SIGN_UP_LIMIT = parse("10/minute")


@dataclass(frozen=True)
class InviteView:
    """A snapshot of the invitation for the page (no ORM objects across commits)."""

    tenant: TenantRef
    email: str
    status: str
    org_name: str
    role_key: str
    role_name: str
    inviter: str | None
    expires_at: datetime


def _load(token: str) -> InviteView | None:
    with unscoped():
        inv = db.session.scalar(select(Invitation).where(Invitation.token_hash == identity.token_hash(token)))
        if inv is None:
            return None
        org = db.session.get(Organization, inv.org_id)
        role = db.session.get(Role, inv.role_id)
        inviter = db.session.get(User, inv.invited_by) if inv.invited_by else None
        view = InviteView(
            tenant=tenancy_cache.tenant_ref(inv.tenant_id),
            email=inv.email,
            status=effective_status(inv, clock.now()),
            org_name=org.name if org else "an organization",
            role_key=role.key if role else "member",
            role_name=role.name if role else "Member",
            inviter=(inviter.name or inviter.email) if inviter else None,
            expires_at=inv.expires_at,
        )
    db.session.rollback()  # nothing to keep; end the read transaction
    return view


def _actor(user: User) -> Actor:
    return Actor(
        kind="user",
        id=user.id,
        email=user.email,
        name=user.name,
        is_tenant_admin=user.is_tenant_admin,
        is_platform_operator=user.is_platform_operator,
    )


def _existing_actor(tenant: TenantRef, email: str) -> Actor | None:
    """The active user of the invitation's workspace with this email (no password: only
    for the account the page has just created)."""
    db.session.rollback()
    with tenant_scope(tenant.id):
        user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
        actor = _actor(user) if user is not None and user.is_active else None
    db.session.rollback()
    return actor


def _signed_in_actor(tenant: TenantRef, email: str) -> Actor | str:
    """Check the password through the one sign-in (`bunbase.signin`: the same lock-out as the
    API and Studio); the actor, or the error message to show."""
    db.session.rollback()
    with tenant_scope(tenant.id):
        try:
            user = signin.check_password(
                db.session,
                tenant_id=tenant.id,
                email=email,
                password=request.form.get("password", ""),
                ip=request.remote_addr,
                via="invitation",
            )
        except throttle.LockedOut as err:
            db.session.rollback()
            return f"Too many failed sign-ins. Try again in {err.retry_after} seconds."
        except signin.SignInFailed:
            db.session.rollback()
            return "Email or password is incorrect."
        actor = _actor(user)
        db.session.commit()  # the check may have upgraded the hash (the lock is taken here)
    return actor


def _too_many_attempts(token: str) -> bool:
    keys = ("invite-sign-up", request.remote_addr or "unknown", identity.token_hash(token)[:16])
    return not rate_limiter().hit(SIGN_UP_LIMIT, *keys)


def _accept(token: str, view: InviteView) -> str | None:
    """Sign in and accept; an error message, or None when it worked."""
    actor = _signed_in_actor(view.tenant, view.email)
    if isinstance(actor, str):
        return actor
    outcome = run_as("orgs.invitation.accept", {"token": token}, view.tenant, actor)
    return None if outcome.status == 200 else error_message(outcome)


def _signup(token: str, view: InviteView) -> str | None:
    """Create the account, then accept as it; an error message, or None when it worked."""
    if _too_many_attempts(token):
        return "Too many attempts. Wait a minute and try again."
    if _existing_actor(view.tenant, view.email) is not None:
        # signing up never signs in to an account that exists (the sign-up action answers
        # as if it had worked, to keep who has an account private)
        return "An account with this email already exists: sign in to accept."
    created = run_as(
        SIGNUP_ACTION,
        {
            "email": view.email,
            "password": request.form.get("password", ""),
            "name": request.form.get("name", "").strip(),
        },
        view.tenant,
        ANONYMOUS,
    )
    if created.status != 200:
        return error_message(created)
    actor = _existing_actor(view.tenant, view.email)
    if actor is None:
        return "The account was created but cannot be used yet; sign in to accept."
    outcome = run_as("orgs.invitation.accept", {"token": token}, view.tenant, actor)
    return None if outcome.status == 200 else error_message(outcome)


def _decline(token: str, view: InviteView) -> str | None:
    outcome = run_as("orgs.invitation.decline", {"token": token}, view.tenant, ANONYMOUS)
    return None if outcome.status == 200 else error_message(outcome)


OPERATIONS = {"accept": _accept, "signup": _signup, "decline": _decline}


@blueprint.route("/invite/<token>", methods=["GET", "POST"])
def invite(token: str) -> Any:
    view = _load(token)
    if view is None:
        return render_template("orgs/invite.html", view=None, token=token), 404
    can_signup = current_app.extensions["bunbase"].registry.get(SIGNUP_ACTION) is not None
    op = request.form.get("op", "") if request.method == "POST" else ""
    if op == "signup" and not can_signup:
        op = ""
    error, done = None, None
    if op in OPERATIONS and view.status == "pending" and view.tenant.status == "active":
        error = OPERATIONS[op](token, view)
        if error is None:
            done = "declined" if op == "decline" else "accepted"
            view = _load(token) or view
    return render_template(
        "orgs/invite.html",
        view=view,
        token=token,
        can_signup=can_signup,
        error=error,
        done=done,
        mode="signup" if op == "signup" else "signin",
        name=request.form.get("name", ""),
    )
