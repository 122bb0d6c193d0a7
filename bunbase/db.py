"""The SQLAlchemy handle, engine tuning for SQLite (WAL) and Postgres, and shared types."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, DateTime, MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session
from sqlalchemy.orm import registry as sa_registry

from bunbase import tenancy

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    registry = sa_registry(
        metadata=MetaData(naming_convention=NAMING),
        type_annotation_map={dict[str, Any]: JSON, datetime: DateTime()},
    )


db = SQLAlchemy(model_class=Base)

#: what services accept: a plain Session or Flask-SQLAlchemy's scoped session
DBSession = Session | scoped_session[Any]
tenancy.install(Session)

# SQLite: a mutating action takes the write lock up front (BEGIN IMMEDIATE) so two writers
# queue on busy_timeout instead of failing with SQLITE_BUSY when a read upgrades to a write.
_sqlite_begin: ContextVar[str] = ContextVar("bunbase_sqlite_begin", default="BEGIN")


@contextmanager
def write_intent() -> Iterator[None]:
    token = _sqlite_begin.set("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        _sqlite_begin.reset(token)


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    # Writers queue on an OS file lock before BEGIN IMMEDIATE: a waiter wakes the moment the
    # lock is free (SQLite's own busy handler polls with sleeps of up to 100 ms), across
    # threads and processes alike. Readers never take it (WAL lets them run alongside).
    database = engine.url.database or ""
    lock_path = f"{database}.writelock" if database and database != ":memory:" else None

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = _sqlite_begin.get()
        if mode == "BEGIN IMMEDIATE" and lock_path:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:  # an exception while waiting (a job's timeout alarm) must not leak the fd
                fcntl.flock(fd, fcntl.LOCK_EX)
                conn.info["bunbase_write_lock"] = fd
            except BaseException:
                conn.info.pop("bunbase_write_lock", None)
                os.close(fd)  # closing releases the lock if it was taken
                raise
        try:
            conn.exec_driver_sql(mode)
        except BaseException:
            _release(conn)
            raise

    def _release(conn: Any) -> None:
        fd = conn.info.pop("bunbase_write_lock", None)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        fd = record.info.pop("bunbase_write_lock", None)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def insert_now(session: DBSession, model: type[Any], obj: Any) -> None:
    """INSERT a new append-only row at once with Core, bypassing the unit of work.

    For rows the transaction only ever adds (audit entries, events): the ORM would spend
    more on tracking them than the INSERT costs. `obj` stays transient; columns it leaves
    None get their defaults. The row lives and dies with the session's transaction.
    """
    table = model.__table__
    values = {c.key: v for c in table.columns if (v := getattr(obj, c.key, None)) is not None}
    session.connection().execute(table.insert(), values)


def is_unique_violation(exc: Exception) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "unique" in text or "duplicate key" in text
