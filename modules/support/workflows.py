"""Support workflows.

`support.ticket.escalation` (started by the `ticket.created` subscriber for high-priority tickets):
wait 4 hours; if the ticket is still open, escalate it and tell the org's assignee. If
nobody can be told (a permanent failure), the escalation is compensated (undone).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bunbase import Context, Contract
from bunbase.jobs import PermanentError
from bunbase.workflows import step, wait, workflow
from modules.support import services


class EscalationInput(Contract):
    ticket_id: str = Field(min_length=1, max_length=40)
    org_id: str = Field(min_length=1, max_length=40)


def _results(ctx: Context) -> dict[str, Any]:
    return dict(ctx.extras.get("workflow", {}).get("results", {}))


def escalate(input: EscalationInput, ctx: Context) -> dict[str, object]:
    return services.escalate_ticket(ctx, input.ticket_id)


def undo_escalation(input: EscalationInput, ctx: Context) -> None:
    done = _results(ctx).get("escalate") or {}
    if done.get("escalated"):
        services.revert_escalation(ctx, input.ticket_id, str(done.get("priorityBefore") or "normal"))


def notify(input: EscalationInput, ctx: Context) -> dict[str, object]:
    if not (_results(ctx).get("escalate") or {}).get("escalated"):
        return {"notified": None}  # closed or answered in time: nothing to say
    to = services.notify_assignee(ctx, input.ticket_id, reason="escalated")
    if to is None:
        raise PermanentError(f"nobody to notify about ticket {input.ticket_id} in {input.org_id}")
    return {"notified": to}


escalation = workflow(
    services.ESCALATION_WORKFLOW,
    input=EscalationInput,
    steps={
        "wait4h": wait.for_duration("4h"),
        "escalate": step(escalate, compensate=undo_escalation),
        "notify": notify,
    },
)
