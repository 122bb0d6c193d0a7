"""Idempotency keys for mutating actions, scoped by tenant + actor + action.

`claim` inserts an in-progress record in its own committed transaction, so a concurrent
duplicate sees it: the unique constraint lets exactly one request through (on SQLite the
write lock serialises them, on Postgres the second INSERT waits for the first and fails).
The handler's transaction then stores the response in the same commit as its rows.

A claim names the process running its request (`bunbase.process`). A duplicate that meets
a claim still in progress answers 409 while that request may still be running: on the same
host, until its process is gone (then it is taken over at once); a claim of another host,
until the request timeout has passed (`BUNBASE_REQUEST_TIMEOUT`, 30 s).

Secrets in a stored response (an API key's `secret`, a session `token`: the action's
redacted fields) are kept encrypted with a key derived from SECRET_KEY (Fernet), so the
replay can return them while the table never holds them in the clear.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bunbase import process
from bunbase.clock import clock
from bunbase.crypto import fernet
from bunbase.db import DBSession, is_unique_violation
from bunbase.errors import IdempotencyConflict, IdempotencyMismatch
from bunbase.models import IdempotencyRecord


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
    stale_after: timedelta,
) -> IdempotencyRecord | Replay:
    """Claim the key for this request, or say what happened to the earlier one.
    `stale_after`: when an in-progress claim of another host counts as abandoned."""
    now = clock.now()
    record = IdempotencyRecord(
        tenant_id=tenant_id,
        actor_id=actor_id,
        action_name=action_name,
        key=key,
        request_hash=req_hash,
        owner=process.identity(),
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
            stale_after=stale_after,
        )
    if existing.request_hash != req_hash:
        raise IdempotencyMismatch()
    if existing.status == "completed" and existing.expires_at > now:
        return Replay(existing.response_status or 200, existing.response_body or {})
    if existing.status == "in_progress" and not _abandoned(existing, now - stale_after):
        raise IdempotencyConflict()
    # expired, or abandoned by a dead process: take it over
    existing.created_at, existing.expires_at, existing.status = now, now + ttl, "in_progress"
    existing.owner = process.identity()
    existing.response_status = existing.response_body = None
    session.commit()
    return existing


def _abandoned(record: IdempotencyRecord, cutoff: datetime) -> bool:
    """The claim's request cannot be running. On this host that is known exactly (its
    process is gone); a claim of another host counts as abandoned once it began before
    `cutoff`, longer ago than any request may run."""
    if process.is_local(record.owner):
        return process.is_gone(record.owner)
    return record.created_at <= cutoff


SEALED = "$sealed"


def _fernet(secret_key: str) -> Fernet:
    return fernet(secret_key, b"bunbase idempotent responses")


def seal(body: dict[str, Any], fields: frozenset[str], secret_key: str) -> dict[str, Any]:
    """The response as stored: the values of `fields` in its data encrypted."""
    data = body.get("data")
    if not isinstance(data, dict) or not fields.intersection(data):
        return body
    f = _fernet(secret_key)
    sealed = {
        k: ({SEALED: f.encrypt(json.dumps(v).encode()).decode()} if k in fields and v is not None else v)
        for k, v in data.items()
    }
    return {**body, "data": sealed}


def unseal(body: dict[str, Any], secret_key: str) -> dict[str, Any]:
    """The response as replayed. A value sealed under another SECRET_KEY reads "[redacted]"."""
    data = body.get("data")
    if not isinstance(data, dict):
        return body
    f = _fernet(secret_key)
    opened: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict) and set(v) == {SEALED}:
            try:
                v = json.loads(f.decrypt(v[SEALED].encode()))
            except InvalidToken:
                v = "[redacted]"
        opened[k] = v
    return {**body, "data": opened}


def complete(record: IdempotencyRecord, status: int, body: dict[str, Any]) -> None:
    """Store the response (secrets sealed first, see `seal`); called inside the handler's
    transaction."""
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
