"""The handbook's trial lifecycle, end to end through the API, the worker and a real SMTP
server, with time moved by the test clock."""

from __future__ import annotations

import time

from bunbase.runtime_models import Schedule, WorkflowRun
from bunbase.testing import scenario
from tests.helpers import rows


def sign_in_again(s, tenant) -> None:
    """Sessions last 7 days; two weeks later the admin signs in again."""
    s.api.token = None
    data = s.api.post("/v1/auth/login", {"email": tenant.email, "password": tenant.password})
    s.api.token = data["token"]


def kinds(mailbox, address: str) -> list[str]:
    return [m["X-Bunbase-Kind"] for m in mailbox.to(address)]


def test_trial_lifecycle(app, tenant_a, mailbox):
    t0 = time.perf_counter()
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    org = tenant_a.org_id
    plan = lambda: s.api.run("trial.subscription.get", {"orgId": org})["plan"]  # noqa: E731

    assert s.api.run("trial.subscription.start", {"orgId": org, "days": 14})["plan"] == "trial"
    keys = {r.key: r for r in rows(app, Schedule)}
    assert keys[f"trial:{org}:warning"].kind == "once"
    assert (keys["billing:trial-expirations"].cron, keys["billing:trial-expirations"].job) == (
        "0 1 * * *", "billing.processTrialExpirations")
    s.worker.drain()
    assert kinds(mailbox, tenant_a.email) == []

    s.clock.advance("7d")
    s.worker.drain()
    sign_in_again(s, tenant_a)  # sessions last 7 days
    assert kinds(mailbox, tenant_a.email) == ["trial-warning"]
    assert "7 days" in mailbox.to(tenant_a.email)[0]["Subject"]
    assert plan() == "trial"

    s.clock.advance("7d")
    s.worker.drain()
    sign_in_again(s, tenant_a)
    assert plan() == "free"
    (run,) = rows(app, WorkflowRun, WorkflowRun.name == "billing.trial.expired")
    assert (run.state, run.wait_event, run.input) == ("waiting", "payment.added", {"orgId": org})
    assert kinds(mailbox, tenant_a.email) == ["trial-warning", "trial-expired"]

    s.api.run("trial.payment_method.add", {"orgId": org, "cardLast4": "4242"})
    s.worker.drain()
    assert plan() == "pro"
    (run,) = rows(app, WorkflowRun, WorkflowRun.name == "billing.trial.expired")
    assert run.state == "completed"
    assert list(run.results) == ["downgrade", "notify", "waitForPayment", "restoreToPro"]
    assert sorted(kinds(mailbox, tenant_a.email)) == [
        "payment-receipt", "trial-expired", "trial-warning"]

    # the daily cron keeps running and does not expire the trial twice
    s.clock.advance("2d")
    s.worker.drain()
    assert plan() == "pro"
    assert len(rows(app, WorkflowRun, WorkflowRun.name == "billing.trial.expired")) == 1
    assert time.perf_counter() - t0 < 10, "the trial lifecycle scenario must run in under 10 s"


def test_restarting_a_trial_moves_its_warning_and_never_doubles_it(app, tenant_a, mailbox):
    s = scenario(app, token=tenant_a.token, tenant=tenant_a.id)
    org = tenant_a.org_id
    s.api.run("trial.subscription.start", {"orgId": org, "days": 14})
    s.api.run("trial.subscription.start", {"orgId": org, "days": 21})
    assert len(rows(app, Schedule, Schedule.key == f"trial:{org}:warning")) == 1
    assert len(rows(app, Schedule, Schedule.key == "billing:trial-expirations")) == 1
    s.clock.advance("7d")
    s.worker.drain()
    assert kinds(mailbox, tenant_a.email) == []  # moved to day 14
    s.clock.advance("7d")
    s.worker.drain()
    assert kinds(mailbox, tenant_a.email) == ["trial-warning"]
