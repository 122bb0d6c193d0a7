"""API keys and service accounts: the only code that changes them, and the key authenticator.

A key is `bbk_<prefix>_<secret>`. Only the SHA-256 of the whole token is stored, with the
8-character prefix (indexed) to find the row; the hash is compared in constant time. A key
acts for its owner (the user who created it, or a service account) and can never do more
than the owner: scopes are checked against the owner's role when the key is created or
rotated, and `rbac.decide` intersects scopes with the owner's role on every use.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, has_request_context, request
from sqlalchemy import ColumnElement, and_, func, or_, select

from bunbase import (
    BadRequest,
    Conflict,
    Context,
    Forbidden,
    NotFound,
    Unauthenticated,
    authz,
    cursors,
    hooks,
)
from bunbase.api import register_authenticator
from bunbase.clock import clock
from bunbase.context import Actor, TenantRef
from bunbase.db import DBSession, db
from bunbase.identity import token_hash
from bunbase.models import User
from bunbase.seed import SeededTenant
from bunbase.tenancy import tenant_scope
from bunbase.work import unit_of_work
from modules.api_keys.models import ApiKey, ServiceAccount

# the demo org is seeded by the orgs module: import it first so its "demo_seed" hook runs
# before this module's
from modules.orgs import services as orgs_services
from modules.orgs.models import Organization
from modules.rbac import services as rbac
from modules.rbac.models import Membership, Role

KEY_PREFIX = "bbk_"
PREFIX_LEN = 8
DEFAULT_GRACE = timedelta(hours=24)
KEY_STATUSES = ("active", "expired", "revoked")
OWNER_TYPES = ("user", "service_account")
_INVALID = "The API key is invalid, expired or revoked"
# compared against when no key has the prefix, so a miss costs the same as a hit
_DUMMY_HASH = token_hash(secrets.token_urlsafe(32))


# -- tokens --------------------------------------------------------------------------
def new_token() -> tuple[str, str]:
    """A fresh `(prefix, token)`; the prefix is hex, so it never contains the separator."""
    prefix = secrets.token_hex(PREFIX_LEN // 2)
    return prefix, f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


def parse_token(token: str) -> str | None:
    """The prefix of a well-formed `bbk_` token, else None."""
    if not token.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = token[len(KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != PREFIX_LEN or len(secret) < 20 or len(token) > 200:
        return None
    return prefix


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


# -- permissions ---------------------------------------------------------------------
def check_scopes(scopes: list[str]) -> list[str]:
    bad = [s for s in scopes if not rbac.PERMISSION.match(s)]
    if bad:
        raise BadRequest(
            "Scopes are permissions '<feature>:<action>' (wildcards allowed, e.g. 'ticket:*')",
            details=[{"field": "scopes", "message": f"invalid: {s}", "type": "pattern"} for s in bad],
        )
    if not scopes:
        raise BadRequest(
            "A key needs at least one scope",
            details=[{"field": "scopes", "message": "empty", "type": "too_short"}],
        )
    return sorted(set(scopes))


def _studio_admin(ctx: Context) -> bool:
    a = ctx.actor
    return ctx.trigger == "studio" and a.kind == "user" and (a.is_tenant_admin or a.is_platform_operator)


def _refuse(wanted: list[str], missing: list[str], reason: str) -> Forbidden:
    return Forbidden(
        f"Not allowed: {reason}",
        details={"scopes": missing, "requested": wanted, "reason": reason},
    )


def _caller_may_grant(ctx: Context, org_id: str, wanted: list[str]) -> None:
    """Nobody hands out more than they hold: the caller's role (and, for a key, its scopes)
    must cover every permission. Tenant admins and operators in Studio manage any org."""
    if _studio_admin(ctx):
        return
    ptype, pid = ctx.actor.principal
    m = rbac.membership(ctx.db, org_id, pid or "", ptype)
    if m is None:
        raise NotFound("Organization not found")
    missing = [p for p in wanted if authz.grants(m.role.permissions, p) is None]
    if missing:
        raise _refuse(wanted, missing, f"your role {m.role.key!r} does not grant {missing}")
    if ctx.actor.kind == "api_key":
        own = ctx.actor.scopes or frozenset()
        missing = [p for p in wanted if authz.grants(own, p) is None]
        if missing:
            raise _refuse(wanted, missing, f"the calling key's scopes do not include {missing}")


def _owner_may_hold(session: DBSession, org_id: str, owner: tuple[str, str], wanted: list[str]) -> None:
    ptype, pid = owner
    m = rbac.membership(session, org_id, pid, ptype)
    who = "service account" if ptype == "service_account" else "owner"
    if m is None:
        raise _refuse(wanted, wanted, f"the key's {who} is not a member of organization {org_id}")
    missing = [p for p in wanted if authz.grants(m.role.permissions, p) is None]
    if missing:
        raise _refuse(wanted, missing, f"the {who}'s role {m.role.key!r} does not grant {missing}")


# -- service accounts ----------------------------------------------------------------
def get_service_account(session: DBSession, sa_id: str) -> ServiceAccount:
    sa = session.get(ServiceAccount, sa_id)
    if sa is None:
        raise NotFound("Service account not found")
    return sa


def org_of_service_account(ctx: Context) -> str | None:
    """For `in_org(resolve=...)`: an unknown service account is a 404."""
    sa_id = ctx.raw_input.get("serviceAccountId") or ctx.raw_input.get("service_account_id")
    return get_service_account(ctx.db, str(sa_id or "")).org_id


def sa_role(session: DBSession, sa: ServiceAccount) -> Role | None:
    m = rbac.membership(session, sa.org_id, sa.id, "service_account")
    return m.role if m else None


def create_service_account(
    ctx: Context, *, org_id: str, name: str, description: str, role: str
) -> tuple[ServiceAccount, Role]:
    chosen = rbac.role_for(ctx.db, role)
    _caller_may_grant(ctx, org_id, sorted(chosen.permissions))
    if ctx.db.scalar(
        select(ServiceAccount.id).where(ServiceAccount.org_id == org_id, ServiceAccount.name == name)
    ):
        raise Conflict(f"A service account named {name!r} exists in this organization")
    sa = ServiceAccount(
        tenant_id=ctx.tenant.id,
        org_id=org_id,
        name=name,
        description=description,
        created_by=ctx.actor.principal[1],
        created_at=ctx.now(),
    )
    ctx.db.add(sa)
    ctx.db.flush()
    rbac.bind(ctx.db, ctx.tenant.id, org_id, sa.id, chosen, principal_type="service_account")
    ctx.audit.record(
        action="api_keys.service_account.create",
        target_type="service_account",
        target_id=sa.id,
        org_id=org_id,
        diff={"after": {"name": name, "description": description, "role": chosen.key}},
    )
    return sa, chosen


def update_service_account_role(ctx: Context, sa: ServiceAccount, role: str) -> Role:
    chosen = rbac.role_for(ctx.db, role)
    _caller_may_grant(ctx, sa.org_id, sorted(chosen.permissions))
    m: Membership | None = rbac.membership(ctx.db, sa.org_id, sa.id, "service_account")
    before = m.role.key if m else None
    if m is None:
        rbac.bind(ctx.db, ctx.tenant.id, sa.org_id, sa.id, chosen, "service_account")
    else:
        m.role_id, m.role = chosen.id, chosen
    ctx.audit.record(
        action="api_keys.service_account.update_role",
        target_type="service_account",
        target_id=sa.id,
        org_id=sa.org_id,
        diff={"before": {"role": before}, "after": {"role": chosen.key}},
    )
    return chosen


def disable_service_account(ctx: Context, sa: ServiceAccount) -> ServiceAccount:
    """Its keys stop working at once (the authenticator checks); they stay listed."""
    if sa.disabled_at is not None:
        raise Conflict("The service account is already disabled")
    sa.disabled_at, sa.disabled_by = ctx.now(), ctx.actor.principal[1]
    ctx.audit.record(
        action="api_keys.service_account.disable",
        target_type="service_account",
        target_id=sa.id,
        org_id=sa.org_id,
        diff={"before": {"status": "active"}, "after": {"status": "disabled"}},
    )
    return sa


def list_service_accounts(
    session: DBSession, org_id: str, status: str | None = None
) -> list[tuple[ServiceAccount, Role | None]]:
    stmt = (
        select(ServiceAccount, Role)
        .outerjoin(
            Membership,
            (Membership.principal_type == "service_account")
            & (Membership.principal_id == ServiceAccount.id)
            & (Membership.org_id == ServiceAccount.org_id),
        )
        .outerjoin(Role, Role.id == Membership.role_id)
        .where(ServiceAccount.org_id == org_id)
    )
    if status == "active":
        stmt = stmt.where(ServiceAccount.disabled_at.is_(None))
    elif status == "disabled":
        stmt = stmt.where(ServiceAccount.disabled_at.is_not(None))
    return [(sa, r) for sa, r in session.execute(stmt.order_by(ServiceAccount.id.desc())).all()]


# -- keys ----------------------------------------------------------------------------
def get_key(session: DBSession, key_id: str) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound("API key not found")
    return key


def org_of_key(ctx: Context) -> str | None:
    """For `in_org(resolve=...)`: an unknown key (or another tenant's) is a 404."""
    key_id = ctx.raw_input.get("keyId") or ctx.raw_input.get("key_id")
    return get_key(ctx.db, str(key_id or "")).org_id


def _owner_for(ctx: Context, org_id: str, service_account_id: str | None) -> tuple[str, str]:
    if service_account_id:
        sa = ctx.db.get(ServiceAccount, service_account_id)
        if sa is None or sa.org_id != org_id:
            raise NotFound("Service account not found")
        if sa.disabled_at is not None:
            raise Conflict("The service account is disabled")
        return "service_account", sa.id
    ptype, pid = ctx.actor.principal
    if ctx.actor.kind not in ("user", "api_key") or pid is None:
        raise Forbidden("Only users and their keys own API keys; pass serviceAccountId")
    return ptype, pid


def _new_key_row(
    ctx: Context,
    *,
    org_id: str,
    name: str,
    scopes: list[str],
    owner: tuple[str, str],
    expires_at: datetime | None,
    rotated_from_id: str | None = None,
) -> tuple[ApiKey, str]:
    for _ in range(5):
        prefix, token = new_token()
        if not ctx.db.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix)):
            break
    else:  # pragma: no cover - 5 collisions in 2^32 values
        raise Conflict("Could not allocate a key prefix; try again")
    key = ApiKey(
        tenant_id=ctx.tenant.id,
        org_id=org_id,
        name=name,
        prefix=prefix,
        token_hash=token_hash(token),
        scopes=scopes,
        owner_type=owner[0],
        owner_id=owner[1],
        created_by=ctx.actor.principal[1],
        created_at=ctx.now(),
        expires_at=expires_at,
        rotated_from_id=rotated_from_id,
    )
    ctx.db.add(key)
    ctx.db.flush()
    return key, token


def create_key(
    ctx: Context,
    *,
    org_id: str,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    service_account_id: str | None = None,
) -> tuple[ApiKey, str]:
    """Returns the key and its token; the token is never stored and never shown again."""
    wanted = check_scopes(scopes)
    if expires_at is not None and expires_at <= ctx.now():
        raise BadRequest(
            "expiresAt must be in the future",
            details=[{"field": "expiresAt", "message": "in the past", "type": "value_error"}],
        )
    owner = _owner_for(ctx, org_id, service_account_id)
    _caller_may_grant(ctx, org_id, wanted)
    _owner_may_hold(ctx.db, org_id, owner, wanted)
    key, token = _new_key_row(
        ctx, org_id=org_id, name=name, scopes=wanted, owner=owner, expires_at=expires_at
    )
    ctx.audit.record(
        action="api_keys.key.create",
        target_type="api_key",
        target_id=key.id,
        org_id=org_id,
        diff={
            "after": {
                "name": name,
                "prefix": key.prefix,
                "scopes": wanted,
                "ownerType": owner[0],
                "ownerId": owner[1],
                "expiresAt": _iso(expires_at),
            }
        },
    )
    return key, token


def rotate_key(ctx: Context, key: ApiKey, grace: timedelta = DEFAULT_GRACE) -> tuple[ApiKey, str]:
    """A new secret with the same name, scopes, owner, org and expiry. The old key keeps
    working for `grace` (0: stops now), or until its own expiry if that comes first."""
    now = ctx.now()
    status = key.status(now)
    if status != "active":
        raise Conflict(f"The key is {status}; create a new one instead")
    if key.replaced_by_id:
        raise Conflict(f"The key was already rotated; rotate {key.replaced_by_id} instead")
    if key.owner_type == "service_account":
        sa = ctx.db.get(ServiceAccount, key.owner_id)
        if sa is None or sa.disabled_at is not None:
            raise Conflict("The key's service account is disabled")
    scopes = list(key.scopes)
    _caller_may_grant(ctx, key.org_id, scopes)
    _owner_may_hold(ctx.db, key.org_id, (key.owner_type, key.owner_id), scopes)
    new, token = _new_key_row(
        ctx,
        org_id=key.org_id,
        name=key.name,
        scopes=scopes,
        owner=(key.owner_type, key.owner_id),
        expires_at=key.expires_at,
        rotated_from_id=key.id,
    )
    before = key.expires_at
    ends = now + grace
    key.expires_at = ends if before is None or ends < before else before
    key.replaced_by_id = new.id
    ctx.audit.record(
        action="api_keys.key.rotate",
        target_type="api_key",
        target_id=key.id,
        org_id=key.org_id,
        diff={
            "before": {"expiresAt": _iso(before)},
            "after": {
                "expiresAt": _iso(key.expires_at),
                "replacedBy": new.id,
                "newPrefix": new.prefix,
                "graceSeconds": int(grace.total_seconds()),
            },
        },
    )
    return new, token


def revoke_key(ctx: Context, key: ApiKey) -> ApiKey:
    if key.revoked_at is not None:
        raise Conflict("The key is already revoked")
    before = key.status(ctx.now())
    key.revoked_at, key.revoked_by = ctx.now(), ctx.actor.principal[1]
    ctx.audit.record(
        action="api_keys.key.revoke",
        target_type="api_key",
        target_id=key.id,
        org_id=key.org_id,
        diff={"before": {"status": before}, "after": {"status": "revoked"}},
    )
    return key


def status_filter(status: str, now: datetime) -> ColumnElement[bool]:
    not_expired = or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now)
    if status == "revoked":
        return ApiKey.revoked_at.is_not(None)
    if status == "expired":
        return and_(ApiKey.revoked_at.is_(None), ApiKey.expires_at <= now)
    return and_(ApiKey.revoked_at.is_(None), not_expired)


def key_filters(
    *,
    org_id: str | None = None,
    status: str | None = None,
    owner: str | None = None,
    search: str | None = None,
    now: datetime | None = None,
) -> list[ColumnElement[bool]]:
    """Shared by the API list and the Studio page. `owner` is an owner id or owner type."""
    filters: list[ColumnElement[bool]] = []
    if org_id:
        filters.append(ApiKey.org_id == org_id)
    if status in KEY_STATUSES:
        filters.append(status_filter(status, now or clock.now()))
    if owner in OWNER_TYPES:
        filters.append(ApiKey.owner_type == owner)
    elif owner:
        filters.append(ApiKey.owner_id == owner)
    if search:
        like = f"%{search.lower()}%"
        filters.append(or_(func.lower(ApiKey.name).like(like), ApiKey.prefix == search, ApiKey.id == search))
    return filters


@dataclass(frozen=True)
class KeyPage:
    items: list[ApiKey]
    total: int
    next_cursor: str | None


def list_keys(
    session: DBSession,
    *,
    org_id: str,
    status: str | None = None,
    owner: str | None = None,
    cursor: str | None = None,
    limit: int = 20,
) -> KeyPage:
    stmt = select(ApiKey).where(*key_filters(org_id=org_id, status=status, owner=owner))
    page = cursors.newest_first(session, stmt, ApiKey.id, list_name="api-keys", cursor=cursor, limit=limit)
    return KeyPage(page.items, page.total, page.next_cursor)


def status_counts(session: DBSession, org_id: str | None, now: datetime) -> dict[str, int]:
    base = [ApiKey.org_id == org_id] if org_id else []
    return {
        s: session.scalar(select(func.count()).select_from(ApiKey).where(*base, status_filter(s, now))) or 0
        for s in KEY_STATUSES
    }


# -- authentication ------------------------------------------------------------------
def authenticate_key(token: str, tenant: TenantRef) -> Actor | None:
    """`Authorization: Bearer bbk_...`: the key's actor, or 401. Other tokens: not ours."""
    if not token.startswith(KEY_PREFIX):
        return None
    prefix = parse_token(token)
    presented = token_hash(token)
    if prefix is None:
        raise Unauthenticated(_INVALID)
    now = clock.now()
    with tenant_scope(tenant.id):
        row = db.session.execute(
            select(ApiKey, ServiceAccount.id, ServiceAccount.disabled_at, User.is_active)
            .outerjoin(
                ServiceAccount,
                (ApiKey.owner_type == "service_account") & (ServiceAccount.id == ApiKey.owner_id),
            )
            .outerjoin(User, (ApiKey.owner_type == "user") & (User.id == ApiKey.owner_id))
            .where(ApiKey.prefix == prefix)
        ).first()
        stored = row[0].token_hash if row is not None else _DUMMY_HASH
        if not hmac.compare_digest(stored.encode(), presented.encode()) or row is None:
            raise Unauthenticated(_INVALID)
        key, sa_id, sa_disabled_at, user_active = row
        if key.revoked_at is not None:
            raise Unauthenticated("The API key was revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise Unauthenticated("The API key has expired")
        if key.owner_type == "service_account" and (sa_id is None or sa_disabled_at):
            raise Unauthenticated("The API key's service account is disabled")
        if key.owner_type == "user" and not user_active:
            raise Unauthenticated("The API key's owner is deactivated")
        ip = request.remote_addr if has_request_context() else None
        current_app.extensions["bunbase"].buffer.touch_row(
            ApiKey.__table__, key.id, {"last_used_at": now, "last_used_ip": ip}
        )
        return Actor(
            kind="api_key",
            id=key.id,
            name=key.name,
            scopes=frozenset(key.scopes),
            key_org_id=key.org_id,
            owner_type=key.owner_type,
            owner_id=key.owner_id,
        )


register_authenticator(authenticate_key)


# -- Studio helpers ------------------------------------------------------------------
def orgs(session: DBSession) -> list[Organization]:
    return list(session.scalars(select(Organization).order_by(Organization.name)))


def owner_names(session: DBSession, keys: list[ApiKey]) -> dict[str, str]:
    users = {k.owner_id for k in keys if k.owner_type == "user"}
    sas = {k.owner_id for k in keys if k.owner_type == "service_account"}
    names: dict[str, Any] = {}
    if users:
        names.update({u.id: u.email for u in session.scalars(select(User).where(User.id.in_(users)))})
    if sas:
        names.update(
            {s.id: s.name for s in session.scalars(select(ServiceAccount).where(ServiceAccount.id.in_(sas)))}
        )
    return names


# -- demo data (`make run`) ----------------------------------------------------------
@hooks.on("demo_seed")
def seed_demo(tenant: TenantRef, seeded: SeededTenant) -> None:
    """In the demo org: a read-only service account with a key, and a key of alice's, so
    the API keys and Service accounts pages have content. The secrets are thrown away."""
    org = db.session.get(Organization, orgs_services.DEMO_ORG_ID)
    if org is None:
        return
    now = clock.now()
    sa = ServiceAccount(
        tenant_id=tenant.id,
        org_id=org.id,
        name="Demo CI bot",
        description="Reads tickets for the nightly report.",
        created_by=org.owner_id,
        created_at=now,
    )
    db.session.add(sa)
    db.session.flush()
    rbac.bind(db.session, tenant.id, org.id, sa.id, rbac.role_by_key(db.session, "viewer"), "service_account")
    alice = db.session.scalar(select(User.id).where(User.email == "alice@demo.test"))
    owners = [("ci-readonly", ("service_account", sa.id), ["ticket:read"])]
    if alice is not None:
        owners.append(("alice-laptop", ("user", alice), ["ticket:read", "ticket:create"]))
    # the keys are made as the org's owner would make them (the secrets are thrown away)
    with unit_of_work(tenant, trigger="seed", actor=Actor(kind="user", id=org.owner_id)) as as_owner:
        for name, owner, scopes in owners:
            _new_key_row(as_owner, org_id=org.id, name=name, scopes=scopes, owner=owner, expires_at=None)
