"""Support pages in Studio. Views call services; no logic lives here."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from sqlalchemy import select

from bunbase.db import db
from bunbase.models import ActionRun, AuditEntry
from modules.support.models import Ticket
from modules.support.services import PRIORITIES, STATUSES
from studio.paging import keyset
from studio.views import htmx

blueprint = Blueprint("support_studio", __name__, template_folder="templates")


@blueprint.get("/tickets")
def tickets() -> str:
    f = {k: request.args.get(k, "").strip() for k in ("status", "priority", "org", "q")}
    stmt = select(Ticket)
    if f["status"]:
        stmt = stmt.where(Ticket.status == f["status"])
    if f["priority"]:
        stmt = stmt.where(Ticket.priority == f["priority"])
    if f["org"]:
        stmt = stmt.where(Ticket.org_id == f["org"])
    if f["q"]:
        stmt = stmt.where(Ticket.subject.ilike(f"%{f['q']}%"))
    page = keyset(db.session, stmt, Ticket.id, "support_studio.tickets")
    context = {"page": page, "filters": f, "statuses": STATUSES, "priorities": PRIORITIES}
    if htmx and htmx.target == "tickets-results":
        return render_template("support/_tickets_results.html", **context)
    return render_template("support/tickets.html", **context)


@blueprint.get("/tickets/<ticket_id>")
def tickets_detail(ticket_id: str) -> str:
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None:
        abort(404)
    audit = db.session.scalars(
        select(AuditEntry).where(AuditEntry.target_id == ticket_id).order_by(AuditEntry.id)
    ).all()
    runs = {
        r.id: r
        for r in db.session.scalars(
            select(ActionRun).where(ActionRun.id.in_([a.run_id for a in audit if a.run_id]))
        )
    }
    return render_template("support/ticket_detail.html", ticket=ticket, audit=audit, runs=runs)
