"""The pages behind the links in verification and reset mails, in Chromium: the link
opens a page, its button or form finishes the job, and the link then stops working."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask, testing
from playwright.sync_api import Page, expect

from e2e.conftest import mail_bodies


def mail_link(app: Flask, to: str, path: str, request: pytest.FixtureRequest) -> str:
    bodies = mail_bodies(app, to, request)
    assert bodies, f"no mail to {to}"
    found = re.search(rf"https?://[^/\s]+(/{path}/bb[a-z]_[A-Za-z0-9_\-]+)", bodies[-1])
    assert found, bodies[-1]
    return found.group(1)


def api(client: testing.FlaskClient, path: str, body: dict[str, Any]) -> None:
    resp = client.post(path, json=body, headers={"X-Tenant-Id": "demo"})
    assert resp.status_code == 200, resp.get_json()


def test_verify_and_reset_links(
    page: Page, app: Flask, operator: dict, request: pytest.FixtureRequest
) -> None:
    client = app.test_client()
    api(client, "/v1/users/signup", {"email": "nia@demo.test", "password": "first passphrase", "name": "Nia"})
    link = mail_link(app, "nia@demo.test", "verify-email", request)
    page.goto(link)
    expect(page.get_by_role("heading", name="Confirm your email")).to_be_visible()
    page.get_by_role("button", name="Confirm nia@demo.test").click()
    expect(page.get_by_test_id("token-result")).to_have_attribute("data-result", "verified")
    page.goto(link)
    expect(page.get_by_test_id("token-result")).to_have_attribute("data-result", "invalid")

    api(client, "/v1/users/password/reset-request", {"email": "nia@demo.test"})
    link = mail_link(app, "nia@demo.test", "reset-password", request)
    page.goto(link)
    page.fill("#new-password", "second passphrase")
    page.fill("#confirm-password", "not the same one")
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_test_id("reset-error")).to_contain_text("The two passwords differ.")
    page.evaluate("document.documentElement.dataset.theme = 'dark'")  # both themes render
    page.fill("#new-password", "second passphrase")
    page.fill("#confirm-password", "second passphrase")
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_test_id("token-result")).to_have_attribute("data-result", "reset")
    login = client.post("/v1/auth/login", json={"email": "nia@demo.test", "password": "second passphrase"},
                        headers={"X-Tenant-Id": "demo"})
    assert login.status_code == 200
