"""Organizations, members, ownership, invitations (mail through a real SMTP server), the
decision log and custom roles -- through the HTTP API, as the named actors."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bunbase.clock import clock
from bunbase.db import db
from bunbase.errors import Conflict
from bunbase.testing import service_ctx, settle
from bunbase.worker import run_worker
from modules.orgs.models import Invitation, Organization
from modules.rbac import services as rbac
from modules.rbac.models import DecisionRecord, Role
from tests.actors import add_user, login
from tests.helpers import assert_failure, assert_success, rows

ORGS = "/v1/orgs"


def deliver_mail(app) -> None:
    from bunbase import outbox

    outbox.settle()  # the courier pushes after commit, in the background
    run_worker(app, ["high", "default", "low"], burst=True)


def members(client, world, person="alice") -> dict[str, str]:
    resp = client.get(f"{ORGS}/{world.org_id}/members", headers=world[person].headers)
    items = assert_success(resp)["data"]["items"]
    return {m["userId"]: m["role"] for m in items if m["principalType"] == "user"}


# -- organizations -----------------------------------------------------------------------
def test_creator_is_owner_and_sees_the_org(client, world):
    bob = world["bob"]
    resp = client.post(ORGS, json={"name": "Bob's Shop"}, headers=bob.headers)
    org = assert_success(resp)["data"]
    assert org["role"] == "owner" and org["ownerId"] == bob.user_id
    assert org["slug"] == "bob-s-shop"
    listed = assert_success(client.get(ORGS, headers=bob.headers))["data"]["items"]
    assert {(o["orgId"], o["role"]) for o in listed} == {(org["orgId"], "owner"),
                                                         (world.org_id, "member")}
    got = assert_success(client.get(f"{ORGS}/{org['orgId']}", headers=bob.headers))["data"]
    assert got["name"] == "Bob's Shop"
    # alice is not in bob's org: it does not exist for her
    assert_failure(client.get(f"{ORGS}/{org['orgId']}", headers=world["alice"].headers),
                   404, "not_found")


def test_slug_is_unique_in_a_workspace(client, world):
    resp = client.post(ORGS, json={"name": "Other", "slug": "acme"}, headers=world["bob"].headers)
    assert_failure(resp, 409, "conflict")


def test_update_org_needs_org_update(client, world):
    url = f"{ORGS}/{world.org_id}"
    assert_failure(client.patch(url, json={"name": "Bobco"}, headers=world["bob"].headers),
                   403, "forbidden")
    data = assert_success(client.patch(url, json={"name": "Acme Inc", "slug": "acme-inc"},
                                       headers=world["alice"].headers))["data"]
    assert (data["name"], data["slug"]) == ("Acme Inc", "acme-inc")
    assert assert_success(client.get(url, headers=world["carol"].headers))["data"]["slug"] == (
        "acme-inc")


def test_members_list_shows_roles(client, world):
    assert members(client, world, "carol") == {
        world["alice"].user_id: "owner", world["bob"].user_id: "member",
        world["carol"].user_id: "viewer", world.dave_id: "member"}


def test_update_role_by_key(client, world):
    url = f"{ORGS}/{world.org_id}/members/{world.dave_id}"
    resp = client.patch(url, json={"role": "admin"}, headers=world["alice"].headers)
    assert assert_success(resp)["data"]["role"] == "admin"
    assert members(client, world)[world.dave_id] == "admin"
    unknown = client.patch(url, json={"role": "emperor"}, headers=world["alice"].headers)
    assert_failure(unknown, 400, "bad_request")
    # an admin cannot make someone an owner
    dave_token = login(client.application, world.acme_id, "dave@acme.test")
    dave = {"Authorization": f"Bearer {dave_token}", "X-Tenant-Id": world.acme_id}
    bob_url = f"{ORGS}/{world.org_id}/members/{world['bob'].user_id}"
    assert_failure(client.patch(bob_url, json={"role": "owner"}, headers=dave), 403, "forbidden")
    assert members(client, world)[world["bob"].user_id] == "member"


def test_last_owner_cannot_be_demoted_removed_or_leave(client, world):
    alice = world["alice"]
    me = f"{ORGS}/{world.org_id}/members/{alice.user_id}"
    for resp in (client.patch(me, json={"role": "admin"}, headers=alice.headers),
                 client.delete(me, headers=alice.headers),
                 client.post(f"{ORGS}/{world.org_id}/leave", headers=alice.headers)):
        assert_failure(resp, 409, "conflict")
    assert members(client, world)[alice.user_id] == "owner"
    # with a second owner, the first may leave
    client.patch(f"{ORGS}/{world.org_id}/members/{world.dave_id}", json={"role": "owner"},
                 headers=alice.headers)
    assert_success(client.post(f"{ORGS}/{world.org_id}/leave", headers=alice.headers))
    assert_failure(client.get(f"{ORGS}/{world.org_id}", headers=alice.headers), 404, "not_found")


def test_only_an_owner_changes_an_owner_and_the_recorded_owner_follows(client, world):
    alice = world["alice"]
    org_url = f"{ORGS}/{world.org_id}"
    assert_success(client.patch(f"{org_url}/members/{world.dave_id}", json={"role": "owner"},
                                headers=alice.headers))
    bob_url = f"{org_url}/members/{world['bob'].user_id}"
    assert_success(client.patch(bob_url, json={"role": "admin"}, headers=alice.headers))
    bob = world["bob"].headers
    # an admin may not demote or remove an owner, even when there are two
    dave_url = f"{org_url}/members/{world.dave_id}"
    assert_failure(client.patch(dave_url, json={"role": "viewer"}, headers=bob), 403, "forbidden")
    assert_failure(client.delete(dave_url, headers=bob), 403, "forbidden")
    assert members(client, world)[world.dave_id] == "owner"
    # dave (owner) demotes alice, the recorded owner: ownerId moves to dave
    dave = {"Authorization": f"Bearer {login(client.application, world.acme_id, 'dave@acme.test')}",
            "X-Tenant-Id": world.acme_id}
    me = f"{org_url}/members/{alice.user_id}"
    assert_success(client.patch(me, json={"role": "member"}, headers=dave))
    assert assert_success(client.get(org_url, headers=dave))["data"]["ownerId"] == world.dave_id


def test_member_can_leave_and_then_the_org_is_gone_for_them(client, world):
    bob = world["bob"]
    assert_success(client.post(f"{ORGS}/{world.org_id}/leave", headers=bob.headers))
    assert world["bob"].user_id not in members(client, world)
    assert_failure(client.get(f"{ORGS}/{world.org_id}", headers=bob.headers), 404, "not_found")


def test_remove_member(client, world):
    url = f"{ORGS}/{world.org_id}/members/{world.dave_id}"
    assert_failure(client.delete(url, headers=world["bob"].headers), 403, "forbidden")
    assert_success(client.delete(url, headers=world["alice"].headers))
    assert world.dave_id not in members(client, world)
    assert_failure(client.delete(url, headers=world["alice"].headers), 404, "not_found")


def test_transfer_ownership(app, client, world):
    alice, bob = world["alice"], world["bob"]
    url = f"{ORGS}/{world.org_id}/transfer"
    assert_failure(client.post(url, json={"userId": bob.user_id}, headers=bob.headers),
                   403, "forbidden")
    assert_failure(client.post(url, json={"userId": world["erin"].user_id},
                               headers=alice.headers), 404, "not_found")  # not a member
    org = assert_success(client.post(url, json={"userId": bob.user_id}, headers=alice.headers))
    assert org["data"]["ownerId"] == bob.user_id
    roles = members(client, world, "bob")
    assert (roles[bob.user_id], roles[alice.user_id]) == ("owner", "admin")
    (stored,) = rows(app, Organization, Organization.id == world.org_id)
    assert stored.owner_id == bob.user_id
    # alice, now an admin, can no longer transfer
    assert_failure(client.post(url, json={"userId": alice.user_id}, headers=alice.headers),
                   403, "forbidden")


# -- invitations -------------------------------------------------------------------------
def invite(client, world, email: str, **extra) -> dict:
    resp = client.post(f"{ORGS}/{world.org_id}/invitations", json={"email": email, **extra},
                       headers=world["alice"].headers)
    return assert_success(resp)["data"]


def test_invitation_is_mailed_and_accepted_by_the_invited_user(app, client, world, mailbox):
    inv = invite(client, world, "Zed@Acme.test", role="viewer")
    assert (inv["email"], inv["status"], inv["sentCount"]) == ("zed@acme.test", "pending", 1)
    assert mailbox.to("zed@acme.test") == []  # sent by a job, after commit
    deliver_mail(app)
    (msg,) = mailbox.to("zed@acme.test")
    assert msg["Subject"] == "You are invited to Acme"
    assert msg["X-Bunbase-Kind"] == "invitation"
    token = mailbox.last_token("zed@acme.test")
    assert token.startswith("bbi_")
    # the token alone is not enough: another signed-in user is refused
    wrong = client.post(f"{ORGS}/invitations/accept", json={"token": token},
                        headers=world["erin"].headers)
    assert_failure(wrong, 403, "forbidden")
    assert_failure(client.post(f"{ORGS}/invitations/accept", json={"token": token},
                               headers={"X-Tenant-Id": world.acme_id}), 401, "unauthenticated")
    zed_id = add_user(app, world.acme_id, "zed@acme.test", "Zed")
    zed = {"Authorization": f"Bearer {login(app, world.acme_id, 'zed@acme.test')}",
           "X-Tenant-Id": world.acme_id}
    joined = assert_success(client.post(f"{ORGS}/invitations/accept", json={"token": token},
                                        headers=zed))["data"]
    assert (joined["userId"], joined["role"]) == (zed_id, "viewer")
    assert members(client, world)[zed_id] == "viewer"
    assert_success(client.get(f"{ORGS}/{world.org_id}", headers=zed))
    # used once
    again = client.post(f"{ORGS}/invitations/accept", json={"token": token}, headers=zed)
    assert_failure(again, 409, "conflict")
    listed = assert_success(client.get(f"{ORGS}/{world.org_id}/invitations",
                                       headers=world["alice"].headers))["data"]["items"]
    assert {i["invitationId"]: i["status"] for i in listed}[inv["invitationId"]] == "accepted"


def test_invitation_decline_needs_only_the_token(app, client, world, mailbox):
    invite(client, world, "yan@acme.test")
    deliver_mail(app)
    token = mailbox.last_token("yan@acme.test")
    resp = client.post(f"{ORGS}/invitations/decline", json={"token": token},
                       headers={"X-Tenant-Id": world.acme_id})
    assert_success(resp)
    assert_failure(client.post(f"{ORGS}/invitations/decline", json={"token": token},
                               headers={"X-Tenant-Id": world.acme_id}), 409, "conflict")
    (inv,) = rows(app, Invitation, Invitation.email == "yan@acme.test")
    assert inv.status == "declined" and inv.responded_at is not None


def test_revoked_invitation_cannot_be_accepted(app, client, world, mailbox):
    inv = invite(client, world, "xia@acme.test")
    deliver_mail(app)
    token = mailbox.last_token("xia@acme.test")
    url = f"{ORGS}/{world.org_id}/invitations/{inv['invitationId']}/revoke"
    assert_failure(client.post(url, headers=world["bob"].headers), 403, "forbidden")
    assert assert_success(client.post(url, headers=world["alice"].headers))["data"][
        "status"] == "revoked"
    add_user(app, world.acme_id, "xia@acme.test", "Xia")
    xia = {"Authorization": f"Bearer {login(app, world.acme_id, 'xia@acme.test')}",
           "X-Tenant-Id": world.acme_id}
    resp = client.post(f"{ORGS}/invitations/accept", json={"token": token}, headers=xia)
    assert_failure(resp, 409, "conflict")


def test_resend_issues_a_new_token_and_the_old_one_stops_working(app, client, world, mailbox):
    inv = invite(client, world, "wes@acme.test")
    deliver_mail(app)
    old = mailbox.last_token("wes@acme.test")
    url = f"{ORGS}/{world.org_id}/invitations/{inv['invitationId']}/resend"
    data = assert_success(client.post(url, headers=world["alice"].headers))["data"]
    assert data["sentCount"] == 2
    deliver_mail(app)
    assert len(mailbox.to("wes@acme.test")) == 2
    new = mailbox.last_token("wes@acme.test")
    assert new != old
    wes_id = add_user(app, world.acme_id, "wes@acme.test", "Wes")
    wes = {"Authorization": f"Bearer {login(app, world.acme_id, 'wes@acme.test')}",
           "X-Tenant-Id": world.acme_id}
    stale = client.post(f"{ORGS}/invitations/accept", json={"token": old}, headers=wes)
    assert_failure(stale, 404, "not_found")
    assert_success(client.post(f"{ORGS}/invitations/accept", json={"token": new}, headers=wes))
    assert members(client, world)[wes_id] == "member"


def test_expired_invitation_is_a_conflict(app, client, world, mailbox):
    inv = invite(client, world, "val@acme.test")
    deliver_mail(app)
    token = mailbox.last_token("val@acme.test")
    add_user(app, world.acme_id, "val@acme.test", "Val")
    clock.advance("8d")
    # sessions last 7 days: sign in again after the jump
    val = {"Authorization": f"Bearer {login(app, world.acme_id, 'val@acme.test')}",
           "X-Tenant-Id": world.acme_id}
    resp = client.post(f"{ORGS}/invitations/accept", json={"token": token}, headers=val)
    body = assert_failure(resp, 409, "conflict")
    assert "expired" in body["error"]["message"]
    alice = {"Authorization": f"Bearer {login(app, world.acme_id, 'alice@acme.test')}",
             "X-Tenant-Id": world.acme_id}
    listed = assert_success(client.get(f"{ORGS}/{world.org_id}/invitations", headers=alice))
    status = {i["invitationId"]: i["status"] for i in listed["data"]["items"]}
    assert status[inv["invitationId"]] == "expired"


def test_member_cannot_invite_and_admin_cannot_invite_an_owner(app, client, world):
    resp = client.post(f"{ORGS}/{world.org_id}/invitations", json={"email": "q@acme.test"},
                       headers=world["bob"].headers)
    body = assert_failure(resp, 403, "forbidden")
    assert body["error"]["details"] == {
        "permission": "invitation:create",
        "reason": "role 'member' does not grant 'invitation:create'"}
    client.patch(f"{ORGS}/{world.org_id}/members/{world['bob'].user_id}", json={"role": "admin"},
                 headers=world["alice"].headers)
    resp = client.post(f"{ORGS}/{world.org_id}/invitations",
                       json={"email": "q@acme.test", "role": "owner"}, headers=world["bob"].headers)
    assert_failure(resp, 403, "forbidden")


# -- decision log ------------------------------------------------------------------------
def test_decisions_are_logged_with_the_role_in_the_reason(app, client, world):
    carol, bob = world["carol"], world["bob"]
    denied = client.post("/v1/support/tickets", json={
        "orgId": world.org_id, "subject": "Viewer try", "body": "viewers cannot write"},
        headers=carol.headers)
    assert_failure(denied, 403, "forbidden")
    allowed = client.post("/v1/support/tickets", json={
        "orgId": world.org_id, "subject": "Member try", "body": "members can write"},
        headers=bob.headers)
    assert_success(allowed)
    settle(app)
    found = rows(app, DecisionRecord, DecisionRecord.permission == "ticket:create",
                 DecisionRecord.actor_id.in_([carol.user_id, bob.user_id]))
    by_actor = {d.actor_id: d for d in found}
    assert len(found) == 2
    no, yes = by_actor[carol.user_id], by_actor[bob.user_id]
    assert (no.allowed, no.reason) == (False, "role 'viewer' does not grant 'ticket:create'")
    assert (yes.allowed, yes.reason) == (True, "role 'member' grants 'ticket:create'")
    for d, resp in ((no, denied), (yes, allowed)):
        assert d.tenant_id == world.acme_id
        assert d.org_id == world.org_id
        assert d.action_name == "support.ticket.create"
        assert d.trace_id == resp.get_json()["trace_id"]
        assert d.run_id == resp.headers["X-Run-Id"]


# -- custom roles ------------------------------------------------------------------------
def test_custom_roles_create_update_and_system_roles_are_locked(app, client, world):
    with service_ctx(app, world.acme_id) as ctx:
        role = rbac.create_role(ctx, key="support-agent", name="Support agent", description="",
                                permissions=["ticket:read", "ticket:create", "org:read"])
        with pytest.raises(Conflict):
            rbac.create_role(ctx, key="support-agent", name="Again", description="",
                             permissions=[])
        rbac.update_role(ctx, role, name="Agent", description=None,
                         permissions=["ticket:*", "org:read"])
        owner = rbac.role_by_key(db.session, "owner")
        with pytest.raises(Conflict, match="locked"):
            rbac.update_role(ctx, owner, name="Boss", description=None, permissions=None)
        with pytest.raises(Conflict, match="locked"):
            rbac.delete_role(ctx, owner)
    (stored,) = rows(app, Role, Role.key == "support-agent")
    assert stored.name == "Agent" and {g.permission for g in stored.grants} == {
        "ticket:*", "org:read"}
    # the custom role works through the API: carol becomes an agent and may now write
    client.patch(f"{ORGS}/{world.org_id}/members/{world['carol'].user_id}",
                 json={"role": "support-agent"}, headers=world["alice"].headers)
    resp = client.post("/v1/support/tickets", json={
        "orgId": world.org_id, "subject": "Agent ticket", "body": "agents can write"},
        headers=world["carol"].headers)
    assert_success(resp)
    # a role in use cannot be deleted
    with pytest.raises(Conflict, match="member"), service_ctx(app, world.acme_id) as ctx:
        role = ctx.db.scalar(select(Role).where(Role.key == "support-agent"))
        rbac.delete_role(ctx, role)
