"""billing.trial.expired: downgrade -> notify -> wait for a card -> restore to pro."""

from __future__ import annotations

from pydantic import Field

from bunbase import Context, Contract, mail
from bunbase.workflows import step, wait, workflow
from tests.fixture_modules.trial import services


class TrialInput(Contract):
    org_id: str = Field(min_length=1, max_length=40)


def downgrade(input: TrialInput, ctx: Context) -> dict[str, str]:
    return {"from": services.set_plan(ctx, input.org_id, "free")}


def restore(input: TrialInput, ctx: Context) -> None:
    services.set_plan(ctx, input.org_id, "trial")


def notify(input: TrialInput, ctx: Context) -> dict[str, str]:
    to = services.owner_email(ctx.db, input.org_id)
    mail.send(
        ctx,
        to=to,
        subject="Your trial has ended",
        kind="trial-expired",
        text=f"{input.org_id} is on the Free plan now. Add a card to get Pro back.",
    )
    return {"to": to}


def restore_to_pro(input: TrialInput, ctx: Context) -> dict[str, str]:
    return {"from": services.set_plan(ctx, input.org_id, "pro")}


trial_expired = workflow(
    services.EXPIRED_WORKFLOW,
    input=TrialInput,
    steps={
        "downgrade": step(downgrade, compensate=restore),
        "notify": notify,
        "waitForPayment": wait.for_event(services.PAYMENT_ADDED, match={"orgId": "$input.orgId"}),
        "restoreToPro": restore_to_pro,
    },
)
