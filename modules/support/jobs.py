"""Support jobs: run by the worker, retried on failure (see bunbase.jobs)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from bunbase import Context
from bunbase.errors import NotFound
from bunbase.jobs import PermanentError, job
from modules.support import services


class NotifyAssignee(BaseModel):
    ticket_id: str = Field(min_length=1, max_length=40)


@job("support.ticket.notify_assignee", payload=NotifyAssignee, queue="default", retries=5)
def notify_assignee(payload: NotifyAssignee, ctx: Context) -> dict[str, str | None]:
    """Mail the org's assignee (owner, else an admin) about a new ticket."""
    try:
        to = services.notify_assignee(ctx, payload.ticket_id)
    except NotFound:
        raise PermanentError(f"ticket {payload.ticket_id} is gone") from None
    return {"to": to}
