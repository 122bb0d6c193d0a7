"""`/v1/auth/*`: sign in and out, who am I, and the caller's own sessions."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from pydantic import Field

from bunbase import Context, Contract, Empty, action, guards, triggers
from bunbase.clock import clock
from bunbase.contracts import Email, Timestamp
from bunbase.models import AuthSession
from modules.auth import services


class LoginInput(Contract):
    email: Email
    password: str = Field(min_length=1, max_length=1024)


class LoginOutput(Contract):
    token: str
    token_type: str = "bearer"
    expires_at: Timestamp
    user_id: str
    tenant_id: str


class LogoutOutput(Contract):
    revoked: bool


@action(
    name="auth.session.login",
    input=LoginInput,
    output=LoginOutput,
    triggers=[triggers.api("POST", "/login")],
    # a flood guard on every attempt; failed attempts are also limited per account and per
    # IP (modules/auth/throttle.py): 429 with Retry-After
    guards=[guards.rate_limit("30/minute", per="ip")],
    public=True,
    description=(
        "Exchange email and password for a bearer session token (a new token and session "
        "on every sign-in). 5 failures for one email in 15 minutes, or 20 from one IP, "
        "answer 429 with Retry-After until the window passes."
    ),
)
def login(input: LoginInput, ctx: Context) -> LoginOutput:
    ttl = timedelta(hours=current_app.extensions["bunbase"].settings.session_ttl_hours)
    token, expires_at, user = services.login(ctx, input.email, input.password, ttl)
    return LoginOutput(token=token, expires_at=expires_at, user_id=user.id, tenant_id=user.tenant_id)


@action(
    name="auth.session.logout",
    input=Empty,
    output=LogoutOutput,
    triggers=[triggers.api("POST", "/logout")],
    guards=[guards.authenticated()],
    description="Revoke the session whose token made this request.",
)
def logout(input: Empty, ctx: Context) -> LogoutOutput:
    services.logout(ctx)
    return LogoutOutput(revoked=True)


class WhoAmIOutput(Contract):
    actor_type: str
    user_id: str | None
    email: str | None
    tenant_id: str
    tenant_slug: str


@action(
    name="auth.session.whoami",
    input=Empty,
    output=WhoAmIOutput,
    triggers=[triggers.api("GET", "/me")],
    guards=[guards.authenticated()],
    description="Who the caller is, as the platform sees it (no database work beyond auth).",
)
def whoami(input: Empty, ctx: Context) -> WhoAmIOutput:
    return WhoAmIOutput(
        actor_type=ctx.actor.kind,
        user_id=ctx.actor.id,
        email=ctx.actor.email,
        tenant_id=ctx.tenant.id,
        tenant_slug=ctx.tenant.slug,
    )


# -- sessions ------------------------------------------------------------------------
class SessionOut(Contract):
    session_id: str
    kind: str
    device: str
    user_agent: str | None
    ip: str | None
    created_at: Timestamp
    last_seen_at: Timestamp
    expires_at: Timestamp
    current: bool

    @classmethod
    def of(cls, record: AuthSession, current_id: str | None = None) -> SessionOut:
        current = record.id == current_id
        return cls(
            session_id=record.id,
            kind=record.kind,
            device=services.describe_device(record.user_agent),
            user_agent=record.user_agent,
            ip=record.ip,
            created_at=record.created_at,
            # the current request is the latest use (touches are written in batches)
            last_seen_at=clock.now() if current else record.last_seen_at,
            expires_at=record.expires_at,
            current=current,
        )


class SessionList(Contract):
    items: list[SessionOut]


class SessionRef(Contract):
    session_id: str = Field(min_length=1, max_length=40)


class RevokeOutput(Contract):
    session_id: str
    revoked: bool


class RevokeAllInput(Contract):
    keep_current: bool = False


class RevokeAllOutput(Contract):
    revoked: int
    kept_session_id: str | None


@action(
    name="auth.session.list",
    input=Empty,
    output=SessionList,
    triggers=[triggers.api("GET", "/sessions")],
    guards=[guards.authenticated()],
    description="The caller's live sessions: device, IP, created, last seen, current flag.",
)
def list_sessions(input: Empty, ctx: Context) -> SessionList:
    user_id = services.require_user(ctx)
    records = services.live_sessions(ctx.db, user_id)
    return SessionList(items=[SessionOut.of(r, ctx.actor.session_id) for r in records])


@action(
    name="auth.session.revoke",
    input=SessionRef,
    output=RevokeOutput,
    triggers=[triggers.api("POST", "/sessions/{sessionId}/revoke")],
    guards=[guards.authenticated()],
    description="Sign one of your own sessions out (anyone else's id is 404).",
)
def revoke_session(input: SessionRef, ctx: Context) -> RevokeOutput:
    record = services.get_own_session(ctx, input.session_id)
    services.revoke_session(ctx, record, action="auth.session.revoke")
    return RevokeOutput(session_id=record.id, revoked=True)


@action(
    name="auth.session.revoke_all",
    input=RevokeAllInput,
    output=RevokeAllOutput,
    triggers=[triggers.api("POST", "/sessions/revoke-all")],
    guards=[guards.authenticated()],
    description="Sign out every session of yours; `keepCurrent: true` keeps this one.",
)
def revoke_all_sessions(input: RevokeAllInput, ctx: Context) -> RevokeAllOutput:
    user_id = services.require_user(ctx)
    keep = ctx.actor.session_id if input.keep_current else None
    revoked = services.revoke_user_sessions(ctx, user_id, keep=keep, action="auth.session.revoke_all")
    return RevokeAllOutput(revoked=len(revoked), kept_session_id=keep)
