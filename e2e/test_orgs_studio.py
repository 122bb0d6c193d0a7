"""Organizations, invitations and roles in a real browser: the operator invites bob from
Studio, bob accepts on the public invitation page, the operator changes his role, and the
audit trail and decision log show what happened.

Set E2E_SCREENSHOTS=/some/dir to keep light and dark screenshots of every page.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from bunbase import identity
from bunbase.db import db
from bunbase.models import AuditEntry, User
from bunbase.tenancy import tenant_scope
from bunbase.testing import settle
from e2e.conftest import mail_bodies, sign_in
from modules.orgs.models import Invitation
from modules.rbac.models import DecisionRecord, Membership

SHOTS = os.environ.get("E2E_SCREENSHOTS")
OPERATOR = ("operator@bunbase.local", "operator-pass-1")


def shot(page: Page, name: str) -> None:
    """A light and a dark full-page screenshot, when E2E_SCREENSHOTS names a folder."""
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    for theme in ("light", "dark"):
        page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
        page.screenshot(path=f"{SHOTS}/{name}-{theme}.png", full_page=True)
    page.evaluate("document.documentElement.dataset.theme = 'light'")


def add_user(app: Flask, tenant_id: str, email_: str, name: str, password: str) -> str:
    with app.app_context(), tenant_scope(tenant_id):
        user = User(tenant_id=tenant_id, email=email_, name=name,
                    password_hash=identity.hash_password(password))
        db.session.add(user)
        db.session.commit()
        user_id = user.id
        db.session.remove()
    return user_id


def invitation_token(app: Flask, to: str, request: pytest.FixtureRequest) -> str:
    """The invitation token in the newest mail to `to` (queued mail delivered first)."""
    bodies = mail_bodies(app, to, request)
    assert bodies, f"no invitation mail to {to}"
    found = re.search(r"/invite/(bbi_[A-Za-z0-9_\-]+)", bodies[-1])
    assert found, bodies[-1]
    return found.group(1)


def confirm(page: Page, label: str) -> None:
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=label).click()


def test_invite_accept_change_role_and_audit(
    page: Page, operator: dict, app: Flask, request: pytest.FixtureRequest
) -> None:
    tenant_id, org_id = operator["demo"].tenant_id, operator["org_id"]
    bob_id = add_user(app, tenant_id, "bob@demo.test", "Bob Builder", "bob-pass-123")

    sign_in(page, *OPERATOR)
    page.locator(".sidebar-nav").get_by_role("link", name="Organizations").click()
    expect(page.get_by_test_id("orgs-table")).to_contain_text("Demo Support")
    shot(page, "orgs-list")

    # create an org from Studio, owned by bob
    page.get_by_role("link", name="New organization").first.click()
    page.fill("#org-name", "Acme Robotics")
    page.select_option("#org-owner", label="bob@demo.test — Bob Builder")
    shot(page, "org-new")
    page.get_by_role("button", name="Create organization").click()
    expect(page.locator("h1")).to_contain_text("Acme Robotics")
    expect(page.locator(".toast-success")).to_contain_text("Acme Robotics created")
    expect(page.get_by_test_id("members-table")).to_contain_text("bob@demo.test")

    # the search filter lives in the URL and swaps only the table
    page.goto("/studio/m/orgs/orgs")
    page.fill("#f-q", "acme")
    page.locator("#f-q").press("Enter")
    expect(page).to_have_url(re.compile(r"q=acme"))
    expect(page.get_by_test_id("orgs-table")).not_to_contain_text("Demo Support")
    expect(page.get_by_test_id("orgs-table")).to_contain_text("Acme Robotics")

    # invite bob to Demo Support from Studio
    page.goto(f"/studio/m/orgs/orgs/{org_id}/invitations")
    page.fill("#invite-email", "bob@demo.test")
    page.select_option("#invite-role", "member")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".toast-success")).to_contain_text("Invitation sent to bob@demo.test")
    row = page.locator('tr[data-email="bob@demo.test"]')
    expect(row.locator("[data-status]")).to_have_text("pending")
    shot(page, "org-invitations")

    # bob opens the link from his mail and accepts
    token = invitation_token(app, "bob@demo.test", request)
    page.goto(f"/invite/{token}")
    card = page.get_by_test_id("invite-card")
    expect(card).to_contain_text("Join Demo Support")
    expect(card).to_contain_text("Member")
    shot(page, "invite-page")
    page.fill("#in-password", "wrong-password")
    page.get_by_role("button", name="Sign in and accept").click()
    expect(page.get_by_role("alert")).to_contain_text("incorrect")
    page.fill("#in-password", "bob-pass-123")
    page.get_by_role("button", name="Sign in and accept").click()
    expect(page.get_by_test_id("invite-result")).to_have_attribute("data-result", "accepted")
    shot(page, "invite-accepted")
    page.goto(f"/invite/{token}")  # single use
    expect(page.get_by_test_id("invite-result")).to_contain_text("already accepted")

    # back in Studio: bob is a member; make him an admin from the members table
    page.goto(f"/studio/m/orgs/orgs/{org_id}")
    bob_row = page.locator(f'tr[data-member="{bob_id}"]')
    expect(bob_row.get_by_test_id("role-select")).to_have_value("member")
    bob_row.get_by_test_id("role-select").select_option("admin")
    expect(page.locator(".toast-success")).to_contain_text("bob@demo.test is now admin")
    expect(page.locator(f'tr[data-member="{bob_id}"]').get_by_test_id("role-select")).to_have_value(
        "admin")
    # the last owner cannot be demoted: the error shows and the row keeps "owner"
    op_row = page.locator('tr[data-email="operator@bunbase.local"]')
    op_row.get_by_test_id("role-select").select_option("viewer")
    expect(page.locator(".toast-error")).to_contain_text("last owner")
    expect(page.locator('tr[data-email="operator@bunbase.local"]').get_by_test_id(
        "role-select")).to_have_value("owner")
    shot(page, "org-members")

    page.locator(".tabs").get_by_role("link", name=re.compile("Roles")).click()
    expect(page.get_by_test_id("org-roles-table")).to_contain_text("Owner")
    shot(page, "org-roles")

    # the role x permission grid
    page.locator(".sidebar-nav").get_by_role("link", name="Roles & permissions").click()
    grid = page.get_by_test_id("permission-grid")
    owner_cell = grid.locator('td[data-role="owner"][data-permission="ticket:create"]')
    expect(owner_cell).to_contain_text("via *")
    expect(owner_cell.locator("input")).to_be_disabled()
    expect(grid.locator('td[data-role="admin"][data-permission="ticket:create"]')).to_contain_text(
        "via ticket:*")
    shot(page, "roles-grid")

    # memberships across the workspace, filtered by role
    page.locator(".sidebar-nav").get_by_role("link", name="Memberships").click()
    page.select_option("#f-role", "admin")
    expect(page).to_have_url(re.compile(r"role=admin"))
    table = page.get_by_test_id("memberships-table")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("bob@demo.test")
    shot(page, "memberships")

    # audited, and the decision log says why it was allowed
    settle(app)
    with app.app_context(), tenant_scope(tenant_id):
        inv = db.session.scalar(select(Invitation).where(Invitation.email == "bob@demo.test"))
        assert inv is not None and inv.status == "accepted"
        accepted = db.session.scalar(select(AuditEntry).where(
            AuditEntry.action == "orgs.invitation.accept", AuditEntry.target_id == inv.id))
        assert accepted is not None and accepted.actor_id == bob_id
        changed = db.session.scalar(select(AuditEntry).where(
            AuditEntry.action == "orgs.member.update_role", AuditEntry.target_id == bob_id))
        assert changed is not None and changed.org_id == org_id
        assert changed.diff == {"before": {"role": "member"}, "after": {"role": "admin"}}
        decision = db.session.scalar(select(DecisionRecord).where(
            DecisionRecord.action_name == "orgs.member.update_role",
            DecisionRecord.permission == "member:update",
            DecisionRecord.allowed.is_(True)))
        assert decision is not None and decision.reason
        reason, inv_id = decision.reason, inv.id
        membership = db.session.scalar(select(Membership).where(
            Membership.org_id == org_id, Membership.principal_id == bob_id))
        assert membership is not None and membership.role.key == "admin"
        db.session.remove()

    # ... and the operator sees the same in Studio: the audit explorer lists the accept and
    # the role change, the entry shows its diff and decision, "why?" shows the logged reason
    page.goto("/studio/m/audit/events?action=orgs.invitation.accept")
    expect(page.get_by_test_id("audit-table").locator(f'[data-target-id="{inv_id}"]')).to_have_count(1)
    page.goto("/studio/m/audit/events?action=orgs.member.update_role")
    table = page.get_by_test_id("audit-table")
    entry_row = table.locator("tr", has=page.locator(f'[data-target-id="{bob_id}"]'))
    expect(entry_row).to_have_count(1)
    entry_row.get_by_role("link", name="Diff").click()
    diff = page.get_by_test_id("diff").locator('tr[data-key="role"]')
    expect(diff).to_contain_text("member")
    expect(diff).to_contain_text("admin")
    expect(page.get_by_test_id("entry-decision")).to_contain_text("member:update")
    shot(page, "audit-role-change")
    page.goto(f"/studio/m/audit/why?email=operator@bunbase.local&org={org_id}&permission=member:update")
    expect(page.get_by_test_id("why-verdict")).to_contain_text("allowed")
    history = page.get_by_test_id("why-history")
    expect(history).to_contain_text("orgs.member.update_role")
    expect(history).to_contain_text(reason)
    shot(page, "why-role-change")


def test_custom_role_grid_toggle_and_delete(page: Page, operator: dict, app: Flask) -> None:
    sign_in(page, *OPERATOR)
    page.goto("/studio/m/rbac/roles")
    page.fill("#role-key", "support_lead")
    page.fill("#role-name", "Support lead")
    page.fill("#role-description", "Runs the support queue.")
    page.get_by_role("button", name="Create role").click()
    expect(page.locator(".toast-success")).to_contain_text("support_lead created")

    page.wait_for_load_state()
    grid = page.get_by_test_id("permission-grid")
    cell = grid.locator('td[data-role="support_lead"][data-permission="ticket:read"]')
    expect(cell).to_have_attribute("data-state", "none")
    cell.locator("input").check()
    expect(grid.locator('td[data-role="support_lead"][data-permission="ticket:read"]')
           ).to_have_attribute("data-state", "direct")
    expect(page.locator(".toast-success").last).to_contain_text("ticket:read granted")

    # a wildcard redraws the column: ticket:create is now granted via ticket:*
    page.wait_for_load_state()
    page.select_option("#f-feature", "ticket")
    expect(page).to_have_url(re.compile(r"feature=ticket"))
    grid.locator('td[data-role="support_lead"][data-permission="ticket:*"] input').check()
    expect(grid.locator('td[data-role="support_lead"][data-permission="ticket:create"]')
           ).to_contain_text("via ticket:*")
    shot(page, "roles-grid-custom")

    # system roles are locked
    page.select_option("#f-show", "")
    expect(page).not_to_have_url(re.compile(r"show=custom"))
    expect(grid.locator('td[data-role="member"][data-permission="ticket:read"] input')
           ).to_be_disabled()

    # a role in use cannot be deleted (409), an unused one can
    with app.app_context(), tenant_scope(operator["demo"].tenant_id):
        from modules.rbac.models import Role

        role = db.session.scalar(select(Role).where(Role.key == "support_lead"))
        member = db.session.scalar(select(Membership).where(
            Membership.org_id == operator["org_id"]))
        assert role is not None and member is not None
        role_id, member_id = role.id, member.id
        db.session.remove()
    add_user(app, operator["demo"].tenant_id, "sam@demo.test", "Sam", "sam-pass-123")
    with app.app_context(), tenant_scope(operator["demo"].tenant_id):
        sam = db.session.scalar(select(User).where(User.email == "sam@demo.test"))
        db.session.add(Membership(tenant_id=operator["demo"].tenant_id, org_id=operator["org_id"],
                                  principal_id=sam.id, role_id=role_id))
        db.session.commit()
        db.session.remove()
    assert member_id
    page.goto("/studio/m/rbac/roles")
    page.locator('[data-testid="roles-table"] tr[data-role="support_lead"]').get_by_role(
        "button", name="Delete").click()
    confirm(page, "Delete role")
    expect(page.locator(".toast-error")).to_contain_text("held by 1 member")

    page.goto(f"/studio/m/orgs/orgs/{operator['org_id']}")
    page.locator('tr[data-email="sam@demo.test"]').get_by_role("button", name="Remove").click()
    confirm(page, "Remove")
    expect(page.locator(".toast-success")).to_contain_text("sam@demo.test was removed")

    page.goto("/studio/m/rbac/roles")
    page.locator('[data-testid="roles-table"] tr[data-role="support_lead"]').get_by_role(
        "button", name="Delete").click()
    confirm(page, "Delete role")
    expect(page.locator(".toast-success")).to_contain_text("support_lead deleted")
    expect(page.locator('[data-testid="roles-table"] tr[data-role="support_lead"]')).to_have_count(0)


def test_revoked_and_declined_invitations(
    page: Page, operator: dict, app: Flask, request: pytest.FixtureRequest
) -> None:
    org_id = operator["org_id"]
    sign_in(page, *OPERATOR)
    for who in ("carol@demo.test", "dave@demo.test"):
        page.goto(f"/studio/m/orgs/orgs/{org_id}/invitations")
        page.fill("#invite-email", who)
        page.get_by_role("button", name="Send invitation").click()
        expect(page.locator(".toast-success")).to_contain_text(f"Invitation sent to {who}")
    carol = invitation_token(app, "carol@demo.test", request)
    dave = invitation_token(app, "dave@demo.test", request)

    page.locator('tr[data-email="carol@demo.test"]').get_by_role("button", name="Revoke").click()
    confirm(page, "Revoke")
    expect(page.locator(".toast-success")).to_contain_text("revoked")
    expect(page.locator('tr[data-email="carol@demo.test"] [data-status]')).to_have_text("revoked")
    page.wait_for_load_state()  # htmx is loaded (deferred) before the filter is used
    page.select_option("#f-status", "revoked")
    expect(page).to_have_url(re.compile(r"status=revoked"))
    expect(page.get_by_test_id("invitations-table").locator("tbody tr")).to_have_count(1)

    page.goto(f"/invite/{carol}")
    expect(page.get_by_test_id("invite-result")).to_have_attribute("data-result", "revoked")
    expect(page.get_by_test_id("invite-card")).to_contain_text("withdrawn")
    shot(page, "invite-revoked")

    page.goto(f"/invite/{dave}")
    page.get_by_test_id("decline-form").get_by_role("button", name="Decline").click()
    expect(page.get_by_test_id("invite-result")).to_have_attribute("data-result", "declined")

    # an unknown link is a 404 page (checked without the browser, which logs every 404)
    resp = app.test_client().get("/invite/bbi_not-a-real-token")
    assert resp.status_code == 404 and b"not valid" in resp.data


def test_new_person_signs_up_and_accepts(
    page: Page, operator: dict, app: Flask, request: pytest.FixtureRequest
) -> None:
    if app.extensions["bunbase"].registry.get("users.user.signup") is None:
        pytest.skip("the users module (users.user.signup) is not loaded")
    org_id = operator["org_id"]
    sign_in(page, *OPERATOR)
    page.goto(f"/studio/m/orgs/orgs/{org_id}/invitations")
    page.fill("#invite-email", "erin@demo.test")
    page.select_option("#invite-role", "viewer")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".toast-success")).to_contain_text("Invitation sent to erin@demo.test")
    token = invitation_token(app, "erin@demo.test", request)

    page.goto(f"/invite/{token}")
    page.get_by_text("Create an account").click()
    page.fill("#up-name", "Erin Example")
    page.fill("#up-password", "erin-pass-1234")
    page.get_by_role("button", name="Create account and accept").click()
    expect(page.get_by_test_id("invite-result")).to_have_attribute("data-result", "accepted")
    expect(page.get_by_test_id("invite-result")).to_contain_text("Viewer")

    page.goto("/studio/m/orgs/memberships?q=erin")
    expect(page.get_by_test_id("memberships-table")).to_contain_text("erin@demo.test")
    expect(page.get_by_test_id("memberships-table")).to_contain_text("Viewer")
