from __future__ import annotations

import time

from pydantic import Field

from bunbase import Conflict, Context, Contract, Empty, action, guards, triggers
from bunbase.jobs import enqueue
from modules.support import services as support


class FailInput(Contract):
    mode: str = Field(pattern="^(typed|crash)$")


class Done(Contract):
    ok: bool


@action(name="testkit.fail.after_write", input=FailInput, output=Done)
def fail_after_write(input: FailInput, ctx: Context) -> Done:
    """Writes a ticket, an audit entry and an outbox job, then fails."""
    support.create_ticket(
        ctx, org_id="org_x", subject="doomed", body="never committed", priority="low"
    )
    enqueue(ctx, "testkit.record", {"note": "should-not-run"})
    if input.mode == "typed":
        raise Conflict("deliberate failure after writing")
    raise RuntimeError("secret internal detail /etc/passwd")


class NoteInput(Contract):
    note: str


@action(name="testkit.job.enqueue", input=NoteInput, output=Done)
def enqueue_job(input: NoteInput, ctx: Context) -> Done:
    enqueue(ctx, "testkit.record", {"note": input.note})
    return Done(ok=True)


class SlowInput(Contract):
    seconds: float = Field(ge=0, le=5)


@action(name="testkit.slow", input=SlowInput, output=Done)
def slow(input: SlowInput, ctx: Context) -> Done:
    time.sleep(input.seconds)
    return Done(ok=True)


@action(name="testkit.limited", input=Empty, output=Done, guards=[guards.rate_limit("2/minute")])
def limited(input: Empty, ctx: Context) -> Done:
    return Done(ok=True)


@action(name="testkit.bad_output", input=Empty, output=Done, mutating=False)
def bad_output(input: Empty, ctx: Context) -> dict[str, str]:
    return {"nope": "not the contract"}


@action(name="testkit.secret", input=Empty, output=Done, permissions=["secret:read"])
def secret(input: Empty, ctx: Context) -> Done:
    return Done(ok=True)


class EchoInput(Contract):
    item_id: str
    flag: str | None = None
    count: int = 0


class EchoOutput(Contract):
    item_id: str
    flag: str | None
    count: int


@action(
    name="testkit.echo.get",
    input=EchoInput,
    output=EchoOutput,
    triggers=[triggers.api("GET", "/echo/{itemId}")],
)
def echo_get(input: EchoInput, ctx: Context) -> EchoOutput:
    return EchoOutput(item_id=input.item_id, flag=input.flag, count=input.count)


@action(
    name="testkit.echo.put",
    input=EchoInput,
    output=EchoOutput,
    triggers=[triggers.api("PUT", "/echo/{itemId}")],
)
def echo_put(input: EchoInput, ctx: Context) -> EchoOutput:
    ctx.logger.info("echo", count=input.count)
    return EchoOutput(item_id=input.item_id, flag=input.flag, count=input.count)
