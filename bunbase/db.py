"""The SQLAlchemy handle, engine tuning for SQLite (WAL) and Postgres, and shared types."""

from __future__ import annotations

import fcntl
import inspect as pyinspect
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import structlog
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, DateTime, MetaData, Table, event, inspect
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapper, Session, make_transient_to_detached, scoped_session
from sqlalchemy.orm import registry as sa_registry

from bunbase import tenancy

log = structlog.get_logger("bunbase.db")
M = TypeVar("M")

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

# SQLite transactions. By default one begins lazily: its reads run with no BEGIN, each on
# the latest committed data (as Postgres's READ COMMITTED reads), and its first write takes
# the write lock and begins IMMEDIATE, so a read followed by a write never fails with
# SQLITE_BUSY_SNAPSHOT because another connection committed in between. `write_intent()`
# takes the lock at the start instead, for code whose reads must not change under it.
#: the transaction mode of `reads_then_write()` and the default: no BEGIN; see there
_LAZY = ""
_sqlite_begin: ContextVar[str] = ContextVar("bunbase_sqlite_begin", default=_LAZY)


@contextmanager
def write_intent() -> Iterator[None]:
    token = _sqlite_begin.set("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        _sqlite_begin.reset(token)


@contextmanager
def reads_then_write() -> Iterator[None]:
    """For a call that reads (authentication, guards) and then writes (the action): on
    SQLite the transaction begun in this block runs its reads without a BEGIN, each read
    on the latest committed data, so no snapshot has to be given up before the write;
    `begin_write` then makes it a write transaction on the same connection. A write
    statement before that begins it IMMEDIATE first (with the write lock), so nothing is
    ever written outside a transaction. This is the default; the block says so even
    inside a `write_intent()`. No effect on Postgres."""
    token = _sqlite_begin.set(_LAZY)
    try:
        yield
    finally:
        _sqlite_begin.reset(token)


def begin_write(session: DBSession) -> None:
    """Make the session's transaction a write transaction from its next statement on
    (SQLite, after the reads of `reads_then_write`: the write lock and BEGIN IMMEDIATE on
    the same connection, taken when the next statement of any kind runs, so work that
    only builds rows in Python, the commit's INSERTs aside, is done before the lock is).
    A deferred read transaction is ended first and the lock taken now (its snapshot may
    be older than the lock). A no-op where the transaction already writes, and on
    Postgres."""
    with reads_then_write():  # if the transaction begins only now, nothing is read yet
        conn = session.connection()
    arm = conn.info.get("bunbase_arm")
    if arm is not None and not arm(conn):
        session.rollback()
        with write_intent():
            session.connection()


#: SQLite: write transactions a process commits between two checkpoints (see `_checkpoint`)
CHECKPOINT_EVERY = 100
#: SQLite: WAL frames (pages) past which a checkpoint is made holding the write lock
WAL_LIMIT = 10_000
#: SQLite: WAL frames past which SQLite's own checkpoint runs (inside a COMMIT): a backstop
WAL_BACKSTOP = 4 * WAL_LIMIT


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # what `begin_write` and `insert_rows` call, kept with the connection for its life
        record.info["bunbase_arm"] = _arm
        record.info["bunbase_sqlite_insert"] = _fast_insert
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP}")  # see `_checkpoint`
        cur.close()

    # Writers queue on an OS file lock before BEGIN IMMEDIATE: a waiter wakes the moment the
    # lock is free (SQLite's own busy handler polls with sleeps of up to 100 ms), across
    # threads and processes alike. Readers never take it (WAL lets them run alongside).
    database = engine.url.database or ""
    lock_path = f"{database}.writelock" if database and database != ":memory:" else None
    held: dict[int, int] = {}  # id(DBAPI connection) -> fd of the write lock it holds
    lazy: set[int] = set()  # connections in a `reads_then_write` transaction, not yet writing
    armed: set[int] = set()  # lazy connections whose next statement begins the write
    writing: set[int] = set()  # connections in a write transaction (BEGIN IMMEDIATE)

    def _raw(conn: Any) -> Any:
        # the dialect gets the pool's proxy, events the DBAPI connection or a Connection
        if isinstance(conn, Connection):
            conn = conn.connection
        return getattr(conn, "dbapi_connection", conn)

    def _lock(raw: Any) -> None:
        if not lock_path or id(raw) in held:
            return
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:  # an exception while waiting (a job's timeout alarm) must not leak the fd
            fcntl.flock(fd, fcntl.LOCK_EX)
            held[id(raw)] = fd
        except BaseException:
            os.close(fd)  # closing releases the lock if it was taken
            raise

    def _release(conn: Any) -> None:
        raw = _raw(conn)
        lazy.discard(id(raw))
        armed.discard(id(raw))
        writing.discard(id(raw))
        fd = held.pop(id(raw), None)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _begin_immediate(raw: Any) -> None:
        """Turn a connection's transaction into a write transaction, now."""
        _lock(raw)
        try:
            raw.execute("BEGIN IMMEDIATE")
        except BaseException:
            _release(raw)
            raise
        lazy.discard(id(raw))
        armed.discard(id(raw))
        writing.add(id(raw))

    def _arm(conn: Any) -> bool:
        """Have `conn`'s next statement begin the write (see `begin_write`); False if a
        deferred read transaction stands in the way."""
        raw = _raw(conn)
        if id(raw) in writing:
            return True
        if raw.in_transaction:
            return False
        lazy.add(id(raw))
        armed.add(id(raw))
        return True

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = _sqlite_begin.get()
        raw = _raw(conn)
        lazy.discard(id(raw))  # whatever a connection gone before with this id left behind
        armed.discard(id(raw))
        if mode == _LAZY:
            lazy.add(id(raw))
            return
        if mode == "BEGIN IMMEDIATE":
            _lock(raw)
        try:
            conn.exec_driver_sql(mode)
        except BaseException:
            _release(raw)
            raise
        if mode == "BEGIN IMMEDIATE":
            writing.add(id(raw))

    prepared: dict[tuple[Table, frozenset[str]], _SqliteInsert | None] = {}

    def _fast_insert(conn: Any, batches: list[tuple[Table, list[dict[str, Any]]]]) -> None:
        """`insert_rows` on SQLite: the rows on the driver's cursor, in the transaction.
        Every row's parameters are made first, so the write lock (taken by the first
        INSERT of a lazy transaction) is held for the INSERTs alone."""
        work: list[tuple[Table, _SqliteInsert | None, list[Any]]] = []
        for table, rows in batches:
            key = (table, frozenset(rows[0]))
            if key not in prepared:
                prepared[key] = _SqliteInsert.build(engine.dialect, table, tuple(sorted(rows[0])))
            stmt = prepared[key]
            work.append((table, stmt, rows if stmt is None else [stmt.params(r) for r in rows]))
        raw = _raw(conn)
        for table, stmt, params in work:
            if stmt is None:
                conn.execute(_insert_for(table), params)
                continue
            if id(raw) in lazy:
                _begin_immediate(raw)  # a write: never outside a transaction
            try:
                if len(params) == 1:
                    raw.execute(stmt.sql, params[0])
                else:
                    raw.executemany(stmt.sql, params)
            except engine.dialect.loaded_dbapi.Error as exc:
                raise DBAPIError.instance(
                    stmt.sql, params, exc, engine.dialect.loaded_dbapi.Error, dialect=engine.dialect
                ) from exc

    @event.listens_for(engine, "before_cursor_execute")
    def _before_execute(
        conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if not lazy:
            return
        key = id(_raw(conn))
        if key in armed or (key in lazy and not _reads_only(statement, context)):
            _begin_immediate(_raw(conn))  # the first write (or armed statement) of a lazy transaction

    # The lock is let go only once COMMIT/ROLLBACK has run: SQLAlchemy's "commit" and
    # "rollback" events fire before the statement, and a writer let in then would find
    # SQLite's own lock still held and fall back to the busy handler's sleeps.
    dialect = engine.dialect
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    def _commit(dbapi_conn: Any) -> None:
        raw = _raw(dbapi_conn)
        wrote = id(raw) in writing
        try:
            do_commit(dbapi_conn)
        finally:
            _release(dbapi_conn)
        if wrote:
            _checkpoint(raw)

    # Checkpoints (the WAL's pages copied back into the database file, with an fsync of
    # each) run outside the write lock. SQLite's own automatic checkpoint runs inside the
    # COMMIT of whichever transaction crosses the WAL's limit, so every other writer would
    # wait for its fsyncs; here it only runs far past the WAL's usual size (WAL_BACKSTOP,
    # for processes that write too little to reach a checkpoint of their own) and, after
    # every CHECKPOINT_EVERY write transactions of this process, the connection that just
    # committed runs a PASSIVE one, which never waits for or blocks a writer. The WAL file
    # starts again from the top only once a checkpoint has copied all of it before the
    # next write begins, which a stream of writes may not allow: past WAL_LIMIT frames the
    # checkpoint is made holding the write lock, so it does. The COMMIT is done by then:
    # nothing a checkpoint raises may make it look failed (the caller would undo, retry or
    # report what is already committed), so it is logged, and the next one tries again.
    since = [0]  # write transactions committed by this process since its last checkpoint

    def _checkpoint(raw: Any) -> None:
        since[0] += 1
        if since[0] < CHECKPOINT_EVERY:
            return
        since[0] = 0
        try:
            _busy, frames, _copied = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= WAL_LIMIT:
                _lock(raw)
                try:
                    raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                finally:
                    _release(raw)
        except Exception as exc:  # noqa: BLE001 - see above
            log.warning("sqlite checkpoint failed", error=repr(exc))

    def _rollback(dbapi_conn: Any) -> None:
        try:
            do_rollback(dbapi_conn)
        finally:
            _release(dbapi_conn)

    dialect.do_commit = _commit  # type: ignore[method-assign,assignment]
    dialect.do_rollback = _rollback  # type: ignore[method-assign,assignment]

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_conn: Any, _record: Any) -> None:
        if dbapi_conn is not None:
            _release(dbapi_conn)

    # an invalidated or closed connection never commits or checks in with its DBAPI
    # connection: its lock must not outlive it (every writer would wait for it forever)
    @event.listens_for(engine, "invalidate")
    def _on_invalidate(dbapi_conn: Any, _record: Any, _exc: Any) -> None:
        if dbapi_conn is not None:
            _release(dbapi_conn)

    @event.listens_for(engine, "close")
    def _on_close(dbapi_conn: Any, _record: Any) -> None:
        _release(dbapi_conn)

    @event.listens_for(engine, "close_detached")
    def _on_close_detached(dbapi_conn: Any) -> None:
        _release(dbapi_conn)


_READS = ("SELECT", "PRAGMA", "EXPLAIN", "VALUES")


def _reads_only(statement: str, context: Any) -> bool:
    if context is not None and (context.isinsert or context.isupdate or context.isdelete):
        return False
    return statement.lstrip()[:8].upper().startswith(_READS)


_APPENDS = "bunbase_appends"


def append_row(session: DBSession, table: Table, row: dict[str, Any]) -> None:
    """Queue an append-only row (an audit entry, an event) in the session's transaction.

    Queued rows are written together, one INSERT per table: with the transaction's new
    rows (`insert_new`), before the session's next ORM statement (so a query in the same
    transaction sees them), and before any commit; a rollback drops them, as it would
    have dropped them written. For tables no foreign key points to or from; columns the
    row leaves out get their defaults.
    """
    session.info.setdefault(_APPENDS, []).append((table, row))


def write_appends(session: DBSession) -> int:
    """Write the queued rows now (see `append_row`); returns how many."""
    rows: list[tuple[Table, dict[str, Any]]] | None = session.info.pop(_APPENDS, None)
    if not rows:
        return 0
    insert_rows(session.connection(), rows)
    _tell_row_watchers(session, rows)
    return len(rows)


RowWatcher = Callable[[DBSession, frozenset[str]], None]
_row_watchers: list[RowWatcher] = []


def on_rows_written(fn: RowWatcher) -> RowWatcher:
    """Have `fn(session, table_names)` called whenever `insert_new` or `append_row` writes
    rows into those tables: they write without a flush, so flush events never see them."""
    _row_watchers.append(fn)
    return fn


def _tell_row_watchers(session: DBSession, rows: list[tuple[Table, dict[str, Any]]]) -> None:
    if _row_watchers:
        names = frozenset(table.name for table, _ in rows)
        for fn in _row_watchers:
            fn(session, names)


_inserts: dict[Table, Any] = {}


def insert_rows(conn: Connection, rows: list[tuple[Table, dict[str, Any]]]) -> None:
    """INSERT the rows in order, one executemany per run of rows with the same table and
    keys; the INSERT statements are built once per table (on SQLite, once per table and
    keys, and run on the driver's cursor: see `_SqliteInsert`)."""
    batches: list[tuple[Table, list[dict[str, Any]]]] = []
    shape: tuple[Table, Any] | None = None
    for table, row in rows:
        if shape is None or table is not shape[0] or row.keys() != shape[1]:
            shape = (table, row.keys())
            batches.append((table, []))
        batches[-1][1].append(row)
    if not batches:
        return
    fast = conn.info.get("bunbase_sqlite_insert")
    if fast is not None:
        fast(conn, batches)
        return
    for table, batch in batches:
        conn.execute(_insert_for(table), batch)


def _insert_for(table: Table) -> Any:
    stmt = _inserts.get(table)
    if stmt is None:
        stmt = _inserts[table] = table.insert()
    return stmt


@dataclass(frozen=True)
class _SqliteInsert:
    """An INSERT compiled once for a table and a set of keys, with each column's bind
    processor (what SQLAlchemy itself would apply), run straight on the driver: for the
    rows the executor writes on every call, SQLAlchemy's statement machinery costs several
    times the INSERT."""

    sql: str
    pairs: tuple[tuple[str, Callable[[Any], Any] | None], ...]  # (key, bind processor), in order

    @classmethod
    def build(cls, dialect: Any, table: Table, keys: tuple[str, ...]) -> _SqliteInsert | None:
        """None where SQLAlchemy would add a column the row leaves out (a Python-side
        default): such rows go through `Connection.execute`."""
        compiled = _insert_for(table).compile(dialect=dialect, column_keys=list(keys))
        order = tuple(compiled.positiontup or ())
        if not set(order) <= set(keys):
            return None
        cols = {c.key: c for c in table.columns}
        return cls(compiled.string, tuple((k, _bind_processor(cols[k].type, dialect)) for k in order))

    def params(self, row: dict[str, Any]) -> list[Any]:
        return [p(row[k]) if p is not None else row[k] for k, p in self.pairs]


def _bind_processor(type_: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """The column type's bind processor; for SQLite's DATETIME in its default format, one
    that writes the same text (`YYYY-MM-DD HH:MM:SS.ffffff`) with `datetime.isoformat`,
    several times quicker, for naive datetimes (anything else goes to SQLAlchemy's)."""
    impl = type_.dialect_impl(dialect)
    process: Callable[[Any], Any] | None = impl.bind_processor(dialect)
    if not isinstance(impl, SQLITE_DATETIME) or impl._storage_format != SQLITE_DATETIME._storage_format:
        return process
    slow = process
    assert slow is not None

    def datetime_text(value: Any) -> Any:
        if type(value) is datetime and value.tzinfo is None:
            return value.isoformat(" ", "microseconds")
        return slow(value)

    return datetime_text


@event.listens_for(Session, "before_commit")
def _appends_before_commit(session: Session) -> None:
    write_appends(session)


@event.listens_for(Session, "do_orm_execute")
def _appends_before_statement(state: Any) -> None:
    if state.session.info.get(_APPENDS):
        write_appends(state.session)


@event.listens_for(Session, "after_transaction_create")
def _appends_before_savepoint(session: Session, transaction: Any) -> None:
    rows = session.info.get(_APPENDS) if transaction.nested else None
    if rows:
        # written in the outer transaction, before the SAVEPOINT (which is emitted when the
        # nested transaction first needs its connection): a rollback to the savepoint
        # drops only what was appended after it
        conn = transaction.parent._connection_for_bind(session.get_bind(), None)
        del session.info[_APPENDS]
        insert_rows(conn, rows)
        _tell_row_watchers(session, rows)


@event.listens_for(Session, "after_soft_rollback")
def _appends_dropped(session: Session, previous_transaction: Any) -> None:
    session.info.pop(_APPENDS, None)


@event.listens_for(Session, "after_transaction_end")
def _appends_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_APPENDS, None)


@dataclass(frozen=True)
class _Shape:
    """How a plain mapper's object becomes an INSERT row."""

    table: Any
    columns: tuple[tuple[str, str], ...]  # (attribute key, column key)
    primary_key: tuple[str, ...]  # attribute keys


_shapes: dict[Mapper[Any], _Shape | None] = {}


def _shape(mapper: Mapper[Any]) -> _Shape | None:
    """A mapper whose new rows the unit of work would write with a plain INSERT (one table,
    no relationships, no version counter, no insert events), or None."""
    if mapper in _shapes:
        return _shapes[mapper]
    table = mapper.local_table
    plain = (
        mapper.inherits is None
        and not mapper.relationships
        and mapper.version_id_col is None
        and mapper.polymorphic_on is None
        and not mapper.dispatch.before_insert
        and not mapper.dispatch.after_insert
        and all(len(p.columns) == 1 and p.columns[0].table is table for p in mapper.column_attrs)
    )
    shape = None
    if plain:
        shape = _Shape(
            table,
            tuple((p.key, p.columns[0].key) for p in mapper.column_attrs),
            tuple(mapper.get_property_by_column(c).key for c in mapper.primary_key),
        )
    _shapes[mapper] = shape
    return shape


def _python_defaults(mapper: Mapper[Any]) -> tuple[tuple[str, Callable[[], Any]], ...] | None:
    """(attribute key, maker) for each column with a Python-side default; None if one of
    them needs the statement's execution context (only the flush can give it that)."""
    found: list[tuple[str, Callable[[], Any]]] = []
    for prop in mapper.column_attrs:
        default = prop.columns[0].default
        if default is None:
            continue
        arg: Any = getattr(default, "arg", None)
        if default.is_scalar:
            found.append((prop.key, _constant(arg)))
        elif default.is_callable and _takes_nothing(getattr(arg, "__wrapped__", None)):
            # a callable of no arguments, which SQLAlchemy wrapped to take the context
            found.append((prop.key, _called(arg)))
        else:
            return None
    return tuple(found)


def _takes_nothing(fn: Any) -> bool:
    if not callable(fn):
        return False
    try:
        params = pyinspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def _called(make: Callable[[Any], Any]) -> Callable[[], Any]:
    return lambda: make(None)


@dataclass(frozen=True)
class _InsertPlan:
    """What `insert` needs of a mapped class, worked out once."""

    table: Table
    columns: dict[str, str]  # attribute key -> column key
    primary_key: tuple[str, ...]
    defaults: tuple[tuple[str, Callable[[], Any]], ...]
    nulls: tuple[str, ...]  # attributes whose column is NULL when not given (no server default)


_plans: dict[Mapper[Any], _InsertPlan | None] = {}


def _insert_plan(mapper: Mapper[Any]) -> _InsertPlan | None:
    """None for a class `insert` leaves to the unit of work: not a plain row (`_shape`), a
    default that needs the statement, or a foreign key from or to its table (the flush
    orders such rows with the rows they refer to; appended rows go first or last)."""
    if mapper in _plans:
        return _plans[mapper]
    shape = _shape(mapper)
    defaults = _python_defaults(mapper)
    plan = None
    if shape is not None and defaults is not None:
        table = shape.table
        referred = table.foreign_keys or any(
            fk.column.table is table for other in Base.metadata.tables.values() for fk in other.foreign_keys
        )
        if not referred:
            plan = _InsertPlan(
                table,
                dict(shape.columns),
                shape.primary_key,
                defaults,
                tuple(attr for attr, col in shape.columns if table.c[col].server_default is None),
            )
    _plans[mapper] = plan
    return plan


def insert(session: DBSession, model: type[M], **values: Any) -> M:
    """Insert one row of a plain mapped class, as the handbook's `ctx.db.tickets.insert({...})`
    does: the row is queued in the session's transaction (`append_row`), so it is written with
    the transaction's next statement or at its commit and goes with a rollback, and no ORM
    object goes through the unit of work. As the flush would, it fills in the columns'
    Python-side defaults (for columns not given or given None) and gives a tenant-owned row
    the tenant in scope (one of another tenant is refused). Returns the row as an object
    detached from the session: read it; to change it, load it. A class with relationships,
    foreign keys, a version counter, insert events or a default that needs the statement is
    refused (see `_insert_plan`): add an object to the session.
    """
    mapper: Mapper[Any] = inspect(model)
    plan = _insert_plan(mapper)
    if plan is None:
        raise TypeError(f"{model.__name__} is not a plain row: add an object to the session instead")
    unknown = values.keys() - plan.columns.keys()
    if unknown:
        raise TypeError(f"{model.__name__} has no column {', '.join(sorted(unknown))}")
    for key, make in plan.defaults:
        if values.get(key) is None:
            values[key] = make()
    if issubclass(model, tenancy.TenantScoped):
        values["tenant_id"] = tenancy.tenant_for_new(values.get("tenant_id"), model.__name__)
    missing = [k for k in plan.primary_key if values.get(k) is None]
    if missing:
        raise TypeError(f"{model.__name__}: no value for its primary key {', '.join(missing)}")
    columns = plan.columns
    append_row(session, plan.table, {columns[k]: v for k, v in values.items() if v is not None})
    obj: M = mapper.class_manager.new_instance()
    state = obj.__dict__  # the instance's state dict, as a load fills it
    for key in plan.nulls:  # what the row holds where nothing was given
        state[key] = None
    state.update(values)
    make_transient_to_detached(obj)  # the row's identity, no history: "loaded"
    return obj


def insert_new(session: DBSession) -> int:
    """Write the rows a transaction only created, one Core INSERT per table, instead of
    letting the unit of work flush them (for a handful of new rows it costs several times
    the INSERTs). Done only when every pending object is a plain row with its primary key
    set and nothing is changed or deleted, so the result is what the flush would have
    written, in the same order (tables by foreign key, rows as added); otherwise the
    flush does it all. The objects then are persistent, as after a flush. Returns how
    many rows it wrote."""
    new = session.new
    if not new or session.dirty or session.deleted:
        write_appends(session)
        return 0
    todo: list[tuple[Any, _Shape]] = []
    for obj in new:
        state = inspect(obj)
        shape = _shape(state.mapper)
        if shape is None or any(state.dict.get(k) is None for k in shape.primary_key):
            write_appends(session)
            return 0
        todo.append((state, shape))
    tenancy.check_new(new)
    order = _table_order()
    todo.sort(key=lambda t: (order.get(t[1].table, -1), t[0].insert_order))
    rows = []
    for state, shape in todo:
        values = state.dict
        row = {col: v for attr, col in shape.columns if (v := values.get(attr)) is not None}
        rows.append((shape.table, row))
    rows.extend(session.info.pop(_APPENDS, None) or ())
    # the objects are made persistent first, as the flush does once its INSERTs are out
    # (and recorded in the transaction, so a rollback takes them out of the session): on
    # SQLite the INSERTs below hold the write lock, and nothing that does not need it
    # should run while it is held
    conn = session.connection()
    states = {state for state, _ in todo}
    objs = [state.obj() for state in states]
    _register_persistent(session, states)
    try:
        insert_rows(conn, rows)
    except BaseException:
        for obj in objs:  # not written: out of the session, as a rollback leaves new objects
            if obj in session:
                session.expunge(obj)
        raise
    _tell_row_watchers(session, rows)
    return len(todo)


def _register_persistent(session: DBSession, states: set[Any]) -> None:
    """Pending objects become persistent: the unit of work's own last step of a flush
    (SQLAlchemy's `Session._register_persistent`: identity keys, the identity map,
    committed attribute state, the transaction's record of new objects, the
    pending_to_persistent event)."""
    target = session() if isinstance(session, scoped_session) else session
    target._register_persistent(states)


_order: dict[Any, int] = {}


def _table_order() -> dict[Any, int]:
    """Tables by foreign-key dependency (parents first), as the unit of work orders them."""
    if len(_order) != len(Base.metadata.tables):
        _order.clear()
        _order.update({t: i for i, t in enumerate(Base.metadata.sorted_tables)})
    return _order


def is_unique_violation(exc: Exception) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "unique" in text or "duplicate key" in text
