"""RBAC services: roles, permission grants, role sets, memberships and decisions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, func, select

from bunbase import BadRequest, Conflict, Context, NotFound, authz, hooks
from bunbase.clock import clock
from bunbase.db import DBSession, db
from bunbase.ids import new_id
from bunbase.models import Tenant, User
from modules.rbac import grants_cache
from modules.rbac.models import (
    DecisionRecord,
    Membership,
    Role,
    RolePermission,
    RoleSet,
    RoleSetRole,
)

#: the system roles every tenant gets; their permission sets are locked
SYSTEM_ROLES: dict[str, tuple[str, str, list[str]]] = {
    "owner": ("Owner", "Everything, including ownership and deleting the org.", ["*"]),
    "admin": (
        "Admin",
        "Runs the org: members, invitations, roles, keys and all data.",
        [
            "org:read",
            "org:update",
            "member:*",
            "invitation:*",
            "role:*",
            "api_key:*",
            "service_account:*",
            "audit:read",
            "ticket:*",
        ],
    ),
    "member": (
        "Member",
        "Works with the org's data.",
        ["org:read", "member:read", "ticket:create", "ticket:read", "ticket:update"],
    ),
    "viewer": ("Viewer", "Reads everything, changes nothing.", ["*:read"]),
}
ROLE_KEY = re.compile(r"^[a-z][a-z0-9_-]{1,59}$")
PERMISSION = re.compile(r"^(\*|[a-z][a-z0-9_]*):(\*|[a-z][a-z0-9_]*)$|^\*$")


# -- provisioning --------------------------------------------------------------------
@hooks.on("tenant_created")
def provision_tenant(tenant: Tenant, _admin: User) -> None:
    ensure_system_roles(db.session, tenant.id)


def ensure_system_roles(session: DBSession, tenant_id: str) -> dict[str, Role]:
    existing = {r.key: r for r in session.scalars(select(Role).where(Role.tenant_id == tenant_id))}
    for key, (name, description, perms) in SYSTEM_ROLES.items():
        if key in existing:
            continue
        role = Role(tenant_id=tenant_id, key=key, name=name, description=description, is_system=True)
        role.grants = [RolePermission(tenant_id=tenant_id, permission=p) for p in perms]
        session.add(role)
        existing[key] = role
    session.flush()
    if not session.scalar(select(RoleSet).where(RoleSet.tenant_id == tenant_id)):
        rs = RoleSet(tenant_id=tenant_id, key="default", name="Default", is_default=True)
        rs.entries = [
            RoleSetRole(
                tenant_id=tenant_id,
                role_id=existing[k].id,
                is_creator_role=k == "owner",
                is_default_member_role=k == "member",
            )
            for k in SYSTEM_ROLES
        ]
        session.add(rs)
        session.flush()
    return existing


def catalog() -> list[str]:
    """Permissions known to the platform (actions' and modules' declared ones)."""
    return list(current_app.extensions["bunbase"].registry.permission_catalog())


# -- roles ---------------------------------------------------------------------------
def list_roles(session: DBSession) -> list[Role]:
    return list(session.scalars(select(Role).order_by(Role.is_system.desc(), Role.name)))


def get_role(session: DBSession, role_id: str) -> Role:
    role = session.get(Role, role_id)
    if role is None:
        raise NotFound("Role not found")
    return role


def role_for(session: DBSession, role: str) -> Role:
    """A role of the tenant by key or id; an unknown one is a 400 on the `role` field."""
    found: Role | None = session.scalar(select(Role).where((Role.key == role) | (Role.id == role)))
    if found is None:
        raise BadRequest(
            f"Unknown role {role!r}",
            details=[{"field": "role", "message": "unknown role", "type": "value_error"}],
        )
    return found


def role_by_key(session: DBSession, key: str) -> Role:
    role: Role | None = session.scalar(select(Role).where(Role.key == key))
    if role is None:
        raise NotFound(f"No role {key!r}")
    return role


def _check_permissions(perms: list[str]) -> list[str]:
    bad = [p for p in perms if not PERMISSION.match(p)]
    if bad:
        raise BadRequest(
            "Permissions are '<feature>:<action>' (wildcards allowed)",
            details=[{"field": "permissions", "message": f"invalid: {p}", "type": "pattern"} for p in bad],
        )
    return sorted(set(perms))


def create_role(ctx: Context, *, key: str, name: str, description: str, permissions: list[str]) -> Role:
    if not ROLE_KEY.match(key):
        raise BadRequest("Role key: lowercase letters, digits, '-' or '_', 2-60 characters")
    if ctx.db.scalar(select(Role).where(Role.key == key)):
        raise Conflict(f"A role with key {key!r} exists")
    perms = _check_permissions(permissions)
    role = Role(tenant_id=ctx.tenant.id, key=key, name=name, description=description)
    role.grants = [RolePermission(tenant_id=ctx.tenant.id, permission=p) for p in perms]
    ctx.db.add(role)
    ctx.db.flush()
    ctx.audit.record(
        action="rbac.role.create",
        target_type="role",
        target_id=role.id,
        diff={"after": {"key": key, "name": name, "permissions": perms}},
    )
    return role


def update_role(
    ctx: Context,
    role: Role,
    *,
    name: str | None,
    description: str | None,
    permissions: list[str] | None,
) -> Role:
    if role.is_system:
        raise Conflict("System roles are locked")
    before = {
        "name": role.name,
        "description": role.description,
        "permissions": sorted(role.permissions),
    }
    if name is not None:
        role.name = name
    if description is not None:
        role.description = description
    if permissions is not None:
        wanted = set(_check_permissions(permissions))
        role.grants = [g for g in role.grants if g.permission in wanted] + [
            RolePermission(tenant_id=role.tenant_id, permission=p) for p in sorted(wanted - role.permissions)
        ]
    after = {
        "name": role.name,
        "description": role.description,
        "permissions": sorted(role.permissions),
    }
    ctx.db.flush()
    ctx.audit.record(
        action="rbac.role.update", target_type="role", target_id=role.id, diff=_diff(before, after)
    )
    return role


def set_grant(ctx: Context, role: Role, permission: str, granted: bool) -> Role:
    """Toggle one cell of the role x permission grid."""
    perms = set(role.permissions)
    perms = perms | {permission} if granted else perms - {permission}
    return update_role(ctx, role, name=None, description=None, permissions=sorted(perms))


def delete_role(ctx: Context, role: Role) -> None:
    if role.is_system:
        raise Conflict("System roles are locked")
    in_use = ctx.db.scalar(select(func.count()).select_from(Membership).where(Membership.role_id == role.id))
    if in_use:
        raise Conflict(f"The role is held by {in_use} member(s); change their role first")
    ctx.audit.record(
        action="rbac.role.delete",
        target_type="role",
        target_id=role.id,
        diff={"before": {"key": role.key, "permissions": sorted(role.permissions)}},
    )
    ctx.db.delete(role)


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    changed = [k for k in after if before.get(k) != after.get(k)]
    return {"before": {k: before.get(k) for k in changed}, "after": {k: after[k] for k in changed}}


# -- role sets -----------------------------------------------------------------------
def default_role_set(session: DBSession) -> RoleSet:
    rs: RoleSet | None = session.scalar(select(RoleSet).where(RoleSet.is_default.is_(True)))
    if rs is None:
        raise NotFound("No default role set")
    return rs


def creator_role(session: DBSession, role_set_id: str | None = None) -> Role:
    rs = session.get(RoleSet, role_set_id) if role_set_id else default_role_set(session)
    entry = next((e for e in (rs.entries if rs else []) if e.is_creator_role), None)
    return entry.role if entry else role_by_key(session, "owner")


def default_member_role(session: DBSession, role_set_id: str | None = None) -> Role:
    rs = session.get(RoleSet, role_set_id) if role_set_id else default_role_set(session)
    entry = next((e for e in (rs.entries if rs else []) if e.is_default_member_role), None)
    return entry.role if entry else role_by_key(session, "member")


# -- memberships ---------------------------------------------------------------------
def membership(
    session: DBSession, org_id: str, principal_id: str, principal_type: str = "user"
) -> Membership | None:
    found: Membership | None = session.scalar(
        select(Membership).where(
            Membership.org_id == org_id,
            Membership.principal_type == principal_type,
            Membership.principal_id == principal_id,
        )
    )
    return found


def org_in_tenant(session: DBSession, org_id: str) -> bool:
    """Whether `org_id` is an org of the tenant in scope. Every org has members (its owner
    cannot leave), and memberships are tenant-scoped: an org of another tenant, or none at
    all, has none here."""
    return session.scalar(select(Membership.id).where(Membership.org_id == org_id).limit(1)) is not None


def bind(
    session: DBSession,
    tenant_id: str,
    org_id: str,
    principal_id: str,
    role: Role,
    principal_type: str = "user",
) -> Membership:
    existing = membership(session, org_id, principal_id, principal_type)
    if existing is not None:
        raise Conflict("Already a member of this organization")
    m = Membership(
        tenant_id=tenant_id,
        org_id=org_id,
        principal_type=principal_type,
        principal_id=principal_id,
        role_id=role.id,
        created_at=clock.now(),
    )
    session.add(m)
    session.flush()
    return m


def owner_count(session: DBSession, org_id: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Membership)
            .join(Role, Role.id == Membership.role_id)
            .where(Membership.org_id == org_id, Role.key == "owner")
        )
        or 0
    )


def memberships_of(session: DBSession, principal_id: str, principal_type: str = "user") -> list[Membership]:
    return list(
        session.scalars(
            select(Membership).where(
                Membership.principal_type == principal_type, Membership.principal_id == principal_id
            )
        )
    )


# -- decisions -----------------------------------------------------------------------
@dataclass(frozen=True)
class MemberGrants:
    """The caller's standing in one org: role key and the permissions that role grants."""

    org_id: str
    role_key: str
    permissions: frozenset[str]


_m, _r, _rp = Membership.__table__, Role.__table__, RolePermission.__table__
#: built once; a Core statement on the tables, filtered by tenant explicitly (this is the
#: hottest query of the platform: every org-scoped call makes it)
_GRANTS = (
    select(_r.c.key, _rp.c.permission)
    .select_from(_m.join(_r, _r.c.id == _m.c.role_id).outerjoin(_rp, _rp.c.role_id == _r.c.id))
    .where(
        _m.c.tenant_id == bindparam("tenant_id"),
        _m.c.org_id == bindparam("org_id"),
        _m.c.principal_type == bindparam("principal_type"),
        _m.c.principal_id == bindparam("principal_id"),
    )
)


def grants_in_org(
    session: DBSession, org_id: str, principal_id: str, principal_type: str
) -> MemberGrants | None:
    """One query: the membership, its role and the role's permission grants (on SQLite
    kept per process until one of them changes: `grants_cache`)."""
    from bunbase.tenancy import current_tenant_id

    params = {
        "tenant_id": current_tenant_id() or "",
        "org_id": org_id,
        "principal_type": principal_type,
        "principal_id": principal_id,
    }

    def load() -> MemberGrants | None:
        rows = session.connection().execute(_GRANTS, params).all()
        if not rows:
            return None
        return MemberGrants(org_id, rows[0][0], frozenset(p for _, p in rows if p))

    return grants_cache.cached(tuple(params.values()), load)


def _org_membership(ctx: Context) -> MemberGrants | None:
    """The caller's grants in `ctx.org_id`, looked up once per call."""
    if not ctx.org_id:
        return None
    cached = ctx.extras.get("membership")
    if isinstance(cached, MemberGrants) and cached.org_id == ctx.org_id:
        return cached
    ptype, pid = ctx.actor.principal
    if pid is None:
        return None
    found = grants_in_org(ctx.db, ctx.org_id, pid, ptype)
    ctx.extras["membership"] = found
    return found


def decide(ctx: Context, permission: str) -> authz.Decision:
    actor = ctx.actor
    if not actor.is_authenticated:
        return authz.Decision(permission, False, "not signed in")
    if ctx.trigger == "studio" and actor.kind == "user":
        if actor.is_platform_operator:
            return authz.Decision(permission, True, "platform operator in Studio")
        if actor.is_tenant_admin:
            return authz.Decision(permission, True, "tenant administrator in Studio")
    if not ctx.org_id:
        if actor.kind == "user" and actor.is_tenant_admin:
            return authz.Decision(permission, True, "tenant administrator (no organization in context)")
        return authz.Decision(permission, False, f"{permission!r} needs an organization in context")
    m = _org_membership(ctx)
    if m is None:
        return authz.Decision(permission, False, f"not a member of organization {ctx.org_id}")
    hit = authz.grants(m.permissions, permission)
    if hit is None:
        return authz.Decision(permission, False, f"role {m.role_key!r} does not grant {permission!r}")
    if actor.kind == "api_key":
        scope = authz.grants(actor.scopes or frozenset(), permission)
        if scope is None:
            return authz.Decision(
                permission,
                False,
                f"API key scopes {sorted(actor.scopes or [])} do not include {permission!r}",
            )
        return authz.Decision(
            permission, True, f"key scope {scope!r} and owner role {m.role_key!r} ({hit!r})"
        )
    return authz.Decision(permission, True, f"role {m.role_key!r} grants {hit!r}")


def record_decision(ctx: Context, decision: authz.Decision) -> None:
    row = {
        "id": new_id("dec"),
        "tenant_id": ctx.tenant.id,
        "actor_type": ctx.actor.kind,
        "actor_id": ctx.actor.id,
        "principal_id": ctx.actor.principal[1],
        "org_id": ctx.org_id,
        "permission": decision.permission,
        "allowed": decision.allowed,
        "reason": decision.reason[:400],
        "action_name": ctx.action.name if ctx.action else None,
        "trace_id": ctx.trace_id,
        "run_id": ctx.run_id,
        "created_at": clock.now(),
    }
    current_app.extensions["bunbase"].buffer.add_row(DecisionRecord.__table__, row)


authz.set_decider(decide)
authz.add_sink(record_decision)


def decisions_for(
    session: DBSession,
    *,
    principal_id: str | None = None,
    org_id: str | None = None,
    permission: str | None = None,
    limit: int = 20,
) -> list[DecisionRecord]:
    stmt = select(DecisionRecord)
    if principal_id:
        stmt = stmt.where(
            (DecisionRecord.principal_id == principal_id) | (DecisionRecord.actor_id == principal_id)
        )
    if org_id:
        stmt = stmt.where(DecisionRecord.org_id == org_id)
    if permission:
        stmt = stmt.where(DecisionRecord.permission == permission)
    return list(session.scalars(stmt.order_by(DecisionRecord.id.desc()).limit(limit)))
