"""After-commit dispatch of outbox rows, and the relay that finishes what a crash left.

A dispatcher is registered per kind (`job`, later `event`, `realtime`, `webhook`, ...).
After the action's transaction commits, its rows are dispatched and deleted. If the
process dies in between, the rows are still there and the scheduler's relay dispatches
them (at least once; consumers dedupe on the outbox id they receive).

Jobs and events skip the row: the job's own row ("queued") or the event's ("not yet
dispatched") is the record of what is owed, and `jobs.relay_lost` / `events.relay_undispatched`
send again what a crash lost (see `Outbox.after_commit`). Because their rows already make
them safe, the executor hands these to the `courier`, a background thread that pushes them
to Redis in batches, so a request does not wait for the push (`settle()` waits for it).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from flask import Response, has_request_context
from sqlalchemy import delete, select, update

from bunbase.clock import clock
from bunbase.db import db, write_intent
from bunbase.models import OutboxItem
from bunbase.tenancy import unscoped

log = structlog.get_logger("bunbase.outbox")


@dataclass(frozen=True)
class Effect:
    """A plain copy of an outbox row, safe to use after the transaction is gone."""

    id: str
    tenant_id: str
    kind: str
    payload: dict[str, Any]
    trace_id: str | None
    durable: bool = True  # False: no outbox row; the caller's own rows are the durable record


Dispatcher = Callable[[Effect], None]
BatchDispatcher = Callable[[list[Effect]], None]
_dispatchers: dict[str, Dispatcher] = {}
_batch_dispatchers: dict[str, BatchDispatcher] = {}
_lingers: dict[str, float] = {}
#: how much longer than their linger the courier's thread leaves the effects handed over in
#: HTTP requests to the requests (which push them as their responses close) before it
#: sends them itself (the last request of a burst, or a server that never closes)
INLINE_GRACE = 0.05


def register_dispatcher(
    kind: str, fn: Dispatcher, *, batch: BatchDispatcher | None = None, linger: float = 0.0
) -> None:
    """`fn` sends one effect; `batch`, if given, sends several at once (one round trip).
    `linger` (seconds): the courier sends this kind's row-less effects at most that often,
    gathering what arrives meanwhile into one batch."""
    _dispatchers[kind] = fn
    _lingers[kind] = linger
    if batch is not None:
        _batch_dispatchers[kind] = batch


def dispatcher_for(kind: str) -> Dispatcher:
    try:
        return _dispatchers[kind]
    except KeyError:
        raise ValueError(f"no outbox dispatcher for kind {kind!r}") from None


def dispatch(items: Iterable[Effect]) -> int:
    """Dispatch committed effects; delete the rows of the ones that went out (effects
    without a row have nothing to delete). Returns how many went out."""
    done: list[Effect] = []
    failed: dict[str, str] = {}
    pending = list(items)
    for kind, fn in _batch_dispatchers.items():
        group = [i for i in pending if i.kind == kind]
        if len(group) < 2:
            continue
        try:
            fn(group)
            done.extend(group)
            pending = [i for i in pending if i.kind != kind]
        except Exception as exc:  # noqa: BLE001 - retried one by one below
            log.warning("outbox batch dispatch failed", kind=kind, count=len(group), error=str(exc))
    for item in pending:
        try:
            dispatcher_for(item.kind)(item)
            done.append(item)
        except Exception as exc:  # noqa: BLE001 - kept for the relay
            log.warning("outbox dispatch failed", outbox_id=item.id, kind=item.kind, error=str(exc))
            if item.durable:
                failed[item.id] = f"{type(exc).__name__}: {exc}"
    rows_done = [i.id for i in done if i.durable]
    if rows_done or failed:
        with unscoped(), write_intent():
            if rows_done:
                db.session.execute(delete(OutboxItem).where(OutboxItem.id.in_(rows_done)))
            for item_id, error in failed.items():
                db.session.execute(
                    update(OutboxItem)
                    .where(OutboxItem.id == item_id)
                    .values(attempts=OutboxItem.attempts + 1, last_error=error[:2000])
                )
            db.session.commit()
    return len(done)


def relay(older_than: timedelta = timedelta(seconds=30), limit: int = 500) -> int:
    """Dispatch rows left behind (a crash between commit and dispatch, or Redis down)."""
    cutoff = clock.now() - older_than
    with unscoped():
        stmt = (
            select(OutboxItem)
            .where(OutboxItem.created_at <= cutoff)
            .order_by(OutboxItem.created_at)
            .limit(limit)
        )
        if db.engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        items = list(db.session.scalars(stmt))
        snapshot = [Effect(i.id, i.tenant_id, i.kind, dict(i.payload), i.trace_id) for i in items]
        db.session.commit()
    return dispatch(snapshot) if snapshot else 0


class Courier:
    """Sends effects that need no outbox row from a background thread, in batches.

    Whatever arrives while a batch is out goes in the next one, so under load one Redis
    round trip carries many requests' pushes. A kind registered with a `linger` (events)
    is sent at most once per linger: the first push after a quiet spell goes at once, and
    under load the pushes of many requests ride in one round trip instead of each request
    waking the thread (a job's push never lingers: its worker is waiting for it).
    A push that never happens (the process died) is not lost: the effect's own row is
    re-sent by its relay.
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """A new state (also in a forked child: it must not send, or wait on a lock held
        by, its parent's thread)."""
        self._items: list[Effect] = []
        self._busy = False
        self._idle = False  # the thread waits for items (and wants a notify)
        self._hurry = False  # settle() asked for the lingering items now
        self._inline = False  # items handed over in requests, which push them themselves
        self._inline_since = 0.0
        self._last_push = 0.0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def send(self, items: list[Effect]) -> None:
        """Durable effects (with an outbox row to delete) go out now; the rest in the
        background: in an HTTP request by the request's own thread once its response is
        out (`push_after_response`), otherwise by the courier's thread."""
        durable = [i for i in items if i.durable]
        if durable:
            dispatch(durable)
        rest = [i for i in items if not i.durable]
        if not rest:
            return
        self._ensure_thread()
        in_request = has_request_context()
        with self._cond:
            self._items.extend(rest)
            if in_request:
                # the thread stands by: it sends them only if no request has a while after
                if not self._inline:
                    self._inline, self._inline_since = True, time.monotonic()
                if self._idle:
                    self._cond.notify_all()
            elif self._idle or any(_lingers.get(i.kind, 0.0) <= 0 for i in rest):
                self._cond.notify_all()  # a lingering or busy thread takes them on its own

    def push_after_response(self, response: Response) -> Response:
        """An `after_request` hook: what is due goes out when the response is closed, from
        the request's thread (a push from the courier's thread, running Python beside the
        requests, would hold up whichever of them has the SQLite write lock)."""
        if self._items:
            response.call_on_close(self.push_due)
        return response

    def push_due(self) -> None:
        """Send what waits now, unless its linger since the last push is not over (then
        a later request, or the thread after it, sends it)."""
        with self._cond:
            if self._busy or not self._items or time.monotonic() < self._due(grace=False):
                return
            batch, self._items = self._items, []
            self._inline = False
            self._busy = True
        self._send(batch)

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until everything handed over so far went out; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            try:
                while self._items or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._thread is None or not self._thread.is_alive():
                        return False
                    self._cond.wait(left)
            finally:
                self._hurry = False
        return True

    def _running(self) -> bool:
        return self._thread is not None and self._pid == os.getpid() and self._thread.is_alive()

    def _ensure_thread(self) -> None:
        if self._running():
            return
        with self._cond:
            if self._running():
                return
            self._busy = False
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="bunbase-courier", daemon=True)
            self._thread.start()
            atexit.register(self.settle, 5.0)

    def _take(self) -> list[Effect]:
        """Under the lock: wait for items, and for their linger to pass, then take them all."""
        while True:
            while not self._items:
                self._idle = True
                self._cond.wait()
                self._idle = False
            left = self._due(grace=self._inline) - time.monotonic()
            if (left <= 0 or self._hurry) and not self._busy:
                batch, self._items = self._items, []
                self._inline = False
                self._busy = True
                return batch
            self._cond.wait(left if left > 0 else None)

    def _due(self, *, grace: bool) -> float:
        """Under the lock, with items waiting: when their linger since the last push is
        over; with `grace`, also `INLINE_GRACE` after the first of them came from a request."""
        due = self._last_push + min(_lingers.get(i.kind, 0.0) for i in self._items)
        return max(due, self._inline_since) + INLINE_GRACE if grace else due

    def _loop(self) -> None:
        while True:
            with self._cond:
                batch = self._take()
            self._send(batch)

    def _send(self, batch: list[Effect]) -> None:
        try:
            dispatch(batch)  # failures are logged there; the rows' relays send them later
        except Exception:
            log.exception("courier batch failed", count=len(batch))
        finally:
            with self._cond:
                self._last_push = time.monotonic()
                self._busy = False
                self._cond.notify_all()


courier = Courier()


def settle(timeout: float = 10.0) -> bool:
    """Wait for the background pushes handed to the courier so far."""
    return courier.settle(timeout)
