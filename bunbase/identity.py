"""Minimal identity in the kernel: password hashing and revocable server-side sessions.

Tokens are random and shown once; only their SHA-256 is stored, so a leaked database does
not leak sessions. The users module builds sign-up, reset and device lists on top.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from bunbase.clock import clock
from bunbase.db import DBSession
from bunbase.models import AuthSession, User

_hasher = PasswordHasher()
# A real hash of a random password, verified against when the user does not exist so that
# a login for an unknown email costs the same time as one for a known email.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

SESSION_PREFIX = "bbs_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    if user is None or not user.password_hash:
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return False
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return True


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str = SESSION_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def create_session(
    session: DBSession,
    user: User,
    *,
    ttl: timedelta,
    kind: str = "api",
    ip: str | None = None,
    user_agent: str | None = None,
) -> tuple[str, AuthSession]:
    token = new_token()
    now = clock.now()
    record = AuthSession(
        tenant_id=user.tenant_id,
        user_id=user.id,
        token_hash=token_hash(token),
        kind=kind,
        ip=ip,
        user_agent=(user_agent or "")[:400] or None,
        created_at=now,
        last_seen_at=now,
        expires_at=now + ttl,
    )
    session.add(record)
    return token, record


def find_session(session: DBSession, token: str) -> AuthSession | None:
    """The live session for `token` (in the current tenant scope), or None."""
    if not token.startswith(SESSION_PREFIX):
        return None
    record: AuthSession | None = session.scalar(
        select(AuthSession).where(AuthSession.token_hash == token_hash(token))
    )
    if record is None or record.revoked_at is not None or record.expires_at <= clock.now():
        return None
    if not record.user.is_active:
        return None
    return record


def revoke(record: AuthSession) -> None:
    if record.revoked_at is None:
        record.revoked_at = clock.now()
    forget_sessions()


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    user_id: str
    email: str
    name: str
    is_tenant_admin: bool
    is_platform_operator: bool
    expires_at: datetime


#: token hash -> (monotonic deadline, session). Revocations in this process clear it at once;
#: another process sees a revocation within CACHE_SECONDS.
CACHE_SECONDS = 5.0
_cache: dict[str, tuple[float, SessionInfo]] = {}
_cache_lock = threading.Lock()


def forget_sessions() -> None:
    with _cache_lock:
        _cache.clear()


def lookup_session(session: DBSession, token: str) -> SessionInfo | None:
    """`find_session` behind a short in-process cache: no query on most requests. The cache
    is keyed by tenant too: a token is only ever valid in its own tenant."""
    from bunbase.tenancy import current_tenant_id

    key = f"{current_tenant_id()}:{token_hash(token)}"
    hit = _cache.get(key)
    now = time.monotonic()
    if hit is not None and hit[0] > now and hit[1].expires_at > clock.now():
        return hit[1]
    record = find_session(session, token)
    if record is None:
        return None
    user = record.user
    info = SessionInfo(
        record.id,
        user.id,
        user.email,
        user.name,
        user.is_tenant_admin,
        user.is_platform_operator,
        record.expires_at,
    )
    with _cache_lock:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[key] = (now + CACHE_SECONDS, info)
    return info
