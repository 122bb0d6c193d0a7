"""Password sign-in: one check for every door — the API (`auth.session.login`), Studio and
the public invitation page — so they share one lock-out and one answer.

`check_password` reserves a slot in the brute-force windows (`bunbase.throttle`: per account
and per IP, 429 with Retry-After when full), verifies the password (against a dummy hash
when there is no such account, so both cost the same), upgrades an outdated hash, and
records every failure and refusal in the tenant's audit log outside the caller's
transaction (a failed sign-in rolls that back). Every failure is the same
`SignInFailed`: nothing tells an unknown email from a wrong password or a disabled account.
The caller opens the session and records the success (it knows what was opened).
"""

from __future__ import annotations

from typing import Any

import structlog
from flask import current_app
from sqlalchemy import select

from bunbase import identity, throttle
from bunbase.clock import clock
from bunbase.db import DBSession
from bunbase.errors import Unauthenticated
from bunbase.ids import new_id
from bunbase.models import AuditEntry, User
from bunbase.tenancy import tenant_scope

log = structlog.get_logger("bunbase.signin")

WRONG = "Email or password is incorrect"
#: the account key of a sign-in whose workspace is not known (unknown or ambiguous)
NO_TENANT = "-"


class SignInFailed(Unauthenticated):
    """Wrong password, unknown email, disabled account: one answer for all (401)."""

    default_message = WRONG


def check_password(
    session: DBSession,
    *,
    tenant_id: str | None,
    email: str,
    password: str,
    ip: str | None,
    via: str,
    trace_id: str | None = None,
    run_id: str | None = None,
) -> User:
    """The active user of `tenant_id` whose email and password these are; else
    `throttle.LockedOut` (429) or `SignInFailed` (401). With no tenant (an email found in no
    workspace or in several) it always fails, at the same cost. `via` names the door
    ("api", "studio", "invitation") in the audit entries."""
    email = email.strip().lower()
    note = _Note(tenant_id, email, ip, via, trace_id, run_id)
    try:
        attempt = throttle.reserve(tenant_id or NO_TENANT, email, ip)
    except throttle.LockedOut as err:
        note.write(
            "auth.session.login_blocked",
            None,
            f"denied: too many failed attempts ({err.scope})",
            {"scope": err.scope},
        )
        raise
    user: User | None = None
    if tenant_id is not None:
        with tenant_scope(tenant_id):
            user = session.scalar(select(User).where(User.email == email))
    reason = None
    if not identity.verify_password(user, password) or user is None:
        reason = "unknown email" if user is None else "wrong password"
    elif not user.is_active:
        reason = "account disabled"
    if reason is not None:
        note.write("auth.session.login_failed", user.id if user else None, f"denied: {reason}")
        raise SignInFailed()
    assert user is not None
    throttle.succeeded(attempt)
    return user


class _Note:
    """Audit entries about one attempt, written by the buffered writer: they survive the
    rollback of the failed sign-in."""

    def __init__(
        self,
        tenant_id: str | None,
        email: str,
        ip: str | None,
        via: str,
        trace_id: str | None,
        run_id: str | None,
    ) -> None:
        self.tenant_id, self.email, self.ip, self.via = tenant_id, email, ip, via
        self.trace_id, self.run_id = trace_id, run_id

    def write(
        self, action: str, user_id: str | None, decision: str, extra: dict[str, Any] | None = None
    ) -> None:
        if self.tenant_id is None:  # no workspace to keep it in: the server log has it
            log.info(action, email=self.email, ip=self.ip, via=self.via, decision=decision)
            return
        row = {
            "id": new_id("aud"),
            "tenant_id": self.tenant_id,
            "actor_type": "anonymous",
            "actor_id": None,
            "action": action,
            "target_type": "user",
            "target_id": user_id,
            "org_id": None,
            "diff": {"email": self.email, "via": self.via, **(extra or {})},
            "ip": self.ip,
            "trace_id": self.trace_id,
            "run_id": self.run_id,
            "decision": decision[:400],
            "created_at": clock.now(),
        }
        current_app.extensions["bunbase"].buffer.add_row(AuditEntry.__table__, row)
