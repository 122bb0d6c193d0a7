"""The audit explorer in a real browser: an API-created ticket's entry, filtered, its diff,
its run; the chain banner's "Verify chain"; the "why?" panel. Screenshots (light and dark)
go to $AUDIT_SCREENSHOTS when it is set."""

from __future__ import annotations

import os
import re
from pathlib import Path

import requests
from playwright.sync_api import Page, expect

from e2e.conftest import sign_in

TICKET = {"subject": "Cannot login", "body": "SSO redirect loop", "priority": "high"}
SHOTS = os.environ.get("AUDIT_SCREENSHOTS")


def _shot(page: Page, name: str) -> None:
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    for theme in ("light", "dark"):
        page.evaluate("t => document.documentElement.setAttribute('data-theme', t)", theme)
        page.screenshot(path=f"{SHOTS}/{name}-{theme}.png", full_page=True)


def test_audit_explorer_filter_diff_and_run(page: Page, operator: dict, live_server: str) -> None:
    headers = {"Authorization": f"Bearer {operator['token']}", "X-Tenant-Id": "demo"}
    resp = requests.post(f"{live_server}/v1/support/tickets", timeout=10, headers=headers,
                         json={**TICKET, "orgId": operator["org_id"]})
    assert resp.status_code == 200, resp.text
    ticket_id, run_id = resp.json()["data"]["ticketId"], resp.json()["run_id"]
    trace_id = resp.json()["trace_id"]

    sign_in(page, "operator@bunbase.local", "operator-pass-1")
    page.locator(".sidebar-nav").get_by_role("link", name="Audit log").click()
    expect(page.get_by_test_id("chain-status")).to_contain_text("sealed")
    table = page.get_by_test_id("audit-table")
    expect(table).to_contain_text("orgs.org.create")
    expect(table.locator(f'[data-target-id="{ticket_id}"]')).to_have_count(1)

    # filter by action: only the table swaps, the URL carries the filter
    page.select_option("#f-action", "support.ticket.create")
    expect(page).to_have_url(re.compile(r"action=support\.ticket\.create"))
    expect(table).not_to_contain_text("orgs.org.create")
    row = page.locator("tr", has=page.locator(f'[data-target-id="{ticket_id}"]'))
    expect(row).to_have_count(1)
    expect(page.get_by_test_id("audit-count")).to_contain_text("1 matching")

    page.get_by_role("button", name="Verify chain").click()
    expect(page.get_by_test_id("chain-result")).to_contain_text("Verified OK")
    _shot(page, "audit-events")

    row.get_by_role("link", name="Diff").click()
    diff = page.get_by_test_id("diff")
    expect(diff.locator('tr[data-key="subject"]')).to_contain_text("Cannot login")
    expect(diff.locator('tr[data-key="subject"]')).to_have_attribute("data-change", "added")
    expect(page.get_by_test_id("entry-decision")).to_contain_text("ticket:create")
    expect(page.get_by_test_id("trace-link")).to_have_text(trace_id)
    _shot(page, "audit-entry")

    page.get_by_test_id("run-link").click()
    expect(page).to_have_url(re.compile(rf"/studio/runtime/actions/{run_id}$"))
    expect(page.get_by_test_id("trace-id")).to_have_text(trace_id)


def test_why_panel(page: Page, operator: dict) -> None:
    sign_in(page, "operator@bunbase.local", "operator-pass-1")
    page.locator(".sidebar-nav").get_by_role("link", name="Why? (access)").click()
    page.fill("#f-email", "operator@bunbase.local")
    page.fill("#f-org", operator["org_id"])
    page.fill("#f-permission", "ticket:create")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("why-verdict")).to_contain_text("allowed")
    expect(page.get_by_test_id("why-steps")).to_contain_text("owner")
    _shot(page, "audit-why")
