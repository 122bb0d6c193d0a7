"""Secrets a job needs, kept out of its payload.

A job payload is shown to tenant administrators (API and Studio) and kept for as long as the
job row lives, so a secret — a password-reset link, an invitation code — never goes in it.
`seal(ctx, value, ttl=...)` stores the value encrypted (Fernet, a key derived from
SECRET_KEY) in the caller's transaction and returns a reference (`sec_...`); the job passes
the reference and `unseal(...)` resolves it when it runs. A reference is useless without the
server's key, expires with the secret, and is purged by the scheduler after that.
"""

from __future__ import annotations

from datetime import timedelta

from cryptography.fernet import InvalidToken
from flask import current_app
from sqlalchemy import delete, select

from bunbase.clock import clock
from bunbase.context import Context
from bunbase.crypto import fernet
from bunbase.db import DBSession
from bunbase.errors import BunbaseError
from bunbase.models import SealedValue

PURPOSE = b"bunbase sealed values"


class SealedValueGone(BunbaseError):
    """The reference is unknown, of another tenant, expired, or sealed under another key."""

    status, code, default_message = 410, "sealed_value_gone", "The secret this job needs has expired"


def _key() -> str:
    return str(current_app.config["SECRET_KEY"])


def seal(ctx: Context, value: str, *, ttl: timedelta, purpose: str = "job") -> str:
    """Store `value` encrypted for `ttl`, in the caller's transaction; return its reference."""
    now = clock.now()
    row = SealedValue(
        tenant_id=ctx.tenant.id,
        purpose=purpose,
        ciphertext=fernet(_key(), PURPOSE).encrypt(value.encode()).decode(),
        created_at=now,
        expires_at=now + ttl,
    )
    ctx.db.add(row)
    ctx.db.flush()
    return row.id


def unseal(session: DBSession, ref: str) -> str:
    """The value behind `ref` (in the tenant in scope), or `SealedValueGone`."""
    # a query, not `get`: the identity map would answer without the tenant filter
    row = session.scalar(select(SealedValue).where(SealedValue.id == ref))
    if row is None or row.expires_at <= clock.now():
        raise SealedValueGone()
    try:
        return fernet(_key(), PURPOSE).decrypt(row.ciphertext.encode()).decode()
    except InvalidToken:
        raise SealedValueGone("The secret this job needs was sealed under another SECRET_KEY") from None


def purge_expired(session: DBSession) -> int:
    """Delete sealed values past their expiry (run by the scheduler, across tenants)."""
    result = session.execute(delete(SealedValue).where(SealedValue.expires_at <= clock.now()))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
