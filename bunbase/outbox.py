"""After-commit dispatch of outbox rows, and the relay that finishes what a crash left.

A dispatcher is registered per kind (`job`, later `event`, `realtime`, `webhook`, ...).
After the action's transaction commits, its rows are dispatched and deleted. If the
process dies in between, the rows are still there and the scheduler's relay dispatches
them (at least once; consumers dedupe on the outbox id they receive).
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


Dispatcher = Callable[[Effect], None]
_dispatchers: dict[str, Dispatcher] = {}


def register_dispatcher(kind: str, fn: Dispatcher) -> None:
    _dispatchers[kind] = fn


def dispatcher_for(kind: str) -> Dispatcher:
    try:
        return _dispatchers[kind]
    except KeyError:
        raise ValueError(f"no outbox dispatcher for kind {kind!r}") from None


def dispatch(items: Iterable[Effect]) -> int:
    """Dispatch committed rows; delete the ones that went out. Returns how many did."""
    done: list[str] = []
    failed: dict[str, str] = {}
    for item in items:
        try:
            dispatcher_for(item.kind)(item)
            done.append(item.id)
        except Exception as exc:  # noqa: BLE001 - kept for the relay
            log.warning("outbox dispatch failed", outbox_id=item.id, kind=item.kind, error=str(exc))
            failed[item.id] = f"{type(exc).__name__}: {exc}"
    with unscoped(), write_intent():
        if done:
            db.session.execute(delete(OutboxItem).where(OutboxItem.id.in_(done)))
        for item_id, error in failed.items():
            db.session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item_id)
                .values(attempts=OutboxItem.attempts + 1, last_error=error[:2000])
            )
        if done or failed:
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
