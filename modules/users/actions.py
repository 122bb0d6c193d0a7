"""User actions: `/v1/users/*` (sign-up, verification, passwords, administration)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bunbase import Context, Contract, Empty, NotFound, action, guards, triggers
from bunbase.contracts import Cursor, Email, Timestamp
from bunbase.models import AuthSession, User
from modules.auth import services as auth_services
from modules.auth.actions import RevokeAllOutput, RevokeOutput, SessionList, SessionOut
from modules.users import services
from modules.users.guards import tenant_admin

Password = Field(min_length=10, max_length=1024)
TokenField = Field(min_length=8, max_length=200)
UserId = Field(min_length=1, max_length=40)


# -- contracts -----------------------------------------------------------------------
class SignupInput(Contract):
    email: Email
    password: str = Password
    name: str = Field(min_length=1, max_length=200)


class SignupOutput(Contract):
    user_id: str
    email: str


class TokenInput(Contract):
    token: str = TokenField


class VerifyOutput(Contract):
    user_id: str
    email: str
    email_verified_at: Timestamp


class ResendOutput(Contract):
    sent: bool


class ChangePasswordInput(Contract):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Password


class PasswordChanged(Contract):
    user_id: str
    revoked_sessions: int


class ResetRequestInput(Contract):
    email: Email


class Accepted(Contract):
    accepted: bool = True


class ResetInput(Contract):
    token: str = TokenField
    new_password: str = Password


class UserOut(Contract):
    user_id: str
    email: str
    name: str
    status: Literal["active", "disabled"]
    email_verified: bool
    email_verified_at: Timestamp | None
    is_tenant_admin: bool
    is_platform_operator: bool
    created_at: Timestamp

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(
            user_id=u.id,
            email=u.email,
            name=u.name,
            status="active" if u.is_active else "disabled",
            email_verified=u.email_verified_at is not None,
            email_verified_at=u.email_verified_at,
            is_tenant_admin=u.is_tenant_admin,
            is_platform_operator=u.is_platform_operator,
            created_at=u.created_at,
        )


class UserDetail(UserOut):
    active_sessions: int


class ListUsersInput(Contract):
    q: str | None = Field(default=None, max_length=200)
    status: Literal["active", "disabled"] | None = None
    verified: Literal["yes", "no"] | None = None
    role: Literal["admin", "operator", "member"] | None = None
    cursor: Cursor | None = None
    limit: int = Field(default=25, ge=1, le=100)


class UserList(Contract):
    items: list[UserOut]
    total: int
    next_cursor: str | None


class UserRef(Contract):
    user_id: str = UserId


class UserStatusOutput(Contract):
    user_id: str
    status: Literal["active", "disabled"]
    revoked_sessions: int = 0


class UserSessionRef(UserRef):
    session_id: str = Field(min_length=1, max_length=40)


# -- sign-up and verification -------------------------------------------------------
@action(
    name="users.user.signup",
    input=SignupInput,
    output=SignupOutput,
    triggers=[triggers.api("POST", "/signup")],
    guards=[guards.rate_limit("20/hour", per="ip")],
    public=True,
    description=(
        "Create an account in this tenant ({email, password (10+ chars), name} -> "
        "{userId, email}) and mail a verification code (single use, 24 h). An email that "
        "already has an account gets the same answer (its owner is mailed instead), so "
        "sign-up never tells who is registered. Sign in with POST /v1/auth/login."
    ),
)
def signup(input: SignupInput, ctx: Context) -> SignupOutput:
    user_id = services.signup(ctx, email=input.email, password=input.password, name=input.name)
    return SignupOutput(user_id=user_id, email=input.email.lower())


@action(
    name="users.user.verify_email",
    input=TokenInput,
    output=VerifyOutput,
    triggers=[triggers.api("POST", "/verify-email")],
    guards=[guards.rate_limit("30/minute", per="ip")],
    public=True,
    description="Confirm an email address with the code from the verification mail.",
)
def verify_email(input: TokenInput, ctx: Context) -> VerifyOutput:
    user = services.verify_email(ctx, input.token)
    assert user.email_verified_at is not None
    return VerifyOutput(user_id=user.id, email=user.email, email_verified_at=user.email_verified_at)


@action(
    name="users.user.resend_verification",
    input=Empty,
    output=ResendOutput,
    triggers=[triggers.api("POST", "/verify-email/resend")],
    guards=[guards.authenticated(), guards.rate_limit("5/hour")],
    description="Mail a new verification code to the signed-in user (earlier codes stop working).",
)
def resend_verification(input: Empty, ctx: Context) -> ResendOutput:
    return ResendOutput(sent=services.resend_verification(ctx, services.current_user(ctx)))


# -- passwords -----------------------------------------------------------------------
@action(
    name="users.user.change_password",
    input=ChangePasswordInput,
    output=PasswordChanged,
    triggers=[triggers.api("POST", "/password/change")],
    guards=[guards.authenticated(), guards.rate_limit("10/hour")],
    description="Change your password (current + new); your other sessions are signed out.",
)
def change_password(input: ChangePasswordInput, ctx: Context) -> PasswordChanged:
    user = services.current_user(ctx)
    revoked = services.change_password(ctx, user, current=input.current_password, new=input.new_password)
    return PasswordChanged(user_id=user.id, revoked_sessions=revoked)


@action(
    name="users.password.request_reset",
    input=ResetRequestInput,
    output=Accepted,
    triggers=[triggers.api("POST", "/password/reset-request")],
    guards=[guards.rate_limit("10/minute", per="ip")],
    public=True,
    description=(
        "Mail a password reset code (single use, 1 h) if the account exists. Always 200, "
        "so it does not reveal which emails have accounts."
    ),
)
def request_reset(input: ResetRequestInput, ctx: Context) -> Accepted:
    services.request_reset(ctx, input.email)
    return Accepted()


@action(
    name="users.password.reset",
    input=ResetInput,
    output=PasswordChanged,
    triggers=[triggers.api("POST", "/password/reset")],
    guards=[guards.rate_limit("10/minute", per="ip")],
    public=True,
    description="Set a new password with a reset code; every session of the user ends.",
)
def reset_password(input: ResetInput, ctx: Context) -> PasswordChanged:
    user, revoked = services.reset_password(ctx, input.token, input.new_password)
    return PasswordChanged(user_id=user.id, revoked_sessions=revoked)


# -- administration (tenant admins) --------------------------------------------------
@action(
    name="users.user.list",
    input=ListUsersInput,
    output=UserList,
    triggers=[triggers.api("GET", "")],
    guards=[tenant_admin()],
    description=(
        "Users of this tenant, newest first: `q` (email or name), `status`, `verified`, "
        "`role` (admin | operator | member), `cursor`, `limit`."
    ),
)
def list_users(input: ListUsersInput, ctx: Context) -> UserList:
    page = services.list_users(
        ctx.db,
        q=input.q,
        status=input.status,
        verified=input.verified,
        role=input.role,
        cursor=input.cursor,
        limit=input.limit,
    )
    return UserList(items=[UserOut.of(u) for u in page.items], total=page.total, next_cursor=page.next_cursor)


@action(
    name="users.user.get",
    input=UserRef,
    output=UserDetail,
    triggers=[triggers.api("GET", "/{userId}")],
    guards=[tenant_admin()],
    description="One user of this tenant (another tenant's id is 404).",
)
def get_user(input: UserRef, ctx: Context) -> UserDetail:
    user = services.get_user(ctx.db, input.user_id)
    live = len(auth_services.live_sessions(ctx.db, user.id))
    return UserDetail(**UserOut.of(user).model_dump(), active_sessions=live)


@action(
    name="users.user.disable",
    input=UserRef,
    output=UserStatusOutput,
    triggers=[triggers.api("POST", "/{userId}/disable")],
    guards=[tenant_admin()],
    description="Disable an account: it cannot sign in and all its sessions end.",
)
def disable_user(input: UserRef, ctx: Context) -> UserStatusOutput:
    user = services.get_user(ctx.db, input.user_id)
    revoked = services.disable_user(ctx, user)
    return UserStatusOutput(user_id=user.id, status="disabled", revoked_sessions=revoked)


@action(
    name="users.user.enable",
    input=UserRef,
    output=UserStatusOutput,
    triggers=[triggers.api("POST", "/{userId}/enable")],
    guards=[tenant_admin()],
    description="Enable a disabled account again.",
)
def enable_user(input: UserRef, ctx: Context) -> UserStatusOutput:
    user = services.get_user(ctx.db, input.user_id)
    services.enable_user(ctx, user)
    return UserStatusOutput(user_id=user.id, status="active")


@action(
    name="users.session.list",
    input=UserRef,
    output=SessionList,
    triggers=[triggers.api("GET", "/{userId}/sessions")],
    guards=[tenant_admin()],
    description="A user's live sessions (device, IP, created, last seen).",
)
def list_user_sessions(input: UserRef, ctx: Context) -> SessionList:
    user = services.get_user(ctx.db, input.user_id)
    records = auth_services.live_sessions(ctx.db, user.id)
    return SessionList(items=[SessionOut.of(r, ctx.actor.session_id) for r in records])


@action(
    name="users.session.revoke",
    input=UserSessionRef,
    output=RevokeOutput,
    triggers=[triggers.api("POST", "/{userId}/sessions/{sessionId}/revoke")],
    guards=[tenant_admin()],
    description="Sign one of a user's sessions out.",
)
def revoke_user_session(input: UserSessionRef, ctx: Context) -> RevokeOutput:
    user = services.get_user(ctx.db, input.user_id)
    record = ctx.db.get(AuthSession, input.session_id)
    if record is None or record.user_id != user.id:
        raise NotFound("Session not found")
    auth_services.revoke_session(ctx, record, action="users.session.revoke")
    return RevokeOutput(session_id=record.id, revoked=True)


@action(
    name="users.session.revoke_all",
    input=UserRef,
    output=RevokeAllOutput,
    triggers=[triggers.api("POST", "/{userId}/sessions/revoke-all")],
    guards=[tenant_admin()],
    description="Sign out every session of a user (yours too, if you pick yourself).",
)
def revoke_user_sessions(input: UserRef, ctx: Context) -> RevokeAllOutput:
    user = services.get_user(ctx.db, input.user_id)
    revoked = auth_services.revoke_user_sessions(ctx, user.id, action="users.session.revoke_all")
    return RevokeAllOutput(revoked=len(revoked), kept_session_id=None)
