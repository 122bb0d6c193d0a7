"""The write path under the executor: rows queued with `append_row` and new plain rows
written together at commit (`insert_new`), and, on SQLite, when the write lock is taken
and given back."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, insert, inspect, select

from bunbase.clock import clock
from bunbase.db import append_row, begin_write, db, insert_new, reads_then_write
from bunbase.ids import new_id
from bunbase.models import AuditEntry
from bunbase.runtime_models import EventRecord
from bunbase.tenancy import tenant_scope
from modules.support.models import Ticket
from tests.helpers import assert_success, count, rows

AUDIT = AuditEntry.__table__


def audit_row(tenant_id: str, action: str) -> dict[str, Any]:
    return {"id": new_id("aud"), "tenant_id": tenant_id, "actor_type": "system", "action": action,
            "created_at": clock.now()}


def ticket(tenant_id: str, subject: str) -> Ticket:
    return Ticket(id=new_id("tkt"), tenant_id=tenant_id, org_id="org_x", subject=subject,
                  body="a body of ten", priority="low", status="open", created_at=clock.now())


def audit_actions(tenant_id: str) -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).where(AuditEntry.tenant_id == tenant_id)))


def test_a_created_ticket_its_audit_entry_and_event_commit_together(app, client, tenant_a):
    body = assert_success(client.post("/v1/support/tickets", json=tenant_a.ticket(),
                                      headers=tenant_a.headers()))
    ticket_id = body["data"]["ticketId"]
    (row,) = rows(app, Ticket, Ticket.id == ticket_id)
    assert (row.tenant_id, row.status) == (tenant_a.id, "open")
    (entry,) = rows(app, AuditEntry, AuditEntry.target_id == ticket_id)
    assert (entry.action, entry.run_id, entry.trace_id) == (
        "support.ticket.create", body["run_id"], body["trace_id"])
    (evt,) = rows(app, EventRecord, EventRecord.source_run_id == body["run_id"])
    assert evt.payload["ticketId"] == ticket_id and evt.tenant_id == tenant_a.id


def test_appended_rows_are_seen_by_a_query_in_the_transaction_and_dropped_on_rollback(app, tenant_a):
    with app.app_context(), tenant_scope(tenant_a.id):
        append_row(db.session, AUDIT, audit_row(tenant_a.id, "test.appended"))
        assert audit_actions(tenant_a.id).count("test.appended") == 1  # written before the query
        db.session.rollback()
        assert "test.appended" not in audit_actions(tenant_a.id)
        append_row(db.session, AUDIT, audit_row(tenant_a.id, "test.dropped"))
        db.session.rollback()  # never written: dropped with the transaction
        db.session.commit()
        db.session.remove()
    assert count(app, AuditEntry, AuditEntry.action.in_(("test.appended", "test.dropped"))) == 0


def test_a_savepoint_rollback_drops_only_the_rows_appended_after_it(app, tenant_a):
    with app.app_context(), tenant_scope(tenant_a.id):
        append_row(db.session, AUDIT, audit_row(tenant_a.id, "test.before"))
        nested = db.session.begin_nested()
        append_row(db.session, AUDIT, audit_row(tenant_a.id, "test.inside"))
        nested.rollback()
        db.session.commit()
        db.session.remove()
    assert count(app, AuditEntry, AuditEntry.action == "test.before") == 1
    assert count(app, AuditEntry, AuditEntry.action == "test.inside") == 0


def test_new_plain_rows_are_inserted_at_commit_and_end_up_persistent(app, tenant_a):
    with app.app_context(), tenant_scope(tenant_a.id):
        first, second = ticket(tenant_a.id, "first one"), ticket(None, "second one")  # type: ignore[arg-type]
        db.session.add_all([first, second])
        append_row(db.session, AUDIT, audit_row(tenant_a.id, "test.with-rows"))
        assert insert_new(db.session) == 2
        assert inspect(first).persistent and inspect(second).persistent
        assert second.tenant_id == tenant_a.id  # stamped, as the flush would
        db.session.commit()
        assert first.subject == "first one"  # reloads after commit, like any persistent row
        db.session.remove()
    assert {t.subject for t in rows(app, Ticket)} == {"first one", "second one"}
    assert count(app, AuditEntry, AuditEntry.action == "test.with-rows") == 1


def test_rows_written_by_insert_new_leave_the_session_on_rollback_as_flushed_rows_do(app, tenant_a):
    with app.app_context(), tenant_scope(tenant_a.id):
        made = ticket(tenant_a.id, "rolled back")
        db.session.add(made)
        assert insert_new(db.session) == 1
        made_id = made.id
        assert db.session.get(Ticket, made_id) is made  # in the identity map, as after a flush
        db.session.rollback()
        assert made not in db.session and inspect(made).transient  # as the flush's rollback leaves it
        assert db.session.get(Ticket, made_id) is None
        db.session.remove()


def test_with_a_changed_row_in_the_session_the_flush_writes_everything(app, tenant_a):
    with app.app_context(), tenant_scope(tenant_a.id):
        old = ticket(tenant_a.id, "old subject")
        db.session.add(old)
        db.session.commit()
        old.subject = "new subject"
        db.session.add(ticket(tenant_a.id, "brand new"))
        assert insert_new(db.session) == 0  # an UPDATE is owed: left to the unit of work
        db.session.commit()
        db.session.remove()
    assert {t.subject for t in rows(app, Ticket)} == {"new subject", "brand new"}


# -- SQLite: the write lock ------------------------------------------------------------------
@pytest.fixture
def lock_path(app) -> str:
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("the write lock is SQLite's")
        path = f"{db.engine.url.database}.writelock"
    # the run buffer's thread takes the lock for its flushes: stopped (it restarts on the
    # next run it is given), so the lock is this test's alone
    app.extensions["bunbase"].buffer.close()
    return path


def lock_is_free(path: str) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also lets go of it if it was taken
    return True


@contextmanager
def watching_commits(app: Any, path: str) -> Iterator[list[bool]]:
    """Whether the lock was still held when SQLAlchemy's "commit" event fired (before COMMIT)."""
    seen: list[bool] = []

    def on_commit(_conn: Any) -> None:
        seen.append(not lock_is_free(path))

    with app.app_context():
        event.listen(db.engine, "commit", on_commit)
        try:
            yield seen
        finally:
            event.remove(db.engine, "commit", on_commit)


def test_the_write_lock_is_held_until_commit_has_run(app, client, tenant_a, lock_path):
    with watching_commits(app, lock_path) as seen:
        assert_success(client.post("/v1/support/tickets", json=tenant_a.ticket(),
                                   headers=tenant_a.headers()))
    assert seen and all(seen)  # the next writer is let in only once COMMIT is done
    assert lock_is_free(lock_path)


def test_a_mutating_call_reads_without_the_lock_and_takes_it_at_its_next_statement(app, tenant_a,
                                                                                  lock_path):
    with app.app_context(), tenant_scope(tenant_a.id):
        with reads_then_write():
            db.session.scalar(select(func.count()).select_from(Ticket))
            assert lock_is_free(lock_path)  # reads (auth, guards) let other writers on
        begin_write(db.session)
        assert lock_is_free(lock_path)  # nothing ran yet: building rows costs no lock time
        db.session.scalar(select(func.count()).select_from(Ticket))
        assert not lock_is_free(lock_path)  # the first statement after it took the lock
        db.session.rollback()
        assert lock_is_free(lock_path)
        db.session.remove()


def test_a_write_during_the_reads_begins_a_transaction_first(app, tenant_a, lock_path):
    with app.app_context(), tenant_scope(tenant_a.id):
        with reads_then_write():
            db.session.scalar(select(func.count()).select_from(Ticket))
            db.session.execute(insert(AUDIT).values(audit_row(tenant_a.id, "test.early-write")))
            assert not lock_is_free(lock_path)
        db.session.rollback()  # nothing was written outside a transaction: it goes
        db.session.remove()
    assert count(app, AuditEntry, AuditEntry.action == "test.early-write") == 0


def test_begin_write_before_any_read_also_waits_for_the_next_statement(app, tenant_a, lock_path):
    with app.app_context(), tenant_scope(tenant_a.id):
        begin_write(db.session)  # nothing read yet (the guards' grants were kept, say)
        assert lock_is_free(lock_path)
        db.session.scalar(select(func.count()).select_from(Ticket))
        assert not lock_is_free(lock_path)
        db.session.rollback()
        db.session.remove()


def in_database_file(path: str, ticket_id: str) -> bool:
    """Whether the ticket is in the database file itself, leaving out the WAL: it is once a
    checkpoint has copied it there."""
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT 1 FROM support_tickets WHERE id = ?", (ticket_id,)).fetchone() is not None
    finally:
        conn.close()


@contextmanager
def watching_checkpoints(lock_path: str) -> Iterator[list[bool]]:
    """Each checkpoint the session's connection runs: whether the write lock was free then."""
    raw = db.session.connection().connection.dbapi_connection
    seen: list[bool] = []

    def on_statement(sql: str) -> None:
        if "wal_checkpoint" in sql:
            seen.append(lock_is_free(lock_path))

    raw.set_trace_callback(on_statement)
    try:
        yield seen
    finally:
        raw.set_trace_callback(None)


def create_ticket(tenant_id: str, subject: str) -> str:
    made = ticket(tenant_id, subject)
    db.session.add(made)
    db.session.commit()
    return made.id


def test_sqlites_own_checkpoint_inside_commit_is_only_a_backstop_far_past_the_wal_limit(app, lock_path):
    from bunbase.db import WAL_BACKSTOP, WAL_LIMIT

    with app.app_context():
        raw = db.session.connection().connection.dbapi_connection
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_BACKSTOP > WAL_LIMIT
        db.session.remove()


def test_a_checkpoint_that_fails_leaves_the_commit_done_and_the_lock_free(app, tenant_a, lock_path,
                                                                          monkeypatch):
    import bunbase.db as bunbase_db

    monkeypatch.setattr(bunbase_db, "CHECKPOINT_EVERY", 1)
    monkeypatch.setattr(bunbase_db, "WAL_LIMIT", 1)  # the second checkpoint takes the lock...
    real_flock, failing = fcntl.flock, []

    def flock(fd: int, op: int) -> None:
        if failing and op == fcntl.LOCK_EX:
            raise OSError(37, "No locks available")  # ...and taking it fails
        real_flock(fd, op)

    monkeypatch.setattr(bunbase_db.fcntl, "flock", flock)
    with app.app_context(), tenant_scope(tenant_a.id):
        raw = db.session.connection().connection.dbapi_connection
        raw.set_trace_callback(lambda sql: failing.append(1) if "wal_checkpoint" in sql else None)
        made = create_ticket(tenant_a.id, "committed all the same")  # no exception: it is committed
        raw.set_trace_callback(None)
        assert failing  # the checkpoint ran and its lock failed
        db.session.remove()
    assert lock_is_free(lock_path)
    assert [t.subject for t in rows(app, Ticket) if t.id == made] == ["committed all the same"]


def test_a_checkpoint_runs_after_the_commit_once_the_write_lock_is_free(app, tenant_a, lock_path,
                                                                          monkeypatch):
    import bunbase.db as bunbase_db

    monkeypatch.setattr(bunbase_db, "CHECKPOINT_EVERY", 1)
    database = lock_path.removesuffix(".writelock")
    with app.app_context(), tenant_scope(tenant_a.id), watching_checkpoints(lock_path) as seen:
        made = create_ticket(tenant_a.id, "checkpointed")
        assert seen == [True]  # one, with the lock let go: other writers never wait for it
        assert in_database_file(database, made)  # copied from the WAL into the file
    with app.app_context():
        db.session.remove()


def test_past_the_wal_limit_the_checkpoint_is_made_holding_the_write_lock(app, tenant_a, lock_path,
                                                                            monkeypatch):
    import bunbase.db as bunbase_db

    monkeypatch.setattr(bunbase_db, "CHECKPOINT_EVERY", 1)
    monkeypatch.setattr(bunbase_db, "WAL_LIMIT", 1)
    with app.app_context(), tenant_scope(tenant_a.id):
        with watching_checkpoints(lock_path) as seen:
            create_ticket(tenant_a.id, "a WAL past its limit")
        # the first, without the lock, finds the WAL past the limit; the second holds the lock,
        # so no writer adds to the WAL before the next write transaction starts it again
        assert seen == [True, False]
        assert lock_is_free(lock_path)
        db.session.remove()


def test_rows_written_at_commit_read_back_as_the_orm_wrote_them_and_clashes_raise_integrity(app,
                                                                                         tenant_a):
    from datetime import datetime

    from sqlalchemy.exc import IntegrityError

    at = datetime(2026, 1, 2, 3, 4, 5, 678901)
    with app.app_context(), tenant_scope(tenant_a.id):
        row = audit_row(tenant_a.id, "test.types")
        row.update(created_at=at, diff={"after": {"n": 1, "s": "é"}})
        append_row(db.session, AUDIT, row)
        db.session.commit()
        entry = db.session.get(AuditEntry, row["id"])
        assert (entry.created_at, entry.diff) == (at, {"after": {"n": 1, "s": "é"}})
        append_row(db.session, AUDIT, dict(row))  # the same id again
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        db.session.remove()


def test_an_invalidated_connection_gives_the_write_lock_back(app, tenant_a, lock_path):
    from bunbase.db import write_intent

    with app.app_context(), tenant_scope(tenant_a.id):
        with write_intent():
            conn = db.session.connection()
        assert not lock_is_free(lock_path)
        conn.invalidate()  # a connection lost mid-transaction never commits nor checks in
        assert lock_is_free(lock_path)
        db.session.rollback()
        db.session.remove()


def test_a_new_row_whose_insert_fails_is_left_out_of_the_session(app, tenant_a):
    from sqlalchemy.exc import IntegrityError

    with app.app_context(), tenant_scope(tenant_a.id):
        first = ticket(tenant_a.id, "first")
        db.session.add(first)
        insert_new(db.session)
        first_id = first.id
        db.session.commit()
        db.session.remove()
        clash = ticket(tenant_a.id, "clash")
        clash.id = first_id  # the same primary key: the INSERT fails
        db.session.add(clash)
        with pytest.raises(IntegrityError):
            insert_new(db.session)
        assert clash not in db.session and not inspect(clash).persistent
        db.session.rollback()
        assert db.session.get(Ticket, first_id).subject == "first"
        db.session.remove()


def test_the_quick_datetime_binding_writes_the_text_sqlalchemy_writes():
    from datetime import UTC, date, datetime

    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    from bunbase.db import _bind_processor

    dialect = sqlite.dialect()
    quick = _bind_processor(DateTime(), dialect)
    ours = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert quick is not None and ours is not None and quick is not ours
    assert quick.__name__ == "datetime_text"  # the quick one was chosen, not SQLAlchemy's
    for value in (datetime(2026, 11, 24, 1, 2, 3, 4), datetime(2026, 1, 1), datetime(999, 12, 31, 23, 59, 59),
                  datetime(2026, 5, 6, 7, 8, 9, 10, tzinfo=UTC), date(2026, 2, 3), None):
        assert quick(value) == ours(value)


# -- insert(): one plain row, as the handbook's ctx.db.<table>.insert({...}) -----------------
def test_insert_queues_the_row_with_its_defaults_and_tenant_and_returns_it_detached(app, tenant_a):
    from bunbase.db import insert

    with app.app_context(), tenant_scope(tenant_a.id):
        made = insert(db.session, Ticket, org_id="org_x", subject="inserted", body="a body of ten",
                      priority="low")
        assert made.id.startswith("tkt_") and made.status == "open"  # the columns' defaults
        assert made.tenant_id == tenant_a.id and made.created_at is not None
        assert made.created_by is None  # not given: NULL in the row, and in the object
        assert made not in db.session and inspect(made).detached  # the row, not a unit-of-work object
        loaded = db.session.get(Ticket, made.id)  # the next statement writes it first
        assert loaded is not None and loaded.subject == "inserted" and loaded is not made
        db.session.rollback()
        assert db.session.get(Ticket, made.id) is None  # it goes with the transaction
        kept = insert(db.session, Ticket, id=new_id("tkt"), org_id="org_x", subject="kept",
                      body="a body of ten", priority="high", created_at=clock.now())
        db.session.commit()
        db.session.remove()
    assert [t.subject for t in rows(app, Ticket) if t.id == kept.id] == ["kept"]


def test_insert_refuses_what_the_flush_would_refuse_or_it_cannot_write(app, tenant_a, tenant_b):
    from bunbase.db import insert
    from bunbase.tenancy import TenantRequired
    from modules.rbac.models import Membership, RolePermission

    with app.app_context(), tenant_scope(tenant_a.id):
        with pytest.raises(TenantRequired):
            insert(db.session, Ticket, tenant_id=tenant_b.id, org_id="o", subject="theirs",
                   body="a body of ten", priority="low")
        with pytest.raises(TypeError, match="no column colour"):
            insert(db.session, Ticket, org_id="o", subject="s", body="b", priority="low", colour="red")
        with pytest.raises(TypeError, match="not a plain row"):
            insert(db.session, Membership, org_id="o", principal_id="u", role_id="r")
        with pytest.raises(TypeError, match="not a plain row"):  # a foreign key: the flush orders it
            insert(db.session, RolePermission, role_id="r", permission="ticket:read")
        db.session.commit()  # nothing was queued by the refused calls
        db.session.remove()
    assert not [t for t in rows(app, Ticket) if t.subject in ("theirs", "s")]
    with app.app_context(), pytest.raises(TenantRequired):  # no tenant in scope at all
        insert(db.session, Ticket, org_id="o", subject="nobody's", body="a body of ten", priority="low")


def test_rows_written_before_a_savepoint_are_told_to_the_row_watchers(app, tenant_a):
    from bunbase import db as bunbase_db

    told: list[frozenset[str]] = []
    bunbase_db.on_rows_written(lambda _session, tables: told.append(tables))
    try:
        with app.app_context(), tenant_scope(tenant_a.id):
            append_row(db.session, AUDIT, audit_row(tenant_a.id, "test.before-savepoint"))
            with db.session.begin_nested():
                db.session.connection()  # the SAVEPOINT: the queued row is written before it
            assert told == [frozenset({"audit_entries"})]
            db.session.rollback()
            db.session.remove()
    finally:
        bunbase_db._row_watchers.pop()
