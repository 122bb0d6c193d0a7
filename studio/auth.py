"""Studio sign-in: Flask-Login over the kernel's server-side sessions (kind "studio").

The cookie carries the session token (signed by Flask); the server keeps only its hash,
so signing out or revoking a session in the database ends it everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, session
from flask_login import LoginManager, UserMixin, current_user, login_user
from sqlalchemy import select

from bunbase import api, identity, signin, tenancy_cache, throttle
from bunbase.context import TenantRef
from bunbase.db import db
from bunbase.models import AuditEntry, AuthSession, User
from bunbase.tenancy import tenant_scope, unscoped

login_manager = LoginManager()
login_manager.login_view = "studio.login"
login_manager.login_message = "Sign in to continue."
login_manager.login_message_category = "info"

STUDIO_TTL = timedelta(hours=12)


@dataclass
class StudioUser(UserMixin):  # type: ignore[misc]
    token: str
    session_id: str
    user_id: str
    email: str
    name: str
    home_tenant_id: str
    is_tenant_admin: bool
    is_platform_operator: bool

    def get_id(self) -> str:
        return self.token


class LoginError(Exception):
    pass


@login_manager.user_loader
def load_user(token: str) -> StudioUser | None:
    with unscoped():
        record = db.session.scalar(
            select(AuthSession).where(AuthSession.token_hash == identity.token_hash(token))
        )
        if record is None or record.kind != "studio":
            return None
        with tenant_scope(record.tenant_id):
            live = identity.find_session(db.session, token)
        if live is None or not live.user.can_use_studio:
            return None
        user = live.user
        return StudioUser(
            token,
            live.id,
            user.id,
            user.email,
            user.name,
            user.tenant_id,
            user.is_tenant_admin,
            user.is_platform_operator,
        )


#: one answer for every failure, whatever the cause (no account, several, wrong password)
WRONG = "Email or password is incorrect. If your email is in several workspaces, enter the workspace too."


def _workspace_of(email: str, workspace: str) -> str | None:
    """The tenant to check the password in: the one named, else the only one where this email
    has an account. None when there is none or several: the check then fails exactly as a
    wrong password does (same answer, same cost, counted against the address)."""
    if workspace:
        ref = tenancy_cache.lookup(workspace)
        return ref.id if ref else None
    with unscoped():
        found = list(db.session.scalars(select(User.tenant_id).where(User.email == email).limit(2)))
    return found[0] if len(found) == 1 else None


def _check(email: str, password: str, workspace: str, ip: str | None) -> tuple[str, str, str]:
    """(tenant id, user id, password hash) of the Studio user these credentials open, or a
    `LoginError` with the message to show."""
    tenant_id = _workspace_of(email, workspace)
    try:
        user = signin.check_password(
            db.session,
            tenant_id=tenant_id,
            email=email,
            password=password,
            ip=ip,
            via="studio",
            trace_id=api.trace_id(),
        )
        found = (user.tenant_id, user.id, user.password_hash or "", user.can_use_studio)
    except throttle.LockedOut as err:
        raise LoginError(f"Too many failed sign-ins. Try again in {err.retry_after} seconds.") from None
    except signin.SignInFailed:
        raise LoginError(WRONG) from None
    finally:
        db.session.rollback()  # end the read: the write below takes the write lock
    if not found[3]:
        raise LoginError("This account cannot use Studio.")
    return found[0], found[1], found[2]


def sign_in(email: str, password: str, workspace: str, ip: str | None, agent: str | None) -> None:
    """Verify the credentials (`bunbase.signin`: the API's lock-out and answers), open a fresh
    Studio session and rotate the cookie."""
    email, workspace = email.strip().lower(), workspace.strip().lower()
    tenant_id, user_id, password_hash = _check(email, password, workspace, ip)
    with tenant_scope(tenant_id):
        user = db.session.get(User, user_id)
        assert user is not None
        user.password_hash = password_hash  # the check may have upgraded it
        token, record = identity.create_session(
            db.session, user, ttl=STUDIO_TTL, kind="studio", ip=ip, user_agent=agent
        )
        db.session.add(
            AuditEntry(
                tenant_id=user.tenant_id,
                actor_type="user",
                actor_id=user.id,
                action="studio.session.login",
                target_type="user",
                target_id=user.id,
                ip=ip,
                decision="allowed: password",
            )
        )
        db.session.commit()
        studio_user = StudioUser(
            token,
            record.id,
            user.id,
            user.email,
            user.name,
            user.tenant_id,
            user.is_tenant_admin,
            user.is_platform_operator,
        )
    previous = current_user._get_current_object() if current_user.is_authenticated else None
    if isinstance(previous, StudioUser) and previous.session_id != studio_user.session_id:
        sign_out(previous)  # signing in again in this browser ends the session it had
    session.clear()  # a new cookie session on every sign-in (no fixation)
    login_user(studio_user)
    session["tenant_id"] = studio_user.home_tenant_id


def sign_out(user: StudioUser) -> None:
    with tenant_scope(user.home_tenant_id):
        record = db.session.get(AuthSession, user.session_id)
        if record is not None:
            identity.revoke(record)
            db.session.commit()


def current_tenant(user: StudioUser) -> TenantRef:
    """The tenant Studio is looking at: operators may switch, admins see their own."""
    wanted = session.get("tenant_id") if user.is_platform_operator else None
    ref = tenancy_cache.lookup(wanted) if wanted else None
    return ref or tenancy_cache.tenant_ref(user.home_tenant_id)


def studio_app_settings() -> object:
    return current_app.extensions["bunbase"].settings
