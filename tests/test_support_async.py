"""The support module's async examples: the notify job, the ticket.created handler, the
daily digest cron and the escalation workflow."""

from __future__ import annotations

from datetime import datetime

from bunbase.clock import clock
from bunbase.db import db
from bunbase.models import ActionRun, AuditEntry
from bunbase.runtime_models import JobRun, Schedule, WorkflowRun
from bunbase.tenancy import tenant_scope
from bunbase.testing import scenario, service_ctx, settle
from modules.support import services
from modules.support.models import Ticket
from tests.helpers import rows


def kinds(mailbox, address: str) -> list[str]:
    return [m["X-Bunbase-Kind"] for m in mailbox.to(address)]


def escalations(app) -> list[WorkflowRun]:
    return rows(app, WorkflowRun, WorkflowRun.name == "support.ticket.escalation")


def ticket(app, ticket_id: str) -> Ticket:
    (t,) = rows(app, Ticket, Ticket.id == ticket_id)
    return t


def test_create_output_is_unchanged_and_normal_tickets_start_no_escalation(app, tenant_a):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    out = s.api.run("support.ticket.create", tenant_a.ticket(priority="normal"))
    assert set(out) == {"ticketId", "status"} and out["status"] == "open"
    assert escalations(app) == []


def test_new_ticket_mails_the_org_owner_through_the_event_and_the_job(app, tenant_a, mailbox):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    tid = s.api.run("support.ticket.create", tenant_a.ticket(priority="low"))["ticketId"]
    s.worker.drain()
    (job,) = rows(app, JobRun, JobRun.name == "support.ticket.notify_assignee")
    assert (job.status, job.payload, job.result) == ("succeeded", {"ticket_id": tid},
                                                     {"to": tenant_a.email})
    assert job.source == "action:support.ticket.on_created"
    (mail,) = mailbox.to(tenant_a.email)
    assert mail["X-Bunbase-Kind"] == "support-ticket-new"
    assert mail["Subject"] == "[low] Cannot login" and tid in mail.get_content()


def test_notify_job_for_a_missing_ticket_is_dead_without_retries(app, tenant_a):
    with service_ctx(app, tenant_a.id) as ctx:
        ctx.jobs.enqueue("support.ticket.notify_assignee", {"ticket_id": "tkt_gone"})
    scenario(app).worker.drain()
    (job,) = rows(app, JobRun, JobRun.name == "support.ticket.notify_assignee")
    assert (job.status, job.attempts) == ("dead", 1)


def test_daily_digest_is_a_cron_trigger_on_an_action(app, tenant_a, mailbox):
    from bunbase import scheduler

    scheduler._crons_synced_at = None
    clock.freeze(datetime(2025, 2, 3, 6, 0))
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    for priority in ("low", "low", "normal"):
        s.api.run("support.ticket.create", tenant_a.ticket(priority=priority))
    s.worker.drain()
    mailbox.clear()
    (sched,) = rows(app, Schedule, Schedule.key == "action:support.tickets.digest:0")
    assert sched.next_run_at == datetime(2025, 2, 3, 7, 0)
    clock.advance("1h")
    s.worker.drain()
    (mail,) = mailbox.to(tenant_a.email)
    assert mail["X-Bunbase-Kind"] == "support-digest"
    assert mail["Subject"] == f"3 open tickets in {tenant_a.org_id}"
    assert "low: 2" in mail.get_content() and "normal: 1" in mail.get_content()
    settle(app)
    (run,) = rows(app, ActionRun, ActionRun.action_name == "support.tickets.digest")
    assert run.trigger_type == "cron" and run.output == {"orgs": 1, "openTickets": 3}


def test_high_priority_ticket_still_open_after_4h_is_escalated_and_notified(app, tenant_a, mailbox):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    tid = s.api.run("support.ticket.create", tenant_a.ticket(priority="high"))["ticketId"]
    s.worker.drain()
    (run,) = escalations(app)
    assert run.state == "waiting" and run.input == {"ticketId": tid, "orgId": tenant_a.org_id}
    assert kinds(mailbox, tenant_a.email) == ["support-ticket-new"]
    s.clock.advance("4h")
    s.worker.drain()
    (run,) = escalations(app)
    assert run.state == "completed"
    assert run.results["escalate"] == {"escalated": True, "priorityBefore": "high"}
    assert run.results["notify"] == {"notified": tenant_a.email}
    assert kinds(mailbox, tenant_a.email) == ["support-ticket-new", "support-ticket-escalated"]
    audit = rows(app, AuditEntry, AuditEntry.target_id == tid, AuditEntry.action == "support.ticket.escalate")
    assert len(audit) == 1


def test_a_ticket_closed_within_4h_is_not_escalated(app, tenant_a, mailbox):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    tid = s.api.run("support.ticket.create", tenant_a.ticket(priority="high"))["ticketId"]
    s.worker.drain()
    with app.app_context(), tenant_scope(tenant_a.id):
        db.session.get(Ticket, tid).status = "closed"
        db.session.commit()
        db.session.remove()
    s.clock.advance("4h")
    s.worker.drain()
    (run,) = escalations(app)
    assert run.state == "completed" and run.results["escalate"]["escalated"] is False
    assert run.results["notify"] == {"notified": None}
    assert kinds(mailbox, tenant_a.email) == ["support-ticket-new"]


def test_escalation_is_compensated_when_nobody_can_be_notified(app, tenant_a, mailbox):
    with service_ctx(app, tenant_a.id) as ctx:
        # a ticket of an org with no owner or admin left: the notification fails for good
        t = services.create_ticket(ctx, org_id="org_orphan", subject="Orphan", body="nobody is here",
                                   priority="normal")
        tid = t.id
        run_id = ctx.workflows.start("support.ticket.escalation", {"ticketId": tid, "orgId": "org_orphan"})
    worker = scenario(app).worker
    worker.drain()
    clock.advance("4h")
    worker.drain()
    (run,) = rows(app, WorkflowRun, WorkflowRun.id == run_id)
    assert run.state == "compensated" and "nobody to notify" in (run.error or "")
    assert ticket(app, tid).priority == "normal"  # escalated to high, then put back
    actions = [a.action for a in rows(app, AuditEntry, AuditEntry.target_id == tid)]
    assert "support.ticket.escalate" in actions and "support.ticket.escalation_revert" in actions
    assert mailbox.to(tenant_a.email) == []


def test_the_escalation_starts_once_however_often_ticket_created_is_delivered(app, tenant_a):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    tid = s.api.run("support.ticket.create", tenant_a.ticket(priority="high"))["ticketId"]
    assert escalations(app) == []  # started by the subscriber, in the worker, not inline
    s.worker.drain()
    (first,) = escalations(app)
    with service_ctx(app, tenant_a.id, trigger="event") as ctx:
        again = services.watch_for_escalation(ctx, tid, tenant_a.org_id)  # a second delivery
    assert again == first.id
    (run,) = escalations(app)
    assert run.id == first.id and run.input == {"ticketId": tid, "orgId": tenant_a.org_id}
