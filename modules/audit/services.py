"""Audit services: search the log, seal and verify its chain, explain access decisions.

The chain itself (hashing, sealing, verifying) is the kernel's `bunbase.audit_chain`; this
module runs the sealer on every scheduler tick and before every read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Select, or_, select

from bunbase import audit_chain, authz, cursors, hooks
from bunbase.db import DBSession, db
from bunbase.models import AuditEntry, User
from modules.rbac import services as rbac
from modules.rbac.models import DecisionRecord, Membership, Role


# -- the chain -----------------------------------------------------------------------
@hooks.on("scheduler_tick")
def seal_on_tick() -> None:
    audit_chain.seal_all(db.engine)


def seal_before_read(session: DBSession, tenant_id: str) -> None:
    """Seal the tenant's waiting entries, so readers only ever see sealed ones.

    The seal commits on its own connection; the session's read transaction is then ended
    so its next statement sees it (a SQLite snapshot lasts the whole transaction).
    """
    if audit_chain.has_unsealed(db.engine, tenant_id):
        audit_chain.seal_tenant(db.engine, tenant_id)
        session.commit()


def verify(tenant_id: str) -> audit_chain.Verification:
    return audit_chain.verify(db.engine, tenant_id)


@dataclass(frozen=True)
class ChainStatus:
    sealed: int
    unsealed: int
    last: audit_chain.Verification | None


def chain_status(tenant_id: str) -> ChainStatus:
    sealed, unsealed = audit_chain.counts(db.engine, tenant_id)
    return ChainStatus(sealed, unsealed, audit_chain.last_verification(tenant_id))


# -- searching -----------------------------------------------------------------------
@dataclass
class EventFilters:
    org_id: str | None = None
    actor: str | None = None  # a user id, an email, or an actor type ("system")
    action: str | None = None  # exact, or a prefix ending in "." / "*" ("support.")
    target: str | None = None  # an id, a type, or "type:id"
    since: datetime | None = None
    until: datetime | None = None

    def any(self) -> bool:
        return any((self.org_id, self.actor, self.action, self.target, self.since, self.until))


def _actor_clause(session: DBSession, actor: str) -> ColumnElement[bool]:
    if "@" in actor:
        user_id = session.scalar(select(User.id).where(User.email == actor.lower()))
        return AuditEntry.actor_id == (user_id or "-")
    return or_(AuditEntry.actor_id == actor, AuditEntry.actor_type == actor)


def _target_clause(target: str) -> ColumnElement[bool]:
    kind, sep, ident = target.partition(":")
    if sep and kind and ident:
        return (AuditEntry.target_type == kind) & (AuditEntry.target_id == ident)
    return or_(AuditEntry.target_id == target, AuditEntry.target_type == target)


def filtered(session: DBSession, f: EventFilters) -> Select[Any]:
    stmt = select(AuditEntry)
    if f.org_id:
        stmt = stmt.where(AuditEntry.org_id == f.org_id)
    if f.actor:
        stmt = stmt.where(_actor_clause(session, f.actor))
    if f.action:
        if f.action.endswith((".", "*")):
            stmt = stmt.where(AuditEntry.action.startswith(f.action.rstrip("*")))
        else:
            stmt = stmt.where(AuditEntry.action == f.action)
    if f.target:
        stmt = stmt.where(_target_clause(f.target))
    if f.since:
        stmt = stmt.where(AuditEntry.created_at >= f.since)
    if f.until:
        stmt = stmt.where(AuditEntry.created_at < f.until)
    return stmt


@dataclass(frozen=True)
class EventPage:
    items: list[AuditEntry]
    total: int
    next_cursor: str | None


def list_events(
    session: DBSession, f: EventFilters, *, cursor: str | None = None, limit: int = 50
) -> EventPage:
    """Newest first, keyset-paginated on the time-ordered id."""
    page = cursors.newest_first(
        session, filtered(session, f), AuditEntry.id, list_name="audit", cursor=cursor, limit=limit
    )
    return EventPage(page.items, page.total, page.next_cursor)


def action_names(session: DBSession) -> list[str]:
    return sorted(session.scalars(select(AuditEntry.action).distinct()))


def get_entry(session: DBSession, entry_id: str) -> AuditEntry | None:
    return session.get(AuditEntry, entry_id)


def decisions_of_run(session: DBSession, run_id: str | None) -> list[DecisionRecord]:
    if not run_id:
        return []
    return list(
        session.scalars(
            select(DecisionRecord).where(DecisionRecord.run_id == run_id).order_by(DecisionRecord.id)
        )
    )


@dataclass(frozen=True)
class DiffRow:
    key: str
    before: Any
    after: Any
    change: str  # "added" | "removed" | "changed" | "same"


_MISSING = object()


def diff_rows(diff: dict[str, Any] | None) -> list[DiffRow]:
    """The `{"before": {...}, "after": {...}}` of an entry, key by key."""
    diff = diff or {}
    before = diff.get("before") if isinstance(diff.get("before"), dict) else {}
    after = diff.get("after") if isinstance(diff.get("after"), dict) else {}
    assert isinstance(before, dict) and isinstance(after, dict)
    if not before and not after and diff:
        after = {k: v for k, v in diff.items() if k not in ("before", "after")}
    rows = []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key, _MISSING), after.get(key, _MISSING)
        if b is _MISSING:
            change = "added"
        elif a is _MISSING:
            change = "removed"
        else:
            change = "same" if a == b else "changed"
        rows.append(DiffRow(key, None if b is _MISSING else b, None if a is _MISSING else a, change))
    return rows


# -- why? ----------------------------------------------------------------------------
@dataclass
class Explanation:
    email: str
    org_id: str
    permission: str
    user: User | None = None
    role: Role | None = None
    allowed: bool = False
    reason: str = ""
    granted_by: str | None = None
    roles_that_grant: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    history: list[DecisionRecord] = field(default_factory=list)


def explain(session: DBSession, *, email: str, org_id: str, permission: str) -> Explanation:
    """Would this user get `permission` in this org now (and why), and what was decided."""
    out = Explanation(email.strip().lower(), org_id.strip(), permission.strip())
    out.roles_that_grant = [
        r.key for r in rbac.list_roles(session) if authz.grants(r.permissions, out.permission)
    ]
    out.user = session.scalar(select(User).where(User.email == out.email))
    if out.user is None:
        out.reason = f"no user {out.email} in this workspace"
        return out
    out.history = rbac.decisions_for(
        session, principal_id=out.user.id, org_id=out.org_id, permission=out.permission
    )
    if out.user.is_tenant_admin:
        out.notes.append("Tenant administrator: allowed everything from Studio.")
    if not out.user.is_active:
        out.reason = "the user is deactivated"
        return out
    m = rbac.membership(session, out.org_id, out.user.id)
    if m is None:
        out.reason = f"not a member of organization {out.org_id}"
        return out
    out.role = m.role
    out.granted_by = authz.grants(m.role.permissions, out.permission)
    out.allowed = out.granted_by is not None
    out.reason = (
        f"role {m.role.key!r} grants {out.granted_by!r}"
        if out.allowed
        else f"role {m.role.key!r} does not grant {out.permission!r}"
    )
    return out


def permission_catalog() -> list[str]:
    return list(current_app.extensions["bunbase"].registry.permission_catalog())


def users(session: DBSession, limit: int = 200) -> list[str]:
    return list(session.scalars(select(User.email).order_by(User.email).limit(limit)))


def org_ids(session: DBSession, limit: int = 200) -> list[str]:
    return list(
        session.scalars(select(Membership.org_id).distinct().order_by(Membership.org_id).limit(limit))
    )
