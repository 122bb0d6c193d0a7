"""Brute-force protection for password sign-in: failed attempts counted in Redis.

Two moving windows, kept as sorted sets scored by `bunbase.clock` time (so tests can move
time forward and Retry-After is exact):

* per account: `ACCOUNT_LIMIT` failures for one email in one tenant within `WINDOW`
  lock that email out, even with the right password, until the oldest failure leaves
  the window;
* per IP: `IP_LIMIT` failures from one address within `WINDOW` (any email, any tenant)
  stop every password sign-in from that address.

A sign-in first *reserves* a slot in both windows atomically (one Lua script, so parallel
guesses cannot all slip under the limit); a success then releases the slot from the IP
window and clears the account window, so only failures count. Limits can be overridden
with the Flask config keys `AUTH_FAILURES_PER_ACCOUNT`, `AUTH_FAILURES_PER_IP` and
`AUTH_FAILURE_WINDOW` (a duration such as "15m").

Every password sign-in (the API, Studio, the invitation page) goes through
`bunbase.signin.check_password`, which uses this pair.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

from flask import current_app

from bunbase import redis_conn
from bunbase.clock import clock, parse_duration
from bunbase.errors import RateLimited

ACCOUNT_LIMIT = 5
IP_LIMIT = 20
WINDOW = "15m"
PREFIX = "bunbase:auth:failures"

# KEYS: the windows to check and reserve in. ARGV: now, window seconds, member, ttl, then
# one limit per key. Returns {0, 0} when reserved, else {index of the full key, wait s}.
_RESERVE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local limit = tonumber(ARGV[4 + i])
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {i, tostring(tonumber(oldest[2]) + window - now)}
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('EXPIRE', key, tonumber(ARGV[4]))
end
return {0, '0'}
"""


@dataclass(frozen=True)
class Attempt:
    account_key: str
    ip_key: str
    member: str


class LockedOut(RateLimited):
    """Too many failed sign-ins for this account or from this address (429)."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__("Too many failed sign-in attempts. Try again later.", retry_after=retry_after)
        self.scope = scope  # "account" | "ip"


def _config(key: str, default: object) -> object:
    try:
        return current_app.config.get(key, default)
    except RuntimeError:  # outside an app context
        return default


def limits() -> tuple[int, int, float]:
    window = parse_duration(str(_config("AUTH_FAILURE_WINDOW", WINDOW))).total_seconds()
    account = int(_config("AUTH_FAILURES_PER_ACCOUNT", ACCOUNT_LIMIT))  # type: ignore[call-overload]
    ip = int(_config("AUTH_FAILURES_PER_IP", IP_LIMIT))  # type: ignore[call-overload]
    return account, ip, window


def account_key(tenant_id: str, email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"{PREFIX}:account:{tenant_id}:{digest}"


def ip_key(ip: str | None) -> str:
    return f"{PREFIX}:ip:{ip or 'unknown'}"


def reserve(tenant_id: str, email: str, ip: str | None) -> Attempt:
    """Count this attempt as a failure until `succeeded()` says otherwise.

    Raises `LockedOut` (429 with Retry-After) when either window is already full.
    """
    account_limit, ip_limit, window = limits()
    attempt = Attempt(account_key(tenant_id, email), ip_key(ip), os.urandom(8).hex())
    now = clock.aware().timestamp()
    script = redis_conn.client().register_script(_RESERVE)
    full, wait = script(
        keys=[attempt.account_key, attempt.ip_key],
        args=[now, window, attempt.member, int(window) + 60, account_limit, ip_limit],
    )
    if int(full):
        scope = "account" if int(full) == 1 else "ip"
        raise LockedOut(scope, max(1, math.ceil(float(wait))))
    return attempt


def succeeded(attempt: Attempt) -> None:
    """A correct password: the account starts over, and the IP keeps only its failures."""
    conn = redis_conn.client()
    pipe = conn.pipeline()
    pipe.delete(attempt.account_key)
    pipe.zrem(attempt.ip_key, attempt.member)
    pipe.execute()


def clear_account(tenant_id: str, email: str) -> None:
    """Forget an account's failures (after a password reset proves who the owner is)."""
    redis_conn.client().delete(account_key(tenant_id, email))


def failures(tenant_id: str, email: str) -> int:
    """Failures for an account still inside the window (for Studio and tests)."""
    _, _, window = limits()
    now = clock.aware().timestamp()
    return int(redis_conn.client().zcount(account_key(tenant_id, email), now - window, "+inf"))
