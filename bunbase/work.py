"""One unit of work: a `Context`, one transaction, commit, then the effects.

`unit_of_work(tenant, trigger=...)` gives code that is not an action call — a CLI command,
a seed, a test, a service that must act for the platform — the same shape the executor
gives actions: a tenant-scoped `Context` whose session runs one transaction around the
block, committed at its end, and whose effects (jobs, events) are handed to the courier
only after that commit. An exception rolls everything back and hands over nothing. How
the store takes its locks (SQLite's write lock) stays inside the data layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bunbase.context import SYSTEM, Actor, Context, TenantRef
from bunbase.db import DBSession, db, insert_new, write_intent
from bunbase.ids import new_id, new_trace_id
from bunbase.outbox import courier
from bunbase.tenancy import tenant_scope


@contextmanager
def unit_of_work(
    tenant: TenantRef,
    *,
    trigger: str,
    actor: Actor = SYSTEM,
    trace_id: str | None = None,
    session: DBSession | None = None,
    hand_over: bool = True,
) -> Iterator[Context]:
    """A `Context` for `actor` in `tenant`; commit when the block ends, then send its effects
    (`hand_over=False`: as if the process died right after the commit, for the relays)."""
    session = session if session is not None else db.session
    with tenant_scope(tenant.id):
        ctx = Context(
            tenant=tenant,
            actor=actor,
            trace_id=trace_id or new_trace_id(),
            run_id=new_id("run"),
            db=session,
            trigger=trigger,
        )
        try:
            with write_intent():  # the block reads, then writes: nothing changes in between
                yield ctx
                insert_new(session)
                session.commit()
        except BaseException:
            session.rollback()
            raise
    if hand_over:
        courier.send(ctx.outbox.items)
