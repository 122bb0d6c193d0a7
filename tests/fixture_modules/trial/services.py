"""Billing for the trial lifecycle (test-only): the only code that changes subscriptions."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from sqlalchemy import select

from bunbase import Context, Contract, NotFound, events, mail
from bunbase.db import DBSession
from bunbase.models import User
from modules.orgs.models import Organization
from tests.fixture_modules.trial.models import Subscription

WARNING_JOB = "billing.trial.warning"
EXPIRATIONS_JOB = "billing.processTrialExpirations"
EXPIRED_WORKFLOW = "billing.trial.expired"
PAYMENT_ADDED = "payment.added"
WARN_BEFORE = timedelta(days=7)


def subscription(session: DBSession, org_id: str) -> Subscription:
    sub = session.scalar(select(Subscription).where(Subscription.org_id == org_id))
    if sub is None:
        raise NotFound("No subscription for this organization")
    return sub


def owner_email(session: DBSession, org_id: str) -> str:
    org = session.get(Organization, org_id)
    owner = session.get(User, org.owner_id) if org else None
    if owner is None:
        raise NotFound("Organization not found")
    return owner.email


def start_trial(ctx: Context, org_id: str, days: int) -> Subscription:
    now = ctx.now()
    sub = ctx.db.scalar(select(Subscription).where(Subscription.org_id == org_id))
    if sub is None:
        sub = Subscription(tenant_id=ctx.tenant.id, org_id=org_id, plan="trial", trial_ends_at=now)
        ctx.db.add(sub)
    sub.plan, sub.trial_ends_at, sub.updated_at = "trial", now + timedelta(days=days), now
    sub.warned_at = sub.expired_at = None
    ctx.db.flush()
    # re-starting a trial moves the warning (same key), it never doubles it
    ctx.scheduler.once(
        f"trial:{org_id}:warning",
        run_at=sub.trial_ends_at - WARN_BEFORE,
        job=WARNING_JOB,
        payload={"orgId": org_id},
    )
    ctx.scheduler.cron("billing:trial-expirations", cron="0 1 * * *", job=EXPIRATIONS_JOB)
    return sub


def send_warning(ctx: Context, org_id: str) -> bool:
    sub = subscription(ctx.db, org_id)
    if sub.plan != "trial" or sub.warned_at is not None:
        return False
    sub.warned_at = ctx.now()
    mail.send(
        ctx,
        to=owner_email(ctx.db, org_id),
        subject="Your trial ends in 7 days",
        text=f"The trial of {org_id} ends on {sub.trial_ends_at:%Y-%m-%d}. Add a card to keep Pro.",
        kind="trial-warning",
    )
    return True


def process_expirations(ctx: Context) -> list[str]:
    """Start the expiry workflow for every trial that has ended (once per trial)."""
    due = ctx.db.scalars(
        select(Subscription).where(
            Subscription.plan == "trial",
            Subscription.expired_at.is_(None),
            Subscription.trial_ends_at <= ctx.now(),
        )
    ).all()
    for sub in due:
        sub.expired_at = ctx.now()
        ctx.workflows.start(EXPIRED_WORKFLOW, {"orgId": sub.org_id})
    return [s.org_id for s in due]


def set_plan(ctx: Context, org_id: str, plan: str) -> str:
    sub = subscription(ctx.db, org_id)
    before, sub.plan, sub.updated_at = sub.plan, plan, ctx.now()
    return before


def add_payment_method(ctx: Context, org_id: str, last4: str) -> Subscription:
    sub = subscription(ctx.db, org_id)
    sub.card_last4, sub.updated_at = last4, ctx.now()
    ctx.events.emit(PAYMENT_ADDED, {"orgId": org_id, "last4": last4})
    return sub


class PaymentAdded(Contract):
    """The typed payload of "payment.added"."""

    org_id: str = Field(min_length=1, max_length=40)
    last4: str = Field(pattern=r"^\d{4}$")


events.define(PAYMENT_ADDED, PaymentAdded)


def send_receipt(ctx: Context, org_id: str, last4: str) -> str:
    """The "payment.added" subscriber's work: a receipt mail to the org's owner."""
    to = owner_email(ctx.db, org_id)
    mail.send(ctx, to=to, subject="Card added", text=f"Card ending in {last4} added.", kind="payment-receipt")
    return to
