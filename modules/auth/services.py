"""Sign-in, sign-out and sessions. The only place that creates or revokes sessions."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select

from bunbase import Context, NotFound, Unauthenticated, identity, signin
from bunbase.clock import clock
from bunbase.db import DBSession
from bunbase.errors import Forbidden
from bunbase.models import AuthSession, User


def login(ctx: Context, email: str, password: str, ttl: timedelta) -> tuple[str, datetime, User]:
    """Check the password (`bunbase.signin`: the lock-out and answers every door shares),
    then open a new API session."""
    user = signin.check_password(
        ctx.db,
        tenant_id=ctx.tenant.id,
        email=email,
        password=password,
        ip=ctx.request.ip,
        via="api",
        trace_id=ctx.trace_id,
        run_id=ctx.run_id,
    )
    token, record = identity.create_session(
        ctx.db, user, ttl=ttl, kind="api", ip=ctx.request.ip, user_agent=ctx.request.user_agent
    )
    ctx.db.flush()
    ctx.audit.record(
        action="auth.session.login",
        target_type="user",
        target_id=user.id,
        diff={"after": {"session": record.id, "ip": ctx.request.ip}},
    )
    return token, record.expires_at, user


def logout(ctx: Context) -> None:
    if ctx.actor.session_id is None:
        raise Unauthenticated("Only a session token can be signed out")
    record = ctx.db.get(AuthSession, ctx.actor.session_id)
    if record is not None:
        identity.revoke(record)
    ctx.audit.record(action="auth.session.logout", target_type="session", target_id=ctx.actor.session_id)


# -- sessions ------------------------------------------------------------------------
def require_user(ctx: Context) -> str:
    """Sessions belong to users: API keys and services have none."""
    if ctx.actor.kind != "user" or not ctx.actor.id:
        raise Forbidden("Only a signed-in user has sessions")
    return ctx.actor.id


def live_sessions(session: DBSession, user_id: str) -> list[AuthSession]:
    """A user's sessions that still work, most recently used first."""
    now = clock.now()
    return list(
        session.scalars(
            select(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .order_by(AuthSession.last_seen_at.desc(), AuthSession.id.desc())
        )
    )


def get_own_session(ctx: Context, session_id: str) -> AuthSession:
    """One of the caller's sessions; anyone else's (or an unknown id) is a 404."""
    user_id = require_user(ctx)
    record = ctx.db.get(AuthSession, session_id)
    if record is None or record.user_id != user_id:
        raise NotFound("Session not found")
    return record


def revoke_session(ctx: Context, record: AuthSession, *, action: str) -> bool:
    """Revoke one session; False if it had already ended."""
    if record.revoked_at is not None or record.expires_at <= clock.now():
        return False
    identity.revoke(record)
    ctx.audit.record(
        action=action,
        target_type="session",
        target_id=record.id,
        diff={"before": {"revoked": False}, "after": {"revoked": True, "user": record.user_id}},
    )
    return True


def revoke_user_sessions(
    ctx: Context, user_id: str, *, keep: str | None = None, action: str | None = None
) -> list[str]:
    """Revoke every live session of a user but `keep`; returns the revoked ids.

    With `action`, one audit entry records the lot; callers that audit a wider change
    (a password reset, disabling the account) put the ids in their own entry instead.
    """
    revoked = []
    for record in live_sessions(ctx.db, user_id):
        if record.id != keep:
            identity.revoke(record)
            revoked.append(record.id)
    if action is not None:
        ctx.audit.record(
            action=action,
            target_type="user",
            target_id=user_id,
            diff={"after": {"revoked_sessions": revoked, "kept_session": keep}},
        )
    return revoked


_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("python-requests", "Python requests"),
    ("Werkzeug/", "Werkzeug test client"),
)
_SYSTEMS = (
    ("Windows", "Windows"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Android", "Android"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe_device(user_agent: str | None) -> str:
    """A short label for a user agent: "Firefox on Linux", "curl", "Unknown device"."""
    ua = user_agent or ""
    if not ua.strip():
        return "Unknown device"
    browser = next((name for marker, name in _BROWSERS if marker in ua), None)
    system = next((name for marker, name in _SYSTEMS if marker in ua), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return str(browser or system)
    return re.split(r"[/\s(]", ua.strip(), maxsplit=1)[0][:60] or "Unknown device"
