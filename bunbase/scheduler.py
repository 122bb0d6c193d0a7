"""The scheduler process: one active at a time (a Redis lease), the others stand by.

Each tick it relays outbox rows a crash left behind; hourly it purges expired idempotency
keys and sealed values.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timedelta

import structlog
from flask import Flask, current_app

from bunbase import events, hooks, idempotency, jobs, outbox, redis_conn, schedules, sealed, workflows
from bunbase.clock import clock
from bunbase.db import db
from bunbase.tenancy import unscoped

log = structlog.get_logger("bunbase.scheduler")

LEASE_KEY = "bunbase:scheduler:leader"
LEASE_SECONDS = 15
TICK_SECONDS = 2.0
PURGE_EVERY = 3600.0


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) and 1 or 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """A leader lease in Redis, taken with SET NX and renewed or released only by its holder
    (compare-and-set in one Lua call, so a holder never touches a lease it lost)."""

    def __init__(self, holder: str | None = None) -> None:
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.redis = redis_conn.client()

    def acquire_or_renew(self) -> bool:
        return bool(self.redis.eval(_RENEW, 1, LEASE_KEY, self.holder, LEASE_SECONDS))

    def release(self) -> None:
        self.redis.eval(_RELEASE, 1, LEASE_KEY, self.holder)


_crons_synced_at: datetime | None = None


def _sync_action_crons() -> None:
    """Keep the schedules of `triggers.cron(...)` actions in step with the registry, at most
    once a minute of platform time (again at once if the clock went backwards, as in tests)."""
    global _crons_synced_at
    now = clock.now()
    if _crons_synced_at is not None and _crons_synced_at <= now < _crons_synced_at + timedelta(minutes=1):
        return
    try:
        schedules.sync_action_crons(current_app.extensions["bunbase"].registry)
        _crons_synced_at = now
    except Exception:
        log.exception("syncing action cron schedules failed")
        db.session.rollback()


def run_due() -> int:
    """Everything whose time has come: schedules, delayed jobs and retries, workflow waits."""
    _sync_action_crons()
    fired = len(schedules.fire_due())
    fired += jobs.enqueue_due()
    fired += workflows.wake_due()
    return fired


def tick(last_purge: float) -> float:
    """One round of scheduler work; returns when the purge last ran."""
    outbox.relay()
    jobs.relay_lost()
    events.relay_undispatched()
    run_due()
    jobs.recover_abandoned()
    hooks.fire("scheduler_tick")
    if time.monotonic() - last_purge >= PURGE_EVERY:
        with unscoped():
            idempotency.purge_expired(db.session)
            sealed.purge_expired(db.session)
        return time.monotonic()
    return last_purge


def run_scheduler(app: Flask, *, once: bool = False) -> None:
    lease = Lease()
    last_purge = 0.0
    log.info("scheduler started", holder=lease.holder)
    try:
        while True:
            if lease.acquire_or_renew():
                with app.app_context():
                    try:
                        last_purge = tick(last_purge)
                    except Exception:
                        log.exception("scheduler tick failed")
                        db.session.rollback()
            if once:
                return
            time.sleep(TICK_SECONDS)
    except KeyboardInterrupt:
        pass
    finally:
        lease.release()
