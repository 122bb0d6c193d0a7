"""Idempotency keys for mutating actions, scoped by tenant + actor + action.

`claim` inserts an in-progress record in its own committed transaction, so a concurrent
duplicate sees it: the unique constraint lets exactly one request through (on SQLite the
write lock serialises them, on Postgres the second INSERT waits for the first and fails).
The handler's transaction then stores the response in the same commit as its rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bunbase.clock import clock
from bunbase.db import DBSession, is_unique_violation
from bunbase.errors import IdempotencyConflict, IdempotencyMismatch
from bunbase.models import IdempotencyRecord

#: an in-progress record older than this is taken to be abandoned (its process died)
STALE_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


def request_hash(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim(
    session: DBSession,
    *,
    tenant_id: str,
    actor_id: str,
    action_name: str,
    key: str,
    req_hash: str,
    ttl: timedelta,
) -> IdempotencyRecord | Replay:
    """Claim the key for this request, or say what happened to the earlier one."""
    now = clock.now()
    record = IdempotencyRecord(
        tenant_id=tenant_id,
        actor_id=actor_id,
        action_name=action_name,
        key=key,
        request_hash=req_hash,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(record)
    try:
        session.commit()
        return record
    except IntegrityError as exc:
        session.rollback()
        if not is_unique_violation(exc):
            raise
    existing: IdempotencyRecord | None = session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.actor_id == actor_id,
            IdempotencyRecord.action_name == action_name,
            IdempotencyRecord.key == key,
        )
    )
    if existing is None:  # released between our insert and select: try once more
        return claim(
            session,
            tenant_id=tenant_id,
            actor_id=actor_id,
            action_name=action_name,
            key=key,
            req_hash=req_hash,
            ttl=ttl,
        )
    if existing.request_hash != req_hash:
        raise IdempotencyMismatch()
    if existing.status == "completed" and existing.expires_at > now:
        return Replay(existing.response_status or 200, existing.response_body or {})
    if existing.status == "in_progress" and existing.created_at > now - STALE_AFTER:
        raise IdempotencyConflict()
    # expired, or abandoned by a dead process: take it over
    existing.created_at, existing.expires_at, existing.status = now, now + ttl, "in_progress"
    existing.response_status = existing.response_body = None
    session.commit()
    return existing


def complete(record: IdempotencyRecord, status: int, body: dict[str, Any]) -> None:
    """Store the response; called inside the handler's transaction."""
    record.status = "completed"
    record.response_status = status
    record.response_body = body


def release(session: DBSession, record_id: str) -> None:
    """Forget a claim whose request failed, so the client may retry with the same key."""
    session.rollback()
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
    session.commit()


def purge_expired(session: DBSession) -> int:
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= clock.now()))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
