"""After-commit dispatch of outbox rows, and the relay that finishes what a crash left.

A dispatcher is registered per kind (`job`, later `event`, `realtime`, `webhook`, ...).
After the action's transaction commits, its rows are dispatched and deleted. If the
process dies in between, the rows are still there and the scheduler's relay dispatches
them (at least once; consumers dedupe on the outbox id they receive).

Jobs skip the row: the job's own row ("queued") is the record of what is owed, and
`jobs.relay_lost` re-sends queued jobs that RQ does not hold (see `Outbox.after_commit`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
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


def register_dispatcher(kind: str, fn: Dispatcher, *, batch: BatchDispatcher | None = None) -> None:
    """`fn` sends one effect; `batch`, if given, sends several at once (one round trip)."""
    _dispatchers[kind] = fn
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
