"""Tenant provisioning: the registry row plus its first admin user."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from bunbase import hooks, identity, tenancy_cache
from bunbase.db import db
from bunbase.models import Tenant, User
from bunbase.tenancy import tenant_scope

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class SeededTenant:
    tenant_id: str
    slug: str
    admin_email: str
    admin_password: str


def create_tenant(
    slug: str,
    name: str,
    *,
    admin_email: str,
    admin_password: str | None = None,
    admin_name: str = "Admin",
    operator: bool = False,
) -> SeededTenant:
    if not SLUG.match(slug):
        raise ValueError(f"invalid tenant slug {slug!r}: lowercase letters, digits and '-'")
    password = admin_password or secrets.token_urlsafe(12)
    tenant = Tenant(slug=slug, name=name)
    db.session.add(tenant)
    db.session.flush()
    with tenant_scope(tenant.id):
        admin = User(
            tenant_id=tenant.id,
            email=admin_email.lower(),
            name=admin_name,
            password_hash=identity.hash_password(password),
            is_tenant_admin=True,
            is_platform_operator=operator,
        )
        db.session.add(admin)
        db.session.flush()
        hooks.fire("tenant_created", tenant, admin)
        db.session.commit()
    tenancy_cache.invalidate()
    return SeededTenant(tenant.id, slug, admin_email.lower(), password)


def seed_tenants(count: int) -> list[SeededTenant]:
    taken = db.session.scalar(select(func.count()).select_from(Tenant)) or 0
    out: list[SeededTenant] = []
    n = taken
    while len(out) < count:
        n += 1
        slug = f"tenant-{n:03d}"
        if db.session.scalar(select(Tenant.id).where(Tenant.slug == slug)):
            continue
        out.append(create_tenant(slug, f"Tenant {n:03d}", admin_email=f"admin@{slug}.test"))
    return out
