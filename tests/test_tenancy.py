"""Tenant isolation over HTTP, and the ORM rule that tenant-owned queries need a tenant."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bunbase.db import db
from bunbase.models import ActionRun, AuditEntry
from bunbase.tenancy import TenantRequired, tenant_scope, unscoped
from bunbase.testing import settle
from modules.support.models import Ticket
from tests.helpers import assert_failure, assert_success

TICKETS = "/v1/support/tickets"


def _create(client, tenant, **over) -> str:
    resp = client.post(TICKETS, json=tenant.ticket(**over), headers=tenant.headers())
    return assert_success(resp)["data"]["ticketId"]


def test_other_tenants_run_id_looks_like_a_random_id(app, client, tenant_a, tenant_b):
    resp_b = client.post(TICKETS, json=tenant_b.ticket(), headers=tenant_b.headers())
    run_b = assert_success(resp_b)["run_id"]
    settle(app)
    # tenant B can see its own run
    assert client.get(f"/v1/runs/{run_b}", headers=tenant_b.headers()).status_code == 200

    foreign = client.get(f"/v1/runs/{run_b}", headers=tenant_a.headers())
    random = client.get("/v1/runs/run_01ZZZZZZZZZZZZZZZZZZZZZZZZ", headers=tenant_a.headers())
    body_foreign = assert_failure(foreign, 404, "not_found")
    body_random = assert_failure(random, 404, "not_found")
    body_foreign.pop("trace_id")
    body_random.pop("trace_id")
    assert body_foreign == body_random
    assert set(foreign.headers.keys()) == set(random.headers.keys())


def test_other_tenants_ticket_is_not_found(client, tenant_a, tenant_b):
    ticket_b = _create(client, tenant_b)
    assert client.get(f"{TICKETS}/{ticket_b}", headers=tenant_b.headers()).status_code == 200
    foreign = client.get(f"{TICKETS}/{ticket_b}", headers=tenant_a.headers())
    random = client.get(f"{TICKETS}/tkt_doesnotexist", headers=tenant_a.headers())
    body_foreign = assert_failure(foreign, 404, "not_found")
    body_random = assert_failure(random, 404, "not_found")
    assert body_foreign["error"] == body_random["error"]
    # the generic route is scoped the same way
    generic = client.post("/v1/actions/support.ticket.get/run", json={"ticketId": ticket_b},
                          headers=tenant_a.headers())
    assert_failure(generic, 404, "not_found")


def test_list_shows_only_own_tickets(client, tenant_a, tenant_b):
    mine = {_create(client, tenant_a, subject="alpha one"), _create(client, tenant_a)}
    theirs = _create(client, tenant_b, subject="bravo one")
    listed = assert_success(client.get(TICKETS, query_string={"orgId": tenant_a.org_id},
                                       headers=tenant_a.headers()))["data"]
    assert {t["ticketId"] for t in listed["items"]} == mine
    assert listed["total"] == 2
    listed_b = assert_success(client.get(TICKETS, query_string={"orgId": tenant_b.org_id},
                                         headers=tenant_b.headers()))["data"]
    assert [t["ticketId"] for t in listed_b["items"]] == [theirs]
    # asking for the other tenant's org is the same 404 as an org that does not exist
    foreign = client.get(TICKETS, query_string={"orgId": tenant_b.org_id},
                         headers=tenant_a.headers())
    random = client.get(TICKETS, query_string={"orgId": "org_01ZZZZZZZZZZZZZZZZZZZZZZZZ"},
                        headers=tenant_a.headers())
    assert assert_failure(foreign, 404, "not_found")["error"] == assert_failure(
        random, 404, "not_found")["error"]


def test_token_with_another_tenants_header_is_unauthenticated(client, tenant_a, tenant_b):
    headers = {"Authorization": f"Bearer {tenant_a.token}", "X-Tenant-Id": tenant_b.id}
    assert_failure(client.post(TICKETS, json=tenant_b.ticket(), headers=headers), 401,
                   "unauthenticated")
    assert_failure(client.get(TICKETS, query_string={"orgId": tenant_b.org_id}, headers=headers),
                   401, "unauthenticated")
    by_slug = {"Authorization": f"Bearer {tenant_a.token}", "X-Tenant-Id": tenant_b.slug}
    assert_failure(client.get("/v1/auth/me", headers=by_slug), 401, "unauthenticated")


def test_tenant_resolves_by_slug_as_well_as_id(client, tenant_a):
    me = client.get("/v1/auth/me", headers=tenant_a.headers(**{"X-Tenant-Id": tenant_a.slug}))
    data = assert_success(me)["data"]
    assert data["tenantId"] == tenant_a.id
    assert data["tenantSlug"] == tenant_a.slug


def test_audit_entries_are_per_tenant(app, client, tenant_a, tenant_b):
    _create(client, tenant_a)
    _create(client, tenant_b)
    with app.app_context(), tenant_scope(tenant_a.id):
        entries = db.session.scalars(select(AuditEntry)).all()
        assert {e.tenant_id for e in entries} == {tenant_a.id}
        db.session.remove()


# -- the ORM rule ----------------------------------------------------------------------
def test_query_without_tenant_raises_tenant_required(app):
    with app.app_context():
        try:
            for model in (Ticket, ActionRun, AuditEntry):
                with pytest.raises(TenantRequired):
                    db.session.scalars(select(model)).all()
        finally:
            db.session.rollback()
            db.session.remove()


def test_insert_without_tenant_raises_tenant_required(app):
    with app.app_context():
        db.session.add(Ticket(org_id="o", subject="s", body="b", priority="low"))
        try:
            with pytest.raises(TenantRequired):
                db.session.flush()
        finally:
            db.session.rollback()
            db.session.remove()


def test_insert_for_another_tenant_raises(app, tenant_a, tenant_b):
    with app.app_context(), tenant_scope(tenant_a.id):
        db.session.add(Ticket(tenant_id=tenant_b.id, org_id="o", subject="s", body="b",
                              priority="low"))
        try:
            with pytest.raises(TenantRequired):
                db.session.flush()
        finally:
            db.session.rollback()
            db.session.remove()


def test_scope_filters_queries_and_stamps_new_rows(app, client, tenant_a, tenant_b):
    ticket_b = _create(client, tenant_b)
    with app.app_context():
        with tenant_scope(tenant_a.id):
            assert db.session.get(Ticket, ticket_b) is None
            assert db.session.scalars(select(Ticket)).all() == []
            new = Ticket(org_id="o", subject="s", body="b", priority="low")
            db.session.add(new)
            db.session.commit()
            assert new.tenant_id == tenant_a.id
        db.session.expunge_all()
        with unscoped():
            assert {t.tenant_id for t in db.session.scalars(select(Ticket))} == {
                tenant_a.id, tenant_b.id}
        db.session.remove()
