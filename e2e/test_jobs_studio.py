"""Studio → Runtime in a real browser: a job fails into the DLQ, is found there, replayed
after the fix (through the confirm dialog) and succeeds; the live refresh keeps a selection;
the Scheduler, Workflows and Events pages render their rows. Screenshots (light and dark)
go to $RUNTIME_SCREENSHOTS when it is set."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from playwright.sync_api import Page, expect

from bunbase import Contract
from bunbase.context import Context
from bunbase.jobs import PermanentError, job
from bunbase.testing import Worker, service_ctx
from bunbase.workflows import wait, workflow
from e2e.conftest import sign_in

SHOTS = os.environ.get("RUNTIME_SCREENSHOTS")
FIXED: dict[str, bool] = {}


@job("rte2e.fragile", retries=2, api=True)
def fragile(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if not FIXED.get("fragile"):
        raise PermanentError("the upstream API rejected the request (HTTP 422)")
    return {"delivered": payload.get("to")}


@job("rte2e.noop", api=True)
def noop(payload: dict[str, Any], ctx: Context) -> None:
    return None


class OnboardInput(Contract):
    user_id: str


def _welcome(input: OnboardInput, ctx: Context) -> dict[str, Any]:
    return {"mailed": input.user_id}


workflow(
    "rte2e.onboard",
    input=OnboardInput,
    steps={"welcome": _welcome, "grace": wait.for_duration("1d"), "activate": lambda i, c: {"ok": True}},
)


def _shot(page: Page, name: str) -> None:
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    for theme in ("light", "dark"):
        page.evaluate("t => document.documentElement.setAttribute('data-theme', t)", theme)
        page.screenshot(path=f"{SHOTS}/{name}-{theme}.png", full_page=True)
    page.evaluate("() => document.documentElement.removeAttribute('data-theme')")


def _api(live_server: str, operator: dict, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {operator['token']}", "X-Tenant-Id": "demo"}
    resp = requests.request(method, f"{live_server}{path}", json=body, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def test_fail_a_job_find_it_in_the_dlq_replay_it_and_see_it_succeed(
    page: Page, operator: dict, live_server: str, app: Flask
) -> None:
    FIXED.clear()
    job_id = _api(live_server, operator, "POST", "/v1/jobs",
                  {"name": "rte2e.fragile", "payload": {"to": "ops@example.com"}})["jobId"]
    Worker(app).drain()

    sign_in(page, "operator@bunbase.local", "operator-pass-1")
    page.locator(".sidebar-nav").get_by_role("link", name="Jobs").click()
    expect(page.get_by_test_id("dlq-kpi").locator("[data-kpi=dead]")).to_have_text("1")

    # the DLQ: filter by status, only the results swap, the URL keeps the filter
    page.select_option("#f-status", "dead")
    expect(page).to_have_url(re.compile(r"status=dead"))
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    expect(row.locator(".badge")).to_have_text("dead")
    expect(row).to_contain_text("HTTP 422")
    replay_all = page.get_by_test_id("replay-matching")
    expect(replay_all).to_have_attribute("data-confirm", "Replay 1 dead job?")

    # a selection survives the live refresh (it pauses while something is selected)
    row.locator(".rt-select").check()
    replay_selected = page.get_by_role("button", name="Replay selected")
    expect(replay_selected).to_be_enabled()
    expect(replay_selected).to_have_attribute("data-confirm", re.compile(r"^Replay 1 selected job\?"))
    page.wait_for_timeout(6_000)
    expect(row.locator(".rt-select")).to_be_checked()
    row.locator(".rt-select").uncheck()
    _shot(page, "jobs-dlq")

    # the fix ships; replay from the job's page, through the confirm dialog
    FIXED["fragile"] = True
    row.get_by_role("link", name=job_id).click()
    expect(page.get_by_test_id("job-status")).to_contain_text("dead")
    expect(page.get_by_test_id("job-error")).to_contain_text("PermanentError")
    trace = page.get_by_test_id("trace-link")
    expect(trace).to_have_attribute("href", re.compile(r"/studio/runtime/actions\?q="))
    _shot(page, "job-dead")
    page.get_by_test_id("replay-form").get_by_role("button", name="Replay").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Run rte2e.fragile again")
    dialog.get_by_role("button", name="Replay").click()
    expect(page.locator(".toast")).to_contain_text("Job replayed")
    expect(page.get_by_test_id("job-status")).to_contain_text("scheduled")

    Worker(app).drain()
    page.reload()
    expect(page.get_by_test_id("job-status")).to_contain_text("succeeded")
    expect(page.get_by_test_id("job-attempts")).to_contain_text("2 of")
    expect(page.get_by_test_id("job-result")).to_contain_text("ops@example.com")
    _shot(page, "job-succeeded")

    page.goto("/studio/m/runtime/jobs?status=dead")
    expect(page.get_by_test_id("dlq-kpi").locator("[data-kpi=dead]")).to_have_text("0")

    # find the job again by its id: only the results swap, the URL keeps the search
    other = _api(live_server, operator, "POST", "/v1/jobs",
                 {"name": "rte2e.fragile", "payload": {"to": "other@example.com"}})["jobId"]
    page.goto("/studio/m/runtime/jobs")
    expect(page.locator(f'tr[data-job-id="{other}"]')).to_have_count(1)
    page.fill("#f-q", job_id)
    page.press("#f-q", "Enter")
    expect(page).to_have_url(re.compile(rf"q={job_id}"))
    expect(page.locator(f'tr[data-job-id="{job_id}"]')).to_have_count(1)
    expect(page.locator(f'tr[data-job-id="{other}"]')).to_have_count(0)


def test_runtime_pages_refresh_and_render(page: Page, operator: dict, live_server: str, app: Flask) -> None:
    FIXED.clear()
    tenant_id = operator["demo"].tenant_id
    with service_ctx(app, tenant_id) as ctx:
        ctx.scheduler.cron("nightly-report", cron="0 3 * * *", timezone="Europe/Paris", job="rte2e.noop")
        ctx.scheduler.every("heartbeat", interval="10m", job="rte2e.noop")
        ctx.events.emit("rte2e.user.signed_up", {"userId": "usr_1"})
    started = _api(live_server, operator, "POST", "/v1/workflows/rte2e.onboard/start", {"userId": "usr_1"})
    run_id = started["runId"]
    for _ in range(2):
        _api(live_server, operator, "POST", "/v1/jobs", {"name": "rte2e.fragile", "payload": {"to": "x"}})
    Worker(app).drain()

    sign_in(page, "operator@bunbase.local", "operator-pass-1")
    page.goto("/studio/m/runtime/jobs")
    expect(page.get_by_test_id("replay-matching")).to_have_attribute("data-confirm", "Replay 2 dead jobs?")
    # the table refreshes by itself: a job enqueued now shows up without a reload
    fresh = _api(live_server, operator, "POST", "/v1/jobs", {"name": "rte2e.noop", "delay": "1h"})["jobId"]
    expect(page.locator(f'tr[data-job-id="{fresh}"]')).to_have_count(1, timeout=12_000)
    _shot(page, "jobs")

    # "Discard all matching" states the count, then acts on exactly those
    page.goto("/studio/m/runtime/jobs?status=dead")
    page.get_by_test_id("discard-matching").click()
    expect(page.locator("#confirm-dialog")).to_contain_text("Discard 2 dead jobs?")
    page.locator("#confirm-dialog").get_by_role("button", name="Discard 2").click()
    expect(page.locator(".toast")).to_contain_text("2 jobs discarded")

    page.locator(".sidebar-nav").get_by_role("link", name="Scheduler").click()
    table = page.get_by_test_id("schedules-table")
    expect(table).to_contain_text("nightly-report")
    expect(table).to_contain_text("Europe/Paris")
    nightly = table.locator("tr", has_text="nightly-report")
    nightly.get_by_role("button", name="Pause").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Pause").click()
    expect(page.locator(".toast")).to_contain_text("Schedule paused")
    expect(table.locator("tr", has_text="nightly-report").locator(".badge")).to_have_text("paused")
    _shot(page, "scheduler")

    page.locator(".sidebar-nav").get_by_role("link", name="Workflows").click()
    expect(page.locator(f'tr[data-run-id="{run_id}"] .badge')).to_have_text("waiting")
    _shot(page, "workflows")
    page.get_by_role("link", name=run_id).click()
    timeline = page.get_by_test_id("timeline")
    expect(timeline.locator('[data-step="welcome"] .badge')).to_have_text("completed")
    expect(timeline.locator('[data-step="grace"] .badge')).to_have_text("waiting")
    expect(timeline.locator('[data-step="activate"] .badge')).to_have_text("pending")
    page.get_by_test_id("run-pause").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Pause").click()
    expect(page.get_by_test_id("run-state")).to_contain_text("paused")
    page.select_option("#from_step", "welcome")
    page.fill("#wf-input", '{"userId": "usr_2"}')
    page.get_by_role("button", name="Replay from step").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Replay").click()
    expect(page.locator(".toast")).to_contain_text("Replaying")
    Worker(app).drain()
    page.reload()
    expect(page.get_by_test_id("run-input")).to_contain_text("usr_2")
    expect(page.get_by_test_id("run-state")).to_contain_text("waiting")
    _shot(page, "workflow-run")

    page.locator(".sidebar-nav").get_by_role("link", name="Events").click()
    expect(page.get_by_test_id("events-table")).to_contain_text("rte2e.user.signed_up")
    _shot(page, "events")
