"""Org grants kept per process on SQLite, so an org-scoped call does not query them.

Every org-scoped call needs the caller's role and its permissions in the org; they change
rarely. On SQLite (one host by construction) each process keeps what it read, stamped with
the version of a file next to the database. A commit that changes memberships, roles,
role grants or organizations moves the file's modification time (after the commit), and
a process that sees a new time reads again: a change is seen by every process from its
next call on. An entry also expires after `TTL` seconds, so a process that died between
its commit and the stamp delays nobody for long. On Postgres (possibly many hosts) grants
are read on every call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from itertools import chain
from typing import Any, TypeVar

import structlog
from sqlalchemy import event
from sqlalchemy.orm import Session

from bunbase.db import DBSession, db, on_rows_written

#: the tables whose rows decide a caller's grants in an org (an org's deletion cascades to
#: its memberships in the database, without the ORM seeing them go)
WATCHED = frozenset({"memberships", "rbac_roles", "rbac_role_permissions", "organizations"})
TTL = 30.0
MAX_ENTRIES = 50_000
_CHANGED = "rbac_grants_changed"
log = structlog.get_logger("bunbase.rbac.grants_cache")

T = TypeVar("T")
_entries: dict[tuple[str, ...], tuple[int, float, Any]] = {}
_paths: dict[int, str | None] = {}


def _stamp_path() -> str | None:
    engine = db.engine
    key = id(engine)
    if key not in _paths:
        name = engine.url.database
        sqlite_file = engine.dialect.name == "sqlite" and name not in (None, "", ":memory:")
        _paths[key] = f"{name}.grants-stamp" if sqlite_file else None
    return _paths[key]


def _version(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0


def cached(key: tuple[str, ...], load: Callable[[], T]) -> T:
    """`load()`'s answer for `key`, reused while no watched table changed (SQLite)."""
    path = _stamp_path()
    if path is None:
        return load()
    version = _version(path)  # read before loading: a change made meanwhile reloads next time
    now = time.monotonic()
    hit = _entries.get(key)
    if hit is not None and hit[0] == version and hit[1] > now:
        return hit[2]  # type: ignore[no-any-return]
    value = load()
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[key] = (version, now + TTL, value)
    return value


def changed() -> None:
    """Forget every entry here and tell the other processes (after a committed change)."""
    _entries.clear()
    path = _stamp_path()
    if path is None:
        return
    stamp = max(time.time_ns(), _version(path) + 1)
    try:
        if not os.path.exists(path):
            with open(path, "a"):
                pass
        os.utime(path, ns=(stamp, stamp))
    except OSError:  # the change is committed: the others catch up when their entries expire
        log.exception("could not move the grants stamp", path=path)


def _watched(obj: Any) -> bool:
    return getattr(obj, "__tablename__", None) in WATCHED


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _ctx: Any) -> None:
    if any(_watched(o) for o in chain(session.new, session.dirty, session.deleted)):
        session.info[_CHANGED] = True


@on_rows_written
def _note_rows(session: DBSession, tables: frozenset[str]) -> None:
    if not tables.isdisjoint(WATCHED):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: Any) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in WATCHED:
            state.session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _stamp_after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        changed()


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, previous: Any) -> None:
    if previous.parent is None:  # a savepoint's rollback leaves the outer changes standing
        session.info.pop(_CHANGED, None)
