"""Tenant registry lookups with a short in-process cache (no round trip per request)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import or_, select

from bunbase.context import TenantRef
from bunbase.db import db
from bunbase.errors import NotFound
from bunbase.models import Tenant

_TTL = 30.0
_cache: dict[str, tuple[float, TenantRef | None]] = {}
_lock = threading.Lock()


def _load(key: str, by_host: bool) -> TenantRef | None:
    column_filter = Tenant.hostname == key if by_host else or_(Tenant.id == key, Tenant.slug == key)
    row = db.session.scalar(select(Tenant).where(column_filter))
    return TenantRef(row.id, row.slug, row.name, row.status) if row else None


def lookup(key: str, *, by_host: bool = False) -> TenantRef | None:
    cache_key = ("host:" if by_host else "key:") + key
    now = time.monotonic()
    hit = _cache.get(cache_key)
    if hit is not None and hit[0] > now:
        return hit[1]
    ref = _load(key, by_host)
    with _lock:
        _cache[cache_key] = (now + (_TTL if ref else 2.0), ref)
    return ref


def tenant_ref(tenant_id: str) -> TenantRef:
    ref = lookup(tenant_id)
    if ref is None:
        raise NotFound("Tenant not found")
    return ref


def invalidate() -> None:
    with _lock:
        _cache.clear()
