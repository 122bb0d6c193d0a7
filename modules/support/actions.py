"""Support actions: contracts (pydantic) and thin handlers calling services."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bunbase import Context, Contract, action, guards, triggers
from bunbase.contracts import Cursor, Empty, Timestamp
from modules.rbac.guards import in_org
from modules.support import services
from modules.support.models import Ticket

Priority = Literal["low", "normal", "high"]
Status = Literal["open", "pending", "closed"]


class CreateTicketInput(Contract):
    org_id: str = Field(min_length=1, max_length=40)
    subject: str = Field(min_length=3, max_length=200)
    body: str = Field(min_length=10, max_length=20_000)
    priority: Priority = "normal"


class CreateTicketOutput(Contract):
    ticket_id: str
    status: Literal["open"]


class TicketOut(Contract):
    ticket_id: str
    org_id: str
    subject: str
    body: str
    priority: Priority
    status: Status
    created_by: str | None
    created_at: Timestamp

    @classmethod
    def of(cls, t: Ticket) -> TicketOut:
        return cls(
            ticket_id=t.id,
            org_id=t.org_id,
            subject=t.subject,
            body=t.body,
            priority=t.priority,  # type: ignore[arg-type]
            status=t.status,  # type: ignore[arg-type]
            created_by=t.created_by,
            created_at=t.created_at,
        )


class GetTicketInput(Contract):
    ticket_id: str = Field(min_length=1, max_length=40)


class ListTicketsInput(Contract):
    org_id: str = Field(min_length=1, max_length=40)
    status: Status | None = None
    priority: Priority | None = None
    cursor: Cursor | None = None
    limit: int = Field(default=20, ge=1, le=100)


class TicketList(Contract):
    items: list[TicketOut]
    total: int
    next_cursor: str | None


@action(
    name="support.ticket.create",
    input=CreateTicketInput,
    output=CreateTicketOutput,
    triggers=[triggers.api("POST", "/tickets")],
    guards=[in_org()],
    permissions=["ticket:create"],
    description="Open a support ticket in an organization.",
)
def create_ticket(input: CreateTicketInput, ctx: Context) -> CreateTicketOutput:
    ticket = services.create_ticket(
        ctx, org_id=input.org_id, subject=input.subject, body=input.body, priority=input.priority
    )
    services.announce_ticket(ctx, ticket)
    return CreateTicketOutput(ticket_id=ticket.id, status="open")


@action(
    name="support.ticket.get",
    input=GetTicketInput,
    output=TicketOut,
    triggers=[triggers.api("GET", "/tickets/{ticketId}")],
    guards=[in_org(resolve=services.org_of_ticket, not_found="Ticket not found")],
    permissions=["ticket:read"],
    description="Fetch one ticket by id.",
)
def get_ticket(input: GetTicketInput, ctx: Context) -> TicketOut:
    return TicketOut.of(services.get_ticket(ctx.db, input.ticket_id))


@action(
    name="support.ticket.list",
    input=ListTicketsInput,
    output=TicketList,
    triggers=[triggers.api("GET", "/tickets")],
    guards=[in_org()],
    permissions=["ticket:read"],
    description="List an organization's tickets, newest first (`cursor`, `limit`).",
)
def list_tickets(input: ListTicketsInput, ctx: Context) -> TicketList:
    page = services.list_tickets(
        ctx.db,
        org_id=input.org_id,
        status=input.status,
        priority=input.priority,
        cursor=input.cursor,
        limit=input.limit,
    )
    return TicketList(
        items=[TicketOut.of(t) for t in page.items], total=page.total, next_cursor=page.next_cursor
    )


# -- async entry points: run by the platform (events, cron), not by callers ------------------
class TicketCreatedInput(Contract):
    ticket_id: str = Field(min_length=1, max_length=40)
    org_id: str = Field(min_length=1, max_length=40)
    subject: str
    priority: Priority


class Queued(Contract):
    job_id: str
    escalation_run_id: str | None = None


@action(
    name="support.ticket.on_created",
    input=TicketCreatedInput,
    output=Queued,
    triggers=[triggers.event(services.TICKET_CREATED)],
    guards=[guards.only_trigger("event")],
    audit=False,
    description="On ticket.created: queue the mail to the org's assignee; for a high-priority "
    "ticket, start the escalation workflow.",
)
def on_ticket_created(input: TicketCreatedInput, ctx: Context) -> Queued:
    job_id = ctx.jobs.enqueue(
        "support.ticket.notify_assignee",
        {"ticket_id": input.ticket_id},
        idempotency_key=f"new:{input.ticket_id}",
    )
    run_id = None
    if input.priority == "high":
        run_id = services.watch_for_escalation(ctx, input.ticket_id, input.org_id)
    return Queued(job_id=job_id, escalation_run_id=run_id)


class DigestOutput(Contract):
    orgs: int
    open_tickets: int


@action(
    name="support.tickets.digest",
    input=Empty,
    output=DigestOutput,
    triggers=[triggers.cron("0 7 * * *", timezone="UTC")],
    guards=[guards.only_trigger("cron")],
    audit=False,
    description="Every morning: one mail per org with open tickets, to its assignee.",
)
def tickets_digest(input: Empty, ctx: Context) -> DigestOutput:
    counts = services.send_digest(ctx)
    return DigestOutput(orgs=len(counts), open_tickets=sum(sum(c.values()) for c in counts.values()))
