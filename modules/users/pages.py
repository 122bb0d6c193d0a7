"""Public pages behind the links in verification and reset mails.

`/verify-email/<token>` and `/reset-password/<token>` find the token by its hash across
tenants, then run `users.user.verify_email` / `users.password.reset` through the executor
(trigger "web"), exactly as the API does. Opening a link changes nothing: a mail scanner
that follows it does not spend the token; the button (a POST with CSRF) does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template, request
from sqlalchemy import select

from bunbase import identity, tenancy_cache
from bunbase.clock import clock
from bunbase.context import ANONYMOUS, TenantRef
from bunbase.db import db
from bunbase.tenancy import unscoped
from modules.users.models import UserToken
from modules.users.services import RESET, VERIFY
from studio.runner import error_message, run_as

blueprint = Blueprint("users_pages", __name__, template_folder="templates")


@dataclass(frozen=True)
class TokenView:
    tenant: TenantRef
    email: str
    usable: bool  # unused, not replaced, not expired


def _load(token: str, purpose: str) -> TokenView | None:
    with unscoped():
        stmt = select(UserToken).where(UserToken.token_hash == identity.token_hash(token))
        record = db.session.scalar(stmt)
        view = None
        if record is not None and record.purpose == purpose:
            usable = record.used_at is None and record.revoked_at is None and record.expires_at > clock.now()
            view = TokenView(tenancy_cache.tenant_ref(record.tenant_id), record.email, usable)
    db.session.rollback()  # a read only; end the transaction
    return view


@blueprint.route("/verify-email/<token>", methods=["GET", "POST"])
def verify_email(token: str) -> Any:
    view = _load(token, VERIFY)
    error, done = None, False
    if view is not None and request.method == "POST":
        outcome = run_as("users.user.verify_email", {"token": token}, view.tenant, ANONYMOUS)
        done = outcome.status == 200
        error = None if done else error_message(outcome)
    status = 404 if view is None else 200
    return render_template("users/verify_email.html", view=view, token=token, error=error, done=done), status


@blueprint.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> Any:
    view = _load(token, RESET)
    error, done = None, False
    if view is not None and request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            error = "The two passwords differ."
        else:
            outcome = run_as(
                "users.password.reset", {"token": token, "newPassword": password}, view.tenant, ANONYMOUS
            )
            done = outcome.status == 200
            error = None if done else error_message(outcome)
    status = 404 if view is None else 200
    page = render_template("users/reset_password.html", view=view, token=token, error=error, done=done)
    return page, status
