"""Ticket services: the only code that changes tickets. Actions, Studio and jobs call these."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from bunbase import Context, Contract, NotFound, cursors, events, hooks, mail
from bunbase.context import Actor, TenantRef
from bunbase.db import DBSession, db, insert
from bunbase.ids import new_trace_id
from bunbase.models import User
from bunbase.seed import SeededTenant
from bunbase.tenancy import set_tenant
from modules.support.models import Ticket

PRIORITIES = ("low", "normal", "high")
STATUSES = ("open", "pending", "closed")


def create_ticket(ctx: Context, *, org_id: str, subject: str, body: str, priority: str) -> Ticket:
    # a new row and nothing else to it: inserted as the row it is, without the unit of work
    # (its id, from the column's default, is known at once, so the audit entry can name it)
    ticket = insert(
        ctx.db,
        Ticket,
        org_id=org_id,
        subject=subject,
        body=body,
        priority=priority,
        status="open",
        created_by=ctx.actor.id,
        created_at=ctx.now(),
    )
    ctx.audit.record(
        target_type="ticket",
        target_id=ticket.id,
        org_id=org_id,
        diff={"after": {"subject": subject, "priority": priority, "status": "open"}},
    )
    ctx.logger.info("ticket created", ticket_id=ticket.id, priority=priority)
    return ticket


def org_of_ticket(ctx: Context) -> str | None:
    """The org a ticket belongs to (for `in_org`); an unknown ticket is a 404."""
    ticket_id = ctx.raw_input.get("ticketId") or ctx.raw_input.get("ticket_id")
    ticket = ctx.db.get(Ticket, str(ticket_id)) if ticket_id else None
    if ticket is None:
        raise NotFound("Ticket not found")
    return ticket.org_id


def get_ticket(session: DBSession, ticket_id: str) -> Ticket:
    ticket: Ticket | None = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound("Ticket not found")
    return ticket


@dataclass(frozen=True)
class TicketPage:
    items: list[Ticket]
    total: int
    next_cursor: str | None


def list_tickets(
    session: DBSession,
    *,
    org_id: str | None = None,
    status: str | None = None,
    priority: str | None = None,
    search: str | None = None,
    cursor: str | None = None,
    limit: int = 20,
) -> TicketPage:
    """Newest first, keyset-paginated on the time-ordered id."""
    filters = []
    if org_id:
        filters.append(Ticket.org_id == org_id)
    if status:
        filters.append(Ticket.status == status)
    if priority:
        filters.append(Ticket.priority == priority)
    if search:
        filters.append(Ticket.subject.ilike(f"%{search}%"))
    page = cursors.newest_first(
        session, select(Ticket).where(*filters), Ticket.id, list_name="tickets", cursor=cursor, limit=limit
    )
    return TicketPage(page.items, page.total, page.next_cursor)


@hooks.on("demo_seed")
def seed_demo(tenant: TenantRef, seeded: SeededTenant) -> None:
    """A few tickets in the demo org, created through the executor so they show as runs."""
    from flask import current_app

    from bunbase.executor import Call

    platform = current_app.extensions["bunbase"]
    action = platform.registry.get("support.ticket.create")
    owner = db.session.scalar(select(User).where(User.email == seeded.admin_email))
    assert action is not None and owner is not None
    actor = Actor(kind="user", id=owner.id, email=owner.email, name=owner.name)
    samples = [
        ("Cannot login", "SSO redirect loop after the IdP update.", "high"),
        ("Invoice shows the wrong VAT", "The October invoice uses 19% instead of 20%.", "normal"),
        ("Export to CSV times out", "Exports over 50k rows never finish.", "low"),
    ]
    db.session.commit()
    for subject, body, priority in samples:
        call = Call(trigger="seed", resolve=lambda: (tenant, actor), trace_id=new_trace_id())
        platform.executor.run(
            action, {"orgId": "org_1", "subject": subject, "body": body, "priority": priority}, call
        )
    set_tenant(tenant.id)


# -- async: the ticket.created event, the assignee, escalation, the digest ----------------
TICKET_CREATED = "ticket.created"
ESCALATION_WORKFLOW = "support.ticket.escalation"


class TicketCreated(Contract):
    """The typed payload of "ticket.created" (camelCase on the wire, like the API)."""

    ticket_id: str
    org_id: str
    subject: str
    priority: str


events.define(TICKET_CREATED, TicketCreated)


def announce_ticket(ctx: Context, ticket: Ticket) -> None:
    """In the creating transaction: emit "ticket.created". Its subscriber
    (`support.ticket.on_created`) runs after commit, through the worker: it queues the mail
    to the assignee and starts the escalation watch for high-priority tickets."""
    ctx.events.emit(
        TICKET_CREATED,
        TicketCreated(
            ticket_id=ticket.id, org_id=ticket.org_id, subject=ticket.subject, priority=ticket.priority
        ),
    )


def watch_for_escalation(ctx: Context, ticket_id: str, org_id: str) -> str:
    """Start the escalation workflow for a ticket, once however often it is asked."""
    return ctx.workflows.start(
        ESCALATION_WORKFLOW, {"ticketId": ticket_id, "orgId": org_id}, idempotency_key=ticket_id
    )


def ticket_assignee(session: DBSession, org_id: str) -> User | None:
    """Who looks after an org's tickets: its owner (else an admin), an active user."""
    from modules.rbac.models import Membership, Role

    rows = session.execute(
        select(User, Role.key)
        .join(Membership, (Membership.principal_id == User.id) & (Membership.principal_type == "user"))
        .join(Role, Role.id == Membership.role_id)
        .where(Membership.org_id == org_id, Role.key.in_(("owner", "admin")), User.is_active.is_(True))
        .order_by(Membership.created_at, Membership.id)
    ).all()
    rows = sorted(rows, key=lambda r: 0 if r[1] == "owner" else 1)  # stable: owners first, then oldest
    return rows[0][0] if rows else None


def notify_assignee(ctx: Context, ticket_id: str, *, reason: str = "new") -> str | None:
    """Mail the org's assignee about a ticket; returns the address, or None if nobody."""
    ticket = ctx.db.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound("Ticket not found")
    assignee = ticket_assignee(ctx.db, ticket.org_id)
    if assignee is None:
        return None
    subject = f"[{ticket.priority}] {ticket.subject}"
    text = f"Ticket {ticket.id} in {ticket.org_id} is {ticket.status}.\n\n{ticket.body}\n"
    if reason == "escalated":
        subject = f"Escalated: {ticket.subject}"
        text = f"Ticket {ticket.id} is still {ticket.status} and was escalated.\n\n{ticket.body}\n"
    mail.send(ctx, to=assignee.email, subject=subject, text=text, kind=f"support-ticket-{reason}")
    return assignee.email


def escalate_ticket(ctx: Context, ticket_id: str) -> dict[str, object]:
    """Raise a ticket that is still open to high priority; says what it was before."""
    ticket = ctx.db.get(Ticket, ticket_id)
    if ticket is None or ticket.status != "open":
        return {"escalated": False, "status": ticket.status if ticket else None}
    before = ticket.priority
    ticket.priority = "high"
    ctx.audit.record(
        action="support.ticket.escalate",
        target_type="ticket",
        target_id=ticket.id,
        org_id=ticket.org_id,
        diff={"before": {"priority": before}, "after": {"priority": "high"}, "escalated": True},
    )
    ctx.logger.info("ticket escalated", ticket_id=ticket.id, priority_before=before)
    return {"escalated": True, "priorityBefore": before}


def revert_escalation(ctx: Context, ticket_id: str, priority_before: str) -> None:
    ticket = ctx.db.get(Ticket, ticket_id)
    if ticket is None:
        return
    ticket.priority = priority_before
    ctx.audit.record(
        action="support.ticket.escalation_revert",
        target_type="ticket",
        target_id=ticket.id,
        org_id=ticket.org_id,
        diff={"before": {"priority": "high"}, "after": {"priority": priority_before}, "escalated": False},
    )


def open_ticket_counts(session: DBSession) -> dict[str, dict[str, int]]:
    """Open tickets per org and priority (the digest's numbers)."""
    rows = session.execute(
        select(Ticket.org_id, Ticket.priority, func.count())
        .where(Ticket.status == "open")
        .group_by(Ticket.org_id, Ticket.priority)
    ).all()
    out: dict[str, dict[str, int]] = {}
    for org_id, priority, n in rows:
        out.setdefault(org_id, {})[priority] = int(n)
    return out


def send_digest(ctx: Context) -> dict[str, dict[str, int]]:
    """One mail per org with open tickets, to its assignee."""
    counts = open_ticket_counts(ctx.db)
    for org_id, per_priority in sorted(counts.items()):
        assignee = ticket_assignee(ctx.db, org_id)
        if assignee is None:
            continue
        lines = [f"  {p}: {per_priority[p]}" for p in PRIORITIES if p in per_priority]
        mail.send(
            ctx,
            to=assignee.email,
            subject=f"{sum(per_priority.values())} open tickets in {org_id}",
            text="Open tickets by priority:\n" + "\n".join(lines) + "\n",
            kind="support-digest",
        )
    return counts
