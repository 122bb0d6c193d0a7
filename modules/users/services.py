"""User services: sign-up, email verification, passwords, and administration.

The only code that changes users and their tokens. Actions and Studio call these; session
revocation itself lives in modules.auth.services.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from bunbase import (
    BadRequest,
    Conflict,
    Context,
    Forbidden,
    NotFound,
    cursors,
    identity,
    mail,
    redis_conn,
    throttle,
)
from bunbase.db import DBSession, is_unique_violation
from bunbase.ids import new_id
from bunbase.models import User
from modules.auth import services as auth_services
from modules.users.models import UserToken

VERIFY = "verify_email"
RESET = "reset"
TTL = {VERIFY: timedelta(hours=24), RESET: timedelta(hours=1)}
PREFIX = {VERIFY: "bbv_", RESET: "bbr_"}
#: at most this many reset mails per account per hour; more are dropped silently
RESETS_PER_HOUR = 3


def invalid_token() -> BadRequest:
    """One answer for unknown, used, replaced and expired tokens (no oracle)."""
    return BadRequest(
        "This link is invalid or has expired",
        details=[{"field": "token", "message": "invalid, used or expired", "type": "invalid"}],
    )


def _status(user: User) -> dict[str, Any]:
    """The audited, non-secret view of a user."""
    return {
        "email": user.email,
        "name": user.name,
        "status": "active" if user.is_active else "disabled",
        "email_verified": user.email_verified_at is not None,
    }


# -- tokens --------------------------------------------------------------------------
def issue_token(ctx: Context, user: User, purpose: str) -> str:
    """A fresh token for `purpose`; earlier unused ones of the same purpose stop working."""
    now = ctx.now()
    ctx.db.execute(
        update(UserToken)
        .where(
            UserToken.user_id == user.id,
            UserToken.purpose == purpose,
            UserToken.used_at.is_(None),
            UserToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    token = identity.new_token(PREFIX[purpose])
    ctx.db.add(
        UserToken(
            tenant_id=ctx.tenant.id,
            user_id=user.id,
            purpose=purpose,
            email=user.email,
            token_hash=identity.token_hash(token),
            ip=ctx.request.ip,
            created_at=now,
            expires_at=now + TTL[purpose],
        )
    )
    return token


def consume_token(ctx: Context, token: str, purpose: str) -> tuple[UserToken, User]:
    """Spend a token: it must exist, be of this purpose, unused, current and unexpired."""
    if not token.startswith(PREFIX[purpose]):
        raise invalid_token()
    record = ctx.db.scalar(select(UserToken).where(UserToken.token_hash == identity.token_hash(token)))
    if (
        record is None
        or record.purpose != purpose
        or record.used_at is not None
        or record.revoked_at is not None
        or record.expires_at <= ctx.now()
    ):
        raise invalid_token()
    user = ctx.db.get(User, record.user_id)
    if user is None or user.email != record.email:
        raise invalid_token()
    # single use even under concurrency: only one transaction flips used_at from NULL
    spent = ctx.db.execute(
        update(UserToken)
        .where(UserToken.id == record.id, UserToken.used_at.is_(None))
        .values(used_at=ctx.now())
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise invalid_token()
    ctx.db.refresh(record)
    return record, user


def _link(path: str, token: str) -> str:
    base = current_app.extensions["bunbase"].settings.public_url.rstrip("/")
    return f"{base}/{path}/{token}"


def _send_verification(ctx: Context, user: User, token: str) -> None:
    hours = int(TTL[VERIFY].total_seconds() // 3600)
    mail.send(
        ctx,
        to=user.email,
        kind="verify_email",
        subject=f"Confirm your email for {ctx.tenant.name}",
        text=(
            f"Hello {user.name or user.email},\n\n"
            f"Open this link to confirm that {user.email} is your address:\n\n"
            "${link}\n\n"
            "(In an app, the code is ${code}.)\n"
            f"The link works once and expires in {hours} hours. If you did not sign up, "
            "ignore this message.\n"
        ),
        secrets={"link": _link("verify-email", token), "code": token},
        secret_ttl=TTL[VERIFY],
    )


def _send_reset(ctx: Context, user: User, token: str) -> None:
    mail.send(
        ctx,
        to=user.email,
        kind="password_reset",
        subject=f"Reset your password for {ctx.tenant.name}",
        text=(
            f"Hello {user.name or user.email},\n\n"
            f"Someone asked to reset the password of {user.email}. Open this link to choose "
            "a new one:\n\n"
            "${link}\n\n"
            "(In an app, the reset code is ${code}.)\n"
            "The link works once and expires in 1 hour. If you did not ask for this, ignore "
            "this message: your password stays as it is.\n"
        ),
        secrets={"link": _link("reset-password", token), "code": token},
        secret_ttl=TTL[RESET],
    )


# -- sign-up and verification -------------------------------------------------------
def signup(ctx: Context, *, email: str, password: str, name: str) -> str:
    """Create the account and mail its verification code; return the new user's id.

    An email that already has an account gets the same answer — an id (one that names no
    account) after the same work — and its owner gets a mail saying someone tried, so a
    sign-up never tells whether an address is registered."""
    email = email.lower()
    if ctx.db.scalar(select(User.id).where(User.email == email)) is not None:
        return _signup_of_existing(ctx, email, password)
    user = User(
        tenant_id=ctx.tenant.id,
        email=email,
        name=name,
        password_hash=identity.hash_password(password),
        created_at=ctx.now(),
    )
    ctx.db.add(user)
    try:
        with ctx.db.begin_nested():
            ctx.db.flush()
    except IntegrityError as exc:  # a concurrent sign-up with the same email won
        if is_unique_violation(exc):
            return _signup_of_existing(ctx, email, password)
        raise
    _send_verification(ctx, user, issue_token(ctx, user, VERIFY))
    ctx.audit.record(
        action="users.user.signup",
        target_type="user",
        target_id=user.id,
        diff={"after": _status(user)},
    )
    ctx.logger.info("user signed up", user_id=user.id)
    return user.id


#: at most one "someone tried to sign up as you" mail per account per this many seconds
EXISTING_NOTICE_EVERY = 3600


def _signup_of_existing(ctx: Context, email: str, password: str) -> str:
    identity.hash_password(password)  # the work a real sign-up does: the same time
    user = ctx.db.scalar(select(User).where(User.email == email))
    assert user is not None
    key = f"bunbase:signup-notice:{ctx.tenant.id}:{user.id}"
    if redis_conn.client().set(key, "1", nx=True, ex=EXISTING_NOTICE_EVERY):
        _send_existing_notice(ctx, user)
    ctx.audit.record(
        action="users.user.signup_existing",
        target_type="user",
        target_id=user.id,
        diff={"after": {"email": email}},
        decision="allowed: answered as a new sign-up; the owner was told",
    )
    return new_id("usr")


def _send_existing_notice(ctx: Context, user: User) -> None:
    base = current_app.extensions["bunbase"].settings.public_url.rstrip("/")
    mail.send(
        ctx,
        to=user.email,
        kind="signup_existing",
        subject=f"Someone tried to sign up for {ctx.tenant.name} with your email",
        text=(
            f"Hello {user.name or user.email},\n\n"
            f"Someone tried to create an account on {ctx.tenant.name} with {user.email}, "
            "which already has one. If it was you, sign in instead; if you forgot your "
            f"password, ask for a reset (POST {base}/v1/users/password/reset-request).\n\n"
            "If it was not you, you can ignore this message: nothing changed on your account.\n"
        ),
    )


def verify_email(ctx: Context, token: str) -> User:
    _record, user = consume_token(ctx, token, VERIFY)
    before = _status(user)
    if user.email_verified_at is None:
        user.email_verified_at = ctx.now()
    ctx.audit.record(
        action="users.user.verify_email",
        target_type="user",
        target_id=user.id,
        diff={"before": before, "after": _status(user)},
    )
    return user


def resend_verification(ctx: Context, user: User) -> bool:
    """Mail a new verification code unless the address is already verified."""
    if user.email_verified_at is not None:
        return False
    _send_verification(ctx, user, issue_token(ctx, user, VERIFY))
    ctx.audit.record(action="users.user.resend_verification", target_type="user", target_id=user.id)
    return True


# -- passwords -----------------------------------------------------------------------
def change_password(ctx: Context, user: User, *, current: str, new: str) -> int:
    """Check the current password, set the new one, sign out the user's other sessions."""
    if not identity.verify_password(user, current):
        raise BadRequest(
            "The current password is incorrect",
            details=[{"field": "currentPassword", "message": "is incorrect", "type": "value_error"}],
        )
    if current == new:
        raise BadRequest(
            "The new password must differ from the current one",
            details=[{"field": "newPassword", "message": "same as current", "type": "value_error"}],
        )
    user.password_hash = identity.hash_password(new)
    revoked = auth_services.revoke_user_sessions(ctx, user.id, keep=ctx.actor.session_id)
    ctx.audit.record(
        action="users.user.change_password",
        target_type="user",
        target_id=user.id,
        diff={"after": {"password": "changed", "revoked_sessions": revoked}},
    )
    return len(revoked)


def request_reset(ctx: Context, email: str) -> bool:
    """Mail a reset code if an active account has this email. The caller never learns."""
    email = email.lower()
    user = ctx.db.scalar(select(User).where(User.email == email))
    sent = False
    if user is not None and user.is_active:
        recent = ctx.db.scalar(
            select(func.count())
            .select_from(UserToken)
            .where(
                UserToken.user_id == user.id,
                UserToken.purpose == RESET,
                UserToken.created_at > ctx.now() - timedelta(hours=1),
            )
        )
        if (recent or 0) < RESETS_PER_HOUR:
            _send_reset(ctx, user, issue_token(ctx, user, RESET))
            sent = True
    ctx.audit.record(
        action="users.password.request_reset",
        target_type="user",
        target_id=user.id if user is not None else None,
        diff={"after": {"email": email, "mailed": sent}},
    )
    return sent


def reset_password(ctx: Context, token: str, new_password: str) -> tuple[User, int]:
    _record, user = consume_token(ctx, token, RESET)
    if not user.is_active:
        raise invalid_token()
    before = _status(user)
    user.password_hash = identity.hash_password(new_password)
    if user.email_verified_at is None:  # the code reached the mailbox: the address works
        user.email_verified_at = ctx.now()
    revoked = auth_services.revoke_user_sessions(ctx, user.id)
    ctx.audit.record(
        action="users.password.reset",
        target_type="user",
        target_id=user.id,
        diff={
            "before": before,
            "after": {**_status(user), "password": "reset", "revoked_sessions": revoked},
        },
    )
    throttle.clear_account(ctx.tenant.id, user.email)
    return user, len(revoked)


# -- administration ------------------------------------------------------------------
def get_user(session: DBSession, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


def current_user(ctx: Context) -> User:
    if ctx.actor.kind != "user" or not ctx.actor.id:
        raise Forbidden("Only a signed-in user can do this")
    return get_user(ctx.db, ctx.actor.id)


@dataclass(frozen=True)
class UserPage:
    items: list[User]
    total: int
    next_cursor: str | None


def user_filters(
    *,
    q: str | None = None,
    status: str | None = None,
    verified: str | None = None,
    role: str | None = None,
) -> list[Any]:
    """Where clauses shared by the API list and the Studio page."""
    where: list[Any] = []
    if q:
        pattern = f"%{q.strip().lower()}%"
        where.append(or_(func.lower(User.email).like(pattern), func.lower(User.name).like(pattern)))
    if status == "active":
        where.append(User.is_active.is_(True))
    elif status == "disabled":
        where.append(User.is_active.is_(False))
    if verified == "yes":
        where.append(User.email_verified_at.is_not(None))
    elif verified == "no":
        where.append(User.email_verified_at.is_(None))
    if role == "admin":
        where.append(User.is_tenant_admin.is_(True))
    elif role == "operator":
        where.append(User.is_platform_operator.is_(True))
    elif role == "member":
        where += [User.is_tenant_admin.is_(False), User.is_platform_operator.is_(False)]
    return where


def list_users(
    session: DBSession,
    *,
    cursor: str | None = None,
    limit: int = 25,
    **filters: str | None,
) -> UserPage:
    """Newest first, keyset-paginated on the time-ordered id."""
    page = cursors.newest_first(
        session,
        select(User).where(*user_filters(**filters)),
        User.id,
        list_name="users",
        cursor=cursor,
        limit=limit,
    )
    return UserPage(page.items, page.total, page.next_cursor)


def user_counts(session: DBSession) -> dict[str, int]:
    """Totals for the Studio header: all, active, disabled, unverified, admins."""
    row = session.execute(
        select(
            func.count(),
            func.count().filter(User.is_active.is_(True)),
            func.count().filter(User.email_verified_at.is_(None)),
            func.count().filter(or_(User.is_tenant_admin, User.is_platform_operator)),
        ).select_from(User)
    ).one()
    total, active, unverified, admins = (int(v or 0) for v in row)
    return {
        "total": total,
        "active": active,
        "disabled": total - active,
        "unverified": unverified,
        "admins": admins,
    }


def _check_can_manage(ctx: Context, user: User) -> None:
    if user.id == ctx.actor.id:
        raise Conflict("You cannot disable or enable your own account")
    if user.is_platform_operator and not ctx.actor.is_platform_operator:
        raise Forbidden("Only a platform operator can change a platform operator's account")


def disable_user(ctx: Context, user: User) -> int:
    """Disable the account and sign out all its sessions. Returns how many were revoked."""
    _check_can_manage(ctx, user)
    if not user.is_active:
        return 0
    before = _status(user)
    user.is_active = False
    identity.forget_sessions()
    revoked = auth_services.revoke_user_sessions(ctx, user.id)
    ctx.audit.record(
        action="users.user.disable",
        target_type="user",
        target_id=user.id,
        diff={"before": before, "after": {**_status(user), "revoked_sessions": revoked}},
    )
    return len(revoked)


def enable_user(ctx: Context, user: User) -> None:
    _check_can_manage(ctx, user)
    if user.is_active:
        return
    before = _status(user)
    user.is_active = True
    ctx.audit.record(
        action="users.user.enable",
        target_type="user",
        target_id=user.id,
        diff={"before": before, "after": _status(user)},
    )
