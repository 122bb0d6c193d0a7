"""The audit module: the per-tenant hash chain (seal, verify, tamper, concurrency, CLI),
`audit.event.list` and the Studio explorer."""

from __future__ import annotations

import itertools
import re
import threading

from flask import Flask
from sqlalchemy import select, text

from bunbase import audit_chain, identity
from bunbase.db import db
from bunbase.models import AuditEntry, User
from bunbase.tenancy import tenant_scope, unscoped
from tests.fixtures import Tenant, make_tenant
from tests.helpers import assert_failure, assert_success


# -- helpers -------------------------------------------------------------------------
def tickets(client, tenant: Tenant, n: int) -> list[str]:
    ids = []
    for i in range(n):
        resp = client.post("/v1/support/tickets", json=tenant.ticket(subject=f"Ticket {i}"),
                           headers=tenant.headers())
        ids.append(assert_success(resp)["data"]["ticketId"])
    return ids


def chain(app: Flask, tenant_id: str) -> list[AuditEntry]:
    with app.app_context(), unscoped():
        rows = list(db.session.scalars(
            select(AuditEntry).where(AuditEntry.tenant_id == tenant_id).order_by(AuditEntry.id)
        ))
        db.session.expunge_all()
        db.session.remove()
    return rows


def seal(app: Flask) -> dict[str, int]:
    with app.app_context():
        return audit_chain.seal_all(db.engine)


def verify(app: Flask, tenant_id: str) -> audit_chain.Verification:
    with app.app_context():
        return audit_chain.verify(db.engine, tenant_id)


def sql(app: Flask, statement: str, **params: object) -> None:
    with app.app_context():
        db.session.execute(text(statement), params)
        db.session.commit()
        db.session.remove()


def member(app: Flask, tenant: Tenant, email: str, role: str | None) -> dict[str, str]:
    """A user of the tenant with `role` in the tenant's org (None: in no org); returns
    their API headers."""
    from modules.rbac import services as rbac

    with app.app_context(), tenant_scope(tenant.id):
        user = User(email=email, name=email, password_hash=identity.hash_password("pw-123456"))
        db.session.add(user)
        db.session.flush()
        if role:
            rbac.bind(db.session, tenant.id, tenant.org_id, user.id,
                      rbac.role_by_key(db.session, role))
        db.session.commit()
        db.session.remove()
    resp = app.test_client().post("/v1/auth/login", json={"email": email, "password": "pw-123456"},
                                  headers={"X-Tenant-Id": tenant.id})
    token = assert_success(resp)["data"]["token"]
    return {"Authorization": f"Bearer {token}", "X-Tenant-Id": tenant.id}


# -- the chain -----------------------------------------------------------------------
def test_entries_are_written_unsealed_and_sealing_numbers_each_tenant_from_one(app, client):
    a, b = make_tenant(app, "alpha"), make_tenant(app, "bravo")
    tickets(client, a, 3)
    tickets(client, b, 2)
    assert all(e.seq is None and e.hash is None for e in chain(app, a.id))

    done = seal(app)
    assert done[a.id] == len(chain(app, a.id)) and done[b.id] == len(chain(app, b.id))
    for t in (a, b):
        entries = chain(app, t.id)
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))  # in id order
        assert entries[0].prev_hash == audit_chain.GENESIS
        for prev, cur in itertools.pairwise(entries):
            assert cur.prev_hash == prev.hash
        assert all(re.fullmatch(r"[0-9a-f]{64}", e.hash or "") for e in entries)
    assert seal(app) == {}  # nothing left to do

    # later entries continue the chain
    tickets(client, a, 1)
    seal(app)
    seqs = [e.seq for e in chain(app, a.id)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert verify(app, a.id).ok and verify(app, b.id).ok


def test_verify_reports_the_first_tampered_seq(app, client):
    t = make_tenant(app, "alpha")
    tickets(client, t, 4)
    seal(app)
    result = verify(app, t.id)
    assert result.ok and result.checked == len(chain(app, t.id)) and result.first_broken_seq is None

    victim = chain(app, t.id)[2]
    sql(app, "UPDATE audit_entries SET action = 'support.ticket.delete' WHERE id = :id",
        id=victim.id)
    result = verify(app, t.id)
    assert not result.ok
    assert result.first_broken_seq == victim.seq
    assert result.entry_id == victim.id
    assert "hash" in (result.reason or "")


def test_a_changed_diff_or_timestamp_is_detected_too(app, client):
    t = make_tenant(app, "alpha")
    tickets(client, t, 2)
    seal(app)
    last = chain(app, t.id)[-1]
    sql(app, "UPDATE audit_entries SET created_at = :at WHERE id = :id",
        at=last.created_at.replace(year=2000), id=last.id)
    assert verify(app, t.id).first_broken_seq == last.seq


def test_a_deleted_entry_is_detected(app, client):
    t = make_tenant(app, "alpha")
    tickets(client, t, 4)
    seal(app)
    entries = chain(app, t.id)
    sql(app, "DELETE FROM audit_entries WHERE id = :id", id=entries[1].id)
    result = verify(app, t.id)
    assert not result.ok and result.first_broken_seq == entries[1].seq
    assert "missing" in (result.reason or "")


def test_a_deleted_last_entry_is_detected_by_the_anchor(app, client):
    t = make_tenant(app, "alpha")
    tickets(client, t, 2)
    seal(app)
    entries = chain(app, t.id)
    sql(app, "DELETE FROM audit_entries WHERE id = :id", id=entries[-1].id)
    result = verify(app, t.id)
    assert not result.ok and result.first_broken_seq == entries[-1].seq


def test_a_rehashed_chain_with_a_reordered_entry_is_detected(app, client):
    """Swapping two entries' seqs breaks the links even though each hash is well formed."""
    t = make_tenant(app, "alpha")
    tickets(client, t, 3)
    seal(app)
    e = chain(app, t.id)
    sql(app, "UPDATE audit_entries SET seq = -1 WHERE id = :id", id=e[1].id)
    sql(app, "UPDATE audit_entries SET seq = :s WHERE id = :id", s=e[1].seq, id=e[2].id)
    sql(app, "UPDATE audit_entries SET seq = :s WHERE id = :id", s=e[2].seq, id=e[1].id)
    assert verify(app, t.id).first_broken_seq == e[1].seq


def test_concurrent_sealers_do_not_fork_the_chain(app, client):
    t = make_tenant(app, "alpha")
    tickets(client, t, 12)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def sealer() -> None:
        try:
            with app.app_context():
                barrier.wait()
                for _ in range(3):
                    audit_chain.seal_tenant(db.engine, t.id, batch=4)
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sealer) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert errors == []
    entries = chain(app, t.id)
    assert sorted(e.seq for e in entries) == list(range(1, len(entries) + 1))
    assert len({e.prev_hash for e in entries}) == len(entries)  # one successor per entry
    assert verify(app, t.id).ok


def test_the_scheduler_tick_seals(app, client):
    from bunbase.scheduler import tick

    t = make_tenant(app, "alpha")
    tickets(client, t, 2)
    with app.app_context():
        tick(float("inf"))
        db.session.remove()
    assert all(e.seq for e in chain(app, t.id))


# -- CLI -----------------------------------------------------------------------------
def test_cli_seals_and_verifies_and_exits_1_on_tampering(app, client):
    a, b = make_tenant(app, "alpha"), make_tenant(app, "bravo")
    tickets(client, a, 2)
    tickets(client, b, 1)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["bunbase", "audit", "seal"])
    assert result.exit_code == 0, result.output
    assert "sealed" in result.output

    result = runner.invoke(args=["bunbase", "audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "alpha: chain OK" in result.output and "bravo: chain OK" in result.output

    victim = chain(app, a.id)[1]
    sql(app, "UPDATE audit_entries SET actor_id = 'usr_someone_else' WHERE id = :id",
        id=victim.id)
    result = runner.invoke(args=["bunbase", "audit", "verify", "--tenant", "alpha"])
    assert result.exit_code == 1, result.output
    assert f"BROKEN at seq {victim.seq}" in result.output
    assert "TAMPERED" in result.output
    # the other tenant's chain is untouched
    result = runner.invoke(args=["bunbase", "audit", "verify", "--tenant", "bravo"])
    assert result.exit_code == 0, result.output

    result = runner.invoke(args=["bunbase", "audit", "verify", "--tenant", "nope"])
    assert result.exit_code != 0 and "no workspace" in result.output


# -- audit.event.list ----------------------------------------------------------------
def test_event_list_filters_and_pages_and_is_sealed(app, client):
    t = make_tenant(app, "alpha")
    ids = tickets(client, t, 5)
    url = "/v1/audit/events"
    body = assert_success(client.get(url, query_string={"orgId": t.org_id, "limit": 2},
                                     headers=t.headers()))["data"]
    assert body["total"] >= 6  # org create + 5 tickets
    assert len(body["items"]) == 2 and body["nextCursor"]  # opaque: the next page starts after the last item
    assert all(i["seq"] and i["hash"] for i in body["items"])  # sealed before the read
    assert all(i["orgId"] == t.org_id for i in body["items"])

    seen = []
    cursor = None
    while True:
        q = {"orgId": t.org_id, "action": "support.ticket.create", "limit": 2}
        if cursor:
            q["cursor"] = cursor
        page = assert_success(client.get(url, query_string=q, headers=t.headers()))["data"]
        assert page["total"] == 5
        seen += [i["targetId"] for i in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))

    one = assert_success(client.get(url, query_string={"orgId": t.org_id, "target": ids[2]},
                                    headers=t.headers()))["data"]
    assert [i["targetId"] for i in one["items"]] == [ids[2]]
    assert one["items"][0]["diff"]["after"]["subject"] == "Ticket 2"
    typed = assert_success(client.get(url, query_string={"orgId": t.org_id,
                                                          "target": f"ticket:{ids[0]}"},
                                      headers=t.headers()))["data"]
    assert typed["total"] == 1

    by_actor = assert_success(client.get(url, query_string={"orgId": t.org_id, "actor": t.email},
                                         headers=t.headers()))["data"]
    assert by_actor["total"] == body["total"]
    nobody = assert_success(client.get(url, query_string={"orgId": t.org_id,
                                                           "actor": "x@nowhere.test"},
                                       headers=t.headers()))["data"]
    assert nobody["total"] == 0

    future = assert_success(client.get(url, query_string={"orgId": t.org_id,
                                                          "from": "2999-01-01T00:00:00Z"},
                                       headers=t.headers()))["data"]
    assert future["total"] == 0
    past = assert_success(client.get(url, query_string={"orgId": t.org_id,
                                                        "to": "2999-01-01T00:00:00Z"},
                                     headers=t.headers()))["data"]
    assert past["total"] == body["total"]


def test_event_list_is_404_outside_the_org_and_403_without_audit_read(app, client):
    a, b = make_tenant(app, "alpha"), make_tenant(app, "bravo")
    tickets(client, a, 1)
    # another tenant's org, and an org id that does not exist
    assert_failure(client.get("/v1/audit/events", query_string={"orgId": b.org_id},
                              headers=a.headers()), 404, "not_found")
    # a member of the org whose role lacks audit:read
    bob = member(app, a, "bob@alpha.test", "member")
    body = assert_failure(client.get("/v1/audit/events", query_string={"orgId": a.org_id},
                                     headers=bob), 403, "forbidden")
    assert body["error"]["details"]["permission"] == "audit:read"
    # a user of the tenant who is in no org
    erin = member(app, a, "erin@alpha.test", None)
    assert_failure(client.get("/v1/audit/events", query_string={"orgId": a.org_id},
                              headers=erin), 404, "not_found")
    # an admin of the org may read
    admin = member(app, a, "ann@alpha.test", "admin")
    assert_success(client.get("/v1/audit/events", query_string={"orgId": a.org_id},
                              headers=admin))


def test_chain_verify_is_for_tenant_admins_only(app, client):
    t = make_tenant(app, "alpha")
    tickets(client, t, 2)
    ok = assert_success(client.post("/v1/audit/chain/verify", headers=t.headers()))["data"]
    assert ok["ok"] is True and ok["firstBrokenSeq"] is None
    bob = member(app, t, "bob@alpha.test", "owner")  # even an org owner is not a tenant admin
    assert_failure(client.post("/v1/audit/chain/verify", headers=bob), 403, "forbidden")

    seal(app)
    victim = chain(app, t.id)[0]
    sql(app, "UPDATE audit_entries SET action = 'x' WHERE id = :id", id=victim.id)
    bad = assert_success(client.post("/v1/audit/chain/verify", headers=t.headers()))["data"]
    assert bad["ok"] is False and bad["firstBrokenSeq"] == victim.seq


# -- Studio --------------------------------------------------------------------------
def studio_login(client, email: str, password: str) -> None:
    page = client.get("/studio/login")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True))
    assert token, page.get_data(as_text=True)
    resp = client.post("/studio/login", data={"email": email, "password": password,
                                              "csrf_token": token.group(1)})
    assert resp.status_code == 302, resp.get_data(as_text=True)


def test_explorer_renders_with_the_chain_banner_and_the_entry_diff(app, client):
    t = make_tenant(app, "alpha")
    ids = tickets(client, t, 2)
    studio = app.test_client()
    studio_login(studio, t.email, t.password)

    page = studio.get("/studio/m/audit/events")
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html
    assert "Audit log" in html and 'id="chain-status"' in html and "Verify chain" in html
    assert f'data-target-id="{ids[0]}"' in html and "support.ticket.create" in html
    assert "unsealed" not in html  # sealed before the read
    assert all(e.seq for e in chain(app, t.id) if e.action != "studio.session.login")

    # filtered, as htmx asks for it: just the table
    part = studio.get("/studio/m/audit/events", query_string={"action": "orgs.org.create"},
                      headers={"HX-Request": "true", "HX-Target": "audit-results"})
    html = part.get_data(as_text=True)
    assert "<html" not in html and 'data-testid="audit-table"' in html
    assert "orgs.org.create" in html and f'data-target-id="{ids[0]}"' not in html
    empty = studio.get("/studio/m/audit/events", query_string={"actor": "nobody@x.test"})
    assert "No audit entries match these filters" in empty.get_data(as_text=True)

    entry = next(e for e in chain(app, t.id) if e.target_id == ids[0])
    detail = studio.get(f"/studio/m/audit/events/{entry.id}")
    html = detail.get_data(as_text=True)
    assert detail.status_code == 200, html
    assert 'data-testid="diff"' in html and 'data-change="added"' in html
    assert f"/studio/runtime/actions/{entry.run_id}" in html
    assert f"q={entry.trace_id}" in html
    assert "has_permission(ticket:create)" in html  # the entry's decision
    assert studio.get("/studio/m/audit/events/aud_nope").status_code == 404

    # "Verify chain" (htmx) swaps the banner
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True))
    assert token
    verified = studio.post("/studio/m/audit/chain/verify", headers={
        "HX-Request": "true", "HX-Target": "chain-status", "X-CSRFToken": token.group(1)})
    html = verified.get_data(as_text=True)
    assert verified.status_code == 200, html
    assert "Verified OK" in html and "<html" not in html

    sql(app, "UPDATE audit_entries SET action = 'x' WHERE id = :id", id=entry.id)
    broken = studio.post("/studio/m/audit/chain/verify", headers={
        "HX-Request": "true", "HX-Target": "chain-status", "X-CSRFToken": token.group(1)})
    assert f"Broken at seq <strong class=\"mono\">{entry.seq}</strong>" in broken.get_data(
        as_text=True)


def test_why_panel_explains_allow_and_deny(app, client):
    t = make_tenant(app, "alpha")
    bob = member(app, t, "bob@alpha.test", "viewer")
    client.post("/v1/support/tickets", json=t.ticket(), headers=bob)  # denied, and logged
    studio = app.test_client()
    studio_login(studio, t.email, t.password)

    denied = studio.get("/studio/m/audit/why", query_string={
        "email": "bob@alpha.test", "org": t.org_id, "permission": "ticket:create"})
    html = denied.get_data(as_text=True)
    assert denied.status_code == 200, html
    assert "denied" in html and "role &#39;viewer&#39; does not grant" in html
    assert "support.ticket.create" in html  # the logged decision, with its action
    assert "Roles that grant it" in html and ">member<" in html

    allowed = studio.get("/studio/m/audit/why", query_string={
        "email": "bob@alpha.test", "org": t.org_id, "permission": "ticket:read"},
        headers={"HX-Request": "true", "HX-Target": "why-results"})
    html = allowed.get_data(as_text=True)
    assert "<html" not in html and "allowed" in html and "*:read" in html

    stranger = studio.get("/studio/m/audit/why", query_string={
        "email": "nobody@alpha.test", "org": t.org_id, "permission": "ticket:read"})
    assert "No user" in stranger.get_data(as_text=True)


def test_diff_rows_mark_changed_added_removed_and_same_keys():
    from modules.audit.services import diff_rows

    rows = diff_rows({"before": {"name": "A", "slug": "a", "gone": 1},
                      "after": {"name": "B", "slug": "a", "new": [1, 2]}})
    assert [(r.key, r.change) for r in rows] == [
        ("gone", "removed"), ("name", "changed"), ("new", "added"), ("slug", "same")]
    assert diff_rows(None) == []
    assert [(r.key, r.change) for r in diff_rows({"sent_count": 2})] == [("sent_count", "added")]
