"""Studio in a real browser: sign in, find an API-created run, filters in the URL, dark mode."""

from __future__ import annotations

import re

import requests
from flask import Flask
from playwright.sync_api import Page, expect

from e2e.conftest import sign_in

TICKET = {"orgId": "org_1", "subject": "Cannot login", "body": "SSO redirect loop", "priority": "high"}


def _api_token(base: str, tenant: str, email: str, password: str) -> str:
    resp = requests.post(f"{base}/v1/auth/login", json={"email": email, "password": password},
                         headers={"X-Tenant-Id": tenant}, timeout=10)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["data"]["token"])


def test_login_rejects_a_wrong_password(page: Page, operator: dict) -> None:
    page.goto("/studio/login")
    page.fill("#email", "operator@bunbase.local")
    page.fill("#password", "wrong-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("incorrect")
    assert "/studio/login" in page.url


def test_run_created_over_the_api_shows_in_the_run_explorer(
    page: Page, operator: dict, live_server: str, app: Flask
) -> None:
    token = _api_token(live_server, "demo", "operator@bunbase.local", "operator-pass-1")
    resp = requests.post(
        f"{live_server}/v1/actions/support.ticket.create/run", timeout=10,
        json={**TICKET, "orgId": operator["org_id"]},
        headers={"Authorization": f"Bearer {token}", "X-Tenant-Id": "demo",
                 "Idempotency-Key": "ticket-001"},
    )
    assert resp.status_code == 200, resp.text
    run_id, trace_id = resp.json()["run_id"], resp.json()["trace_id"]
    # runs are written in batches (every ~2 s); Studio writes what is pending before it
    # builds a page, so the run shows at once
    sign_in(page, "operator@bunbase.local", "operator-pass-1")
    page.locator(".sidebar-nav").get_by_role("link", name="Actions").click()
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    expect(row).to_contain_text("support.ticket.create")
    expect(row).to_contain_text("ok")

    # filter by action and status: the table swaps in place and the URL carries the filters
    page.select_option("#f-status", "error")
    expect(page).to_have_url(re.compile(r"status=error"))
    expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_have_count(0)
    page.select_option("#f-status", "ok")
    page.select_option("#f-action", "support.ticket.create")
    expect(page).to_have_url(re.compile(r"action=support\.ticket\.create"))
    expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_have_count(1)
    expect(page.get_by_test_id("action-stats")).to_contain_text("support.ticket.create")

    # the URL alone reproduces the filtered view
    page.goto(page.url)
    expect(page.locator("#f-action")).to_have_value("support.ticket.create")

    page.locator(f'a:has-text("{run_id}")').click()
    expect(page.get_by_test_id("trace-id")).to_have_text(trace_id)
    expect(page.get_by_test_id("run-input")).to_contain_text("SSO redirect loop")
    expect(page.get_by_test_id("run-output")).to_contain_text("ticketId")


def test_operator_switches_tenant(page: Page, operator: dict) -> None:
    sign_in(page, "operator@bunbase.local", "operator-pass-1")
    expect(page.locator(".breadcrumbs")).to_contain_text("Demo Company")
    page.select_option("#tenant-switcher-select", label="Acme Inc (acme)")
    expect(page.locator(".breadcrumbs")).to_contain_text("Acme Inc")


def test_tenant_admin_sees_only_own_tenant(page: Page, operator: dict) -> None:
    sign_in(page, "admin@acme.test", "acme-pass-1")
    expect(page.locator("#tenant-switcher-select")).to_have_count(0)
    expect(page.locator(".tenant-current")).to_contain_text("Acme Inc")


def test_dark_mode_toggle_persists(page: Page, operator: dict) -> None:
    sign_in(page, "operator@bunbase.local", "operator-pass-1")
    html = page.locator("html")
    before = html.get_attribute("data-theme")
    page.get_by_role("button", name="Toggle dark mode").click()
    after = html.get_attribute("data-theme")
    assert after in {"dark", "light"} and after != before
    page.reload()
    expect(html).to_have_attribute("data-theme", after)


def test_pages_need_sign_in_and_logout_ends_the_session(page: Page, operator: dict) -> None:
    page.goto("/studio/runtime/actions")
    expect(page).to_have_url(re.compile(r"/studio/login"))
    sign_in(page, "operator@bunbase.local", "operator-pass-1")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/studio/login"))
    page.goto("/studio/")
    expect(page).to_have_url(re.compile(r"/studio/login"))
