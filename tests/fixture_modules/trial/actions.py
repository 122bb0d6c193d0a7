from __future__ import annotations

from typing import Any

from pydantic import Field

from bunbase import Conflict, Context, Contract, action, guards, triggers
from modules.rbac.guards import in_org
from tests.fixture_modules.trial import services


class StartTrialInput(Contract):
    org_id: str = Field(min_length=1, max_length=40)
    days: int = Field(default=14, ge=1, le=90)


class PlanOut(Contract):
    org_id: str
    plan: str
    card_last4: str | None = None


@action(name="trial.subscription.start", input=StartTrialInput, output=PlanOut, guards=[in_org()])
def start_trial(input: StartTrialInput, ctx: Context) -> PlanOut:
    sub = services.start_trial(ctx, input.org_id, input.days)
    return PlanOut(org_id=sub.org_id, plan=sub.plan)


class OrgInput(Contract):
    org_id: str = Field(min_length=1, max_length=40)


@action(name="trial.subscription.get", input=OrgInput, output=PlanOut, guards=[in_org()], mutating=False)
def get_plan(input: OrgInput, ctx: Context) -> PlanOut:
    sub = services.subscription(ctx.db, input.org_id)
    return PlanOut(org_id=sub.org_id, plan=sub.plan, card_last4=sub.card_last4)


class PaymentInput(Contract):
    org_id: str = Field(min_length=1, max_length=40)
    card_last4: str = Field(default="4242", pattern=r"^\d{4}$")


@action(name="trial.payment_method.add", input=PaymentInput, output=PlanOut, guards=[in_org()])
def add_payment_method(input: PaymentInput, ctx: Context) -> PlanOut:
    """Store the card and emit "payment.added" (a waiting expiry workflow resumes)."""
    sub = services.add_payment_method(ctx, input.org_id, input.card_last4)
    return PlanOut(org_id=sub.org_id, plan=sub.plan, card_last4=sub.card_last4)


class EmitInput(Contract):
    """Test-only: emit any event from an action, and optionally fail after emitting."""

    name: str = Field(min_length=1, max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict)
    fail_after_emit: bool = False


class Emitted(Contract):
    event_id: str


@action(name="trial.event.emit", input=EmitInput, output=Emitted)
def emit_event(input: EmitInput, ctx: Context) -> Emitted:
    event_id = ctx.events.emit(input.name, input.payload)
    if input.fail_after_emit:
        raise Conflict("failing after the emit, on purpose")
    return Emitted(event_id=event_id)


class PaymentAddedInput(Contract):
    org_id: str
    last4: str


class Receipt(Contract):
    sent_to: str


@action(
    name="trial.payment.on_added",
    input=PaymentAddedInput,
    output=Receipt,
    triggers=[triggers.event(services.PAYMENT_ADDED)],
    guards=[guards.only_trigger("event")],
    audit=False,
)
def on_payment_added(input: PaymentAddedInput, ctx: Context) -> Receipt:
    """Subscriber: mail a receipt (tests make it fail to see the delivery retried)."""
    return Receipt(sent_to=services.send_receipt(ctx, input.org_id, input.last4))
