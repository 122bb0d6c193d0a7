"""Idempotency keys: replay, scope (tenant + actor + action), retention, concurrency."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from bunbase.clock import clock
from bunbase.models import IdempotencyRecord
from modules.support.models import Ticket
from tests.helpers import assert_failure, assert_success, count

TICKETS = "/v1/support/tickets"


def test_same_key_same_body_replays_without_running_again(app, client, tenant_a):
    headers = tenant_a.headers(**{"Idempotency-Key": "k-1"})
    first = client.post(TICKETS, json=tenant_a.ticket(), headers=headers)
    assert_success(first)
    assert "Idempotent-Replayed" not in first.headers
    second = client.post(TICKETS, json=tenant_a.ticket(), headers=headers)
    assert second.status_code == first.status_code
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json() == first.get_json()  # same ticketId, run_id and trace_id
    assert count(app, Ticket) == 1


def test_replay_also_works_on_the_generic_route(app, client, tenant_a):
    headers = tenant_a.headers(**{"Idempotency-Key": "k-generic"})
    url = "/v1/actions/support.ticket.create/run"
    first = client.post(url, json=tenant_a.ticket(), headers=headers)
    second = client.post(url, json=tenant_a.ticket(), headers=headers)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json()["data"] == first.get_json()["data"]
    assert count(app, Ticket) == 1


def test_without_a_key_every_request_runs(app, client, tenant_a):
    for _ in range(2):
        assert client.post(TICKETS, json=tenant_a.ticket(), headers=tenant_a.headers()).status_code == 200
    assert count(app, Ticket) == 2
    assert count(app, IdempotencyRecord) == 0


def test_key_is_scoped_by_tenant(app, client, tenant_a, tenant_b):
    a = client.post(TICKETS, json=tenant_a.ticket(),
                    headers=tenant_a.headers(**{"Idempotency-Key": "shared"}))
    b = client.post(TICKETS, json=tenant_b.ticket(),
                    headers=tenant_b.headers(**{"Idempotency-Key": "shared"}))
    assert_success(a)
    assert_success(b)
    assert "Idempotent-Replayed" not in b.headers
    assert a.get_json()["data"]["ticketId"] != b.get_json()["data"]["ticketId"]
    assert count(app, Ticket, Ticket.tenant_id == tenant_a.id) == 1
    assert count(app, Ticket, Ticket.tenant_id == tenant_b.id) == 1


def test_key_is_scoped_by_action(app, client, tenant_a):
    headers = tenant_a.headers(**{"Idempotency-Key": "same-key"})
    created = client.post(TICKETS, json=tenant_a.ticket(), headers=headers)
    assert_success(created)
    # a different body on a different action is not a mismatch: it is another scope
    other = client.post("/v1/actions/testkit.job.enqueue/run", json={"note": "n"}, headers=headers)
    body = assert_success(other)
    assert "Idempotent-Replayed" not in other.headers
    assert body["data"] == {"ok": True}
    assert count(app, IdempotencyRecord) == 2


def test_key_is_scoped_by_actor(app, client, tenant_a):
    from sqlalchemy import select

    from bunbase import identity
    from bunbase.db import db
    from bunbase.models import User
    from bunbase.tenancy import tenant_scope

    with app.app_context(), tenant_scope(tenant_a.id):
        pw_hash = identity.hash_password("pw-2")
        db.session.add(User(email="second@alpha.test", password_hash=pw_hash))
        db.session.commit()
        db.session.remove()
    login = client.post("/v1/auth/login", json={"email": "second@alpha.test", "password": "pw-2"},
                        headers={"X-Tenant-Id": tenant_a.slug})
    token = assert_success(login)["data"]["token"]
    first = client.post(TICKETS, json=tenant_a.ticket(), headers=tenant_a.headers(**{"Idempotency-Key": "k"}))
    from modules.rbac import services as rbac

    with app.app_context(), tenant_scope(tenant_a.id):
        second_id = db.session.scalar(select(User.id).where(User.email == "second@alpha.test"))
        rbac.bind(db.session, tenant_a.id, tenant_a.org_id, second_id,
                  rbac.role_by_key(db.session, "member"))
        db.session.commit()
        db.session.remove()
    second = client.post(TICKETS, json=tenant_a.ticket(), headers={
        "Authorization": f"Bearer {token}", "X-Tenant-Id": tenant_a.id, "Idempotency-Key": "k"})
    assert_success(first)
    assert_success(second)
    assert "Idempotent-Replayed" not in second.headers
    assert count(app, Ticket) == 2


def test_keys_are_kept_at_least_24_hours(app, client, tenant_a):
    headers = tenant_a.headers(**{"Idempotency-Key": "k-ttl"})
    first = client.post(TICKETS, json=tenant_a.ticket(), headers=headers)
    clock.advance("23h")
    again = client.post(TICKETS, json=tenant_a.ticket(), headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert count(app, Ticket) == 1


def test_expired_key_runs_the_request_again(app, client, tenant_a):
    headers = tenant_a.headers(**{"Idempotency-Key": "k-expired"})
    first = client.post(TICKETS, json=tenant_a.ticket(), headers=headers)
    clock.advance("25h")
    again = client.post(TICKETS, json=tenant_a.ticket(), headers=headers)
    assert_success(again)
    assert "Idempotent-Replayed" not in again.headers
    assert again.get_json()["data"]["ticketId"] != first.get_json()["data"]["ticketId"]
    assert count(app, Ticket) == 2
    assert count(app, IdempotencyRecord) == 1


def test_failed_request_releases_its_key(app, client, tenant_a):
    headers = tenant_a.headers(**{"Idempotency-Key": "k-fail"})
    url = "/v1/actions/testkit.fail.after_write/run"
    for _ in range(2):  # the retry runs again (no replay of the failure, no 409)
        resp = client.post(url, json={"mode": "typed"}, headers=headers)
        assert_failure(resp, 409, "conflict")
        assert "Idempotent-Replayed" not in resp.headers
    assert count(app, IdempotencyRecord) == 0


def test_validation_failure_does_not_claim_the_key(app, client, tenant_a):
    headers = tenant_a.headers(**{"Idempotency-Key": "k-invalid"})
    assert_failure(client.post(TICKETS, json=tenant_a.ticket(subject="x"), headers=headers), 400,
                   "validation_error")
    assert_success(client.post(TICKETS, json=tenant_a.ticket(), headers=headers))
    assert count(app, Ticket) == 1


def test_50_concurrent_identical_requests_create_one_ticket(app, tenant_a):
    n = 50
    headers = tenant_a.headers(**{"Idempotency-Key": "burst-1"})
    barrier = threading.Barrier(n)

    def call(_i: int):
        c = app.test_client()
        barrier.wait()
        return c.post(TICKETS, json=tenant_a.ticket(), headers=headers)

    with ThreadPoolExecutor(max_workers=n) as pool:
        responses = list(pool.map(call, range(n)))

    assert count(app, Ticket) == 1
    ok = [r for r in responses if r.status_code == 200]
    conflicts = [r for r in responses if r.status_code == 409]
    assert len(ok) + len(conflicts) == n, sorted({r.status_code for r in responses})
    assert ok, "at least the first request succeeds"
    assert len({r.get_json()["data"]["ticketId"] for r in ok}) == 1
    assert sum(1 for r in ok if "Idempotent-Replayed" not in r.headers) == 1
    for r in conflicts:
        assert_failure(r, 409, "idempotency_conflict")
    assert count(app, IdempotencyRecord) == 1


def test_a_secret_in_a_replayed_response_is_stored_encrypted(app, client, tenant_a):
    """An API key's secret comes back on replay, but the table never holds it in clear."""
    from bunbase.db import db
    from bunbase.tenancy import unscoped

    body = {"orgId": tenant_a.org_id, "name": "ci", "scopes": ["ticket:read"]}
    headers = tenant_a.headers(**{"Idempotency-Key": "key-create-1"})
    first = assert_success(client.post("/v1/api-keys", json=body, headers=headers))
    again = client.post("/v1/api-keys", json=body, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    secret = first["data"]["secret"]
    assert again.status_code == 200 and again.get_json()["data"]["secret"] == secret
    with app.app_context(), unscoped():
        (record,) = db.session.query(IdempotencyRecord).filter_by(key="key-create-1").all()
        stored = record.response_body
        db.session.remove()
    assert secret not in str(stored)
    assert set(stored["data"]["secret"]) == {"$sealed"}
    # the key itself works, and was created once
    listed = assert_success(client.get(f"/v1/api-keys?orgId={tenant_a.org_id}", headers=tenant_a.headers()))
    assert [k["name"] for k in listed["data"]["items"]].count("ci") == 1


# -- a claim whose process died (issue 11, finding 10) -------------------------------------------
_HANG = """
import sys
from app import create_app
from bunbase.config import Settings

settings = Settings(DATABASE_URL=sys.argv[1], REDIS_URL=sys.argv[2], SECRET_KEY="test-secret",
                    BUNBASE_INSTANCE_DIR=sys.argv[3], BUNBASE_EXTRA_MODULES="tests.fixture_modules",
                    BUNBASE_LOG_LEVEL="CRITICAL")
app = create_app(settings)
app.test_client().post("/v1/actions/testkit.slow/run", json={"seconds": 3},
                       headers={"Authorization": "Bearer " + sys.argv[4], "X-Tenant-Id": sys.argv[5],
                                "Idempotency-Key": "dies-mid-request"})
"""


def _claims(app, key: str) -> list[IdempotencyRecord]:
    from tests.helpers import rows

    return rows(app, IdempotencyRecord, IdempotencyRecord.key == key)


def test_a_key_whose_process_was_killed_mid_request_is_free_at_once(app, client, tenant_a, tmp_path):
    """The probe: a web worker killed mid-request left its key answering 409 for minutes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from bunbase import process, redis_conn
    from bunbase.config import ROOT

    proc = subprocess.Popen(
        [sys.executable, "-c", _HANG, app.config["SQLALCHEMY_DATABASE_URI"], redis_conn.url(),
         str(tmp_path), tenant_a.token, tenant_a.id],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 30
        while not _claims(app, "dies-mid-request"):
            assert proc.poll() is None and time.monotonic() < deadline, "the request never claimed its key"
            time.sleep(0.05)
        (claim,) = _claims(app, "dies-mid-request")
        assert claim.status == "in_progress" and claim.owner.split(":")[1] == str(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    retry = client.post("/v1/actions/testkit.slow/run", json={"seconds": 3},
                        headers=tenant_a.headers(**{"Idempotency-Key": "dies-mid-request"}))
    assert_success(retry)  # run again at once, not 409 for minutes
    assert "Idempotent-Replayed" not in retry.headers
    (claim,) = _claims(app, "dies-mid-request")
    assert claim.status == "completed" and claim.owner == process.identity()


def _stuck_claim(app, tenant_id: str, key: str, owner: str) -> None:
    from bunbase.db import db
    from bunbase.idempotency import request_hash
    from bunbase.tenancy import tenant_scope

    body = {"seconds": 0}
    with app.app_context(), tenant_scope(tenant_id):
        actor = db.session.execute(
            db.text("SELECT user_id FROM auth_sessions ORDER BY created_at DESC LIMIT 1")).scalar()
        db.session.add(IdempotencyRecord(
            tenant_id=tenant_id, actor_id=actor, action_name="testkit.slow", key=key,
            request_hash=request_hash(body), owner=owner, created_at=clock.now(),
            expires_at=clock.now() + timedelta(hours=24)))
        db.session.commit()
        db.session.remove()


def _run(client, tenant, key: str):
    return client.post("/v1/actions/testkit.slow/run", json={"seconds": 0},
                       headers=tenant.headers(**{"Idempotency-Key": key}))


def test_a_claim_of_a_dead_local_process_is_taken_over_and_a_live_one_is_not(app, client, tenant_a):
    import os
    import subprocess
    import sys

    from bunbase import process

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead_owner = f"{process.HOST}:{gone.pid}:{process._start_of(gone.pid) or '1'}"
    _stuck_claim(app, tenant_a.id, "dead-owner", dead_owner)
    assert_success(_run(client, tenant_a, "dead-owner"))
    # a live process of this host (this one) still holds its key
    _stuck_claim(app, tenant_a.id, "live-owner", process.identity())
    assert_failure(_run(client, tenant_a, "live-owner"), 409, "idempotency_conflict")
    clock.advance("10m")  # however long: the owner is known to be alive
    assert_failure(_run(client, tenant_a, "live-owner"), 409, "idempotency_conflict")
    # a pid that now names another process (started later) is not the owner
    _stuck_claim(app, tenant_a.id, "recycled", f"{process.HOST}:{os.getpid()}:1")
    assert_success(_run(client, tenant_a, "recycled"))


def test_a_claim_of_another_host_is_released_after_the_request_timeout(app, client, tenant_a):
    _stuck_claim(app, tenant_a.id, "elsewhere", "other-host.internal:4242:99")
    assert_failure(_run(client, tenant_a, "elsewhere"), 409, "idempotency_conflict")
    timeout = app.extensions["bunbase"].settings.request_timeout
    clock.advance(f"{timeout - 2}s")
    assert_failure(_run(client, tenant_a, "elsewhere"), 409, "idempotency_conflict")
    clock.advance("3s")
    assert_success(_run(client, tenant_a, "elsewhere"))
