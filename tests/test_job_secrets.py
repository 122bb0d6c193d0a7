"""Jobs tenants may touch, and what they see of them (issue 11, findings 3 and 4).

A tenant administrator enqueues or edits over the API only the jobs whose definition says
so (`@job(..., api=True)`); platform jobs (`bunbase.*`: mail, deliveries, steps) never.
Secrets never enter job payloads: mail links and codes are sealed (`bunbase.sealed`) and
the payload carries a reference. Payloads, results and errors are shown redacted, with no
server file paths.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from bunbase.config import ROOT
from bunbase.db import db
from bunbase.jobs import PermanentError, job
from bunbase.models import SealedValue
from bunbase.runtime_models import JobRun
from bunbase.testing import Worker, service_ctx
from tests.fixtures import Tenant
from tests.helpers import assert_failure, count, rows
from tests.test_users import PASSWORD, code_from, deliver_mail, signup

TOKEN = re.compile(r"bb[vri]_[A-Za-z0-9_-]{16,}")


@job("jobsec.internal", retries=0)
def internal(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"ok": True}


@job("jobsec.secretive", retries=0, api=True, redact=["apiKey"])
def secretive(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"token": "tok-in-result", "nested": {"password": "pw-in-result"}, "kept": payload.get("kept")}


@job("jobsec.missing_file", retries=0)
def missing_file(payload: dict[str, Any], ctx: Any) -> None:
    raise PermanentError(f"could not read {ROOT / 'instance' / 'exports' / 'x.csv'}")


@job("jobsec.crash", retries=0)
def crash(payload: dict[str, Any], ctx: Any) -> None:
    open(ROOT / "instance" / "no-such-dir" / "report.pdf")  # noqa: SIM115 - raises


def api(app: Flask, t: Tenant, method: str, path: str, body: Any = None) -> Any:
    return app.test_client().open(path, method=method, json=body, headers=t.headers())


def _mail_jobs(app: Flask) -> list[JobRun]:
    return rows(app, JobRun, JobRun.name == "bunbase.mail.send")


# -- finding 3: platform jobs are not the tenants' ---------------------------------------------
def test_a_tenant_admin_cannot_enqueue_platform_mail(app, tenant_a, mailbox):
    resp = api(
        app,
        tenant_a,
        "POST",
        "/v1/jobs",
        {
            "name": "bunbase.mail.send",
            "payload": {"to": "victim@example.com", "subject": "Reset your password", "text": "phish"},
        },
    )
    body = assert_failure(resp, 403, "forbidden")
    assert "cannot be enqueued over the API" in body["error"]["message"]
    assert count(app, JobRun) == 0
    deliver_mail(app)
    assert mailbox.to("victim@example.com") == []


def test_only_jobs_declared_api_are_enqueueable(app, tenant_a):
    assert_failure(api(app, tenant_a, "POST", "/v1/jobs", {"name": "jobsec.internal"}), 403, "forbidden")
    ok = api(app, tenant_a, "POST", "/v1/jobs", {"name": "jobsec.secretive", "payload": {"kept": 1}})
    assert ok.status_code == 200, ok.get_json()


def test_a_platform_job_can_never_be_declared_api():
    with pytest.raises(ValueError, match="never enqueueable over the API"):
        job("bunbase.tenant_mailer", api=True)(lambda payload, ctx: None)


def test_a_platform_jobs_payload_cannot_be_edited_on_replay(app, tenant_a, mailbox):
    signup(app.test_client(), tenant_a, "pat@example.com")
    deliver_mail(app)
    (mail_job,) = _mail_jobs(app)
    before = mail_job.payload
    edited = {**before, "to": "attacker@example.com"}
    resp = api(app, tenant_a, "POST", f"/v1/jobs/{mail_job.id}/replay", {"payload": edited})
    assert_failure(resp, 403, "forbidden")
    assert rows(app, JobRun, JobRun.id == mail_job.id)[0].payload == before
    got = api(app, tenant_a, "GET", f"/v1/jobs/{mail_job.id}").get_json()["data"]
    assert got["payloadEditable"] is False
    # replaying it as it is stays possible (a bounced mail sent again)
    assert api(app, tenant_a, "POST", f"/v1/jobs/{mail_job.id}/replay", {}).status_code == 200
    mailbox.clear()
    Worker(app).drain()
    assert [m["To"] for m in mailbox.messages] == ["pat@example.com"]


def test_studio_offers_no_payload_editor_for_a_locked_job(app, tenant_a):
    from tests.test_users import studio_client

    signup(app.test_client(), tenant_a, "rae@example.com")
    deliver_mail(app)
    (mail_job,) = _mail_jobs(app)
    page = studio_client(app, tenant_a).get(f"/studio/m/runtime/jobs/{mail_job.id}").get_data(as_text=True)
    assert 'data-testid="payload-locked"' in page and 'name="payload"' not in page


# -- finding 4: secrets never in payloads ------------------------------------------------------
def _assert_no_token_anywhere(app: Flask, t: Tenant, job_row: JobRun) -> None:
    assert not TOKEN.search(str(job_row.payload)), job_row.payload
    wire = api(app, t, "GET", f"/v1/jobs/{job_row.id}").get_json()["data"]
    assert not TOKEN.search(str(wire)), wire
    from tests.test_users import studio_client

    page = studio_client(app, t).get(f"/studio/m/runtime/jobs/{job_row.id}").get_data(as_text=True)
    assert not TOKEN.search(page)


def test_reset_and_verification_tokens_are_sealed_not_in_the_payload(app, tenant_a, mailbox):
    client = app.test_client()
    assert signup(client, tenant_a, "sam@example.com").status_code == 200
    client.post(
        "/v1/users/password/reset-request",
        json={"email": "sam@example.com"},
        headers={"X-Tenant-Id": tenant_a.slug},
    )
    deliver_mail(app)
    jobs = _mail_jobs(app)
    assert {j.payload["kind"] for j in jobs} == {"verify_email", "password_reset"}
    for row in jobs:
        assert row.status == "succeeded", row.error
        assert set(row.payload["secrets"]) == {"link", "code"}
        assert all(ref.startswith("sec_") for ref in row.payload["secrets"].values())
        _assert_no_token_anywhere(app, tenant_a, row)
    assert count(app, SealedValue) == 4
    # the mail itself carries the working code
    code = code_from(mailbox, "sam@example.com", "Reset")
    reset = client.post(
        "/v1/users/password/reset",
        json={"token": code, "newPassword": PASSWORD + "!"},
        headers={"X-Tenant-Id": tenant_a.slug},
    )
    assert reset.status_code == 200, reset.get_json()


def test_invitation_code_is_sealed_not_in_the_payload(app, tenant_a, mailbox):
    resp = api(
        app,
        tenant_a,
        "POST",
        f"/v1/orgs/{tenant_a.org_id}/invitations",
        {"email": "ivy@example.com", "role": "member"},
    )
    assert resp.status_code == 200, resp.get_json()
    deliver_mail(app)
    (row,) = _mail_jobs(app)
    _assert_no_token_anywhere(app, tenant_a, row)
    assert mailbox.last_token("ivy@example.com").startswith("bbi_")


def test_a_sealed_value_is_only_readable_in_its_tenant_and_until_it_expires(app, tenant_a, tenant_b):
    from bunbase import sealed
    from bunbase.clock import clock
    from bunbase.tenancy import tenant_scope
    with service_ctx(app, tenant_a.id) as ctx:
        ref = sealed.seal(ctx, "s3cret", ttl=timedelta(hours=1))
    with app.app_context():
        with tenant_scope(tenant_a.id):
            stored = db.session.get(SealedValue, ref)
            assert stored is not None and "s3cret" not in stored.ciphertext
            assert sealed.unseal(db.session, ref) == "s3cret"
        with tenant_scope(tenant_b.id), pytest.raises(sealed.SealedValueGone):
            sealed.unseal(db.session, ref)
        clock.advance("2h")
        with tenant_scope(tenant_a.id), pytest.raises(sealed.SealedValueGone):
            sealed.unseal(db.session, ref)
        db.session.remove()


def test_payloads_and_results_are_redacted_as_run_records_are(app, tenant_a):
    payload = {
        "kept": "visible",
        "password": "pw-in-payload",
        "apiKey": "key-in-payload",
        "deep": [{"token": "tok-in-payload"}],
    }
    job_id = api(
        app, tenant_a, "POST", "/v1/jobs", {"name": "jobsec.secretive", "payload": payload}
    ).get_json()["data"]["jobId"]
    Worker(app).drain()
    got = api(app, tenant_a, "GET", f"/v1/jobs/{job_id}").get_json()["data"]
    assert got["status"] == "succeeded"
    assert got["payload"] == {
        "kept": "visible",
        "password": "[redacted]",
        "apiKey": "[redacted]",
        "deep": [{"token": "[redacted]"}],
    }
    assert got["result"] == {"token": "[redacted]", "nested": {"password": "[redacted]"}, "kept": "visible"}
    from tests.test_users import studio_client

    page = studio_client(app, tenant_a).get(f"/studio/m/runtime/jobs/{job_id}").get_data(as_text=True)
    for secret in ("pw-in-payload", "key-in-payload", "tok-in-payload", "tok-in-result", "pw-in-result"):
        assert secret not in page
    # an edited replay keeps the values it was shown as "[redacted]"
    edited = {**got["payload"], "kept": "changed"}
    assert api(app, tenant_a, "POST", f"/v1/jobs/{job_id}/replay", {"payload": edited}).status_code == 200
    (row,) = rows(app, JobRun, JobRun.id == job_id)
    assert row.payload == {**payload, "kept": "changed"}


@pytest.mark.parametrize("name", ["jobsec.missing_file", "jobsec.crash"])
def test_job_errors_and_results_carry_no_server_paths(app, tenant_a, name):
    from bunbase import jobs

    with service_ctx(app, tenant_a.id) as ctx:
        job_id = jobs.enqueue(ctx, name, {})
    Worker(app).drain()
    (row,) = rows(app, JobRun, JobRun.id == job_id)
    assert row.status == "dead"
    got = api(app, tenant_a, "GET", f"/v1/jobs/{job_id}").get_json()["data"]
    shown = str(got) + str(row.error)
    assert str(ROOT) not in shown and "/site-packages/" not in shown, shown
    assert "instance/" in got["error"]  # the message is kept, relative to the project
    if name == "jobsec.crash":
        assert "Traceback" in got["error"] and "tests/test_job_secrets.py" in got["error"]


def test_the_mail_result_names_no_file(app, tenant_a, monkeypatch):
    settings = app.extensions["bunbase"].settings
    monkeypatch.setattr(settings, "smtp_url", None)  # the development mode: .eml files
    signup(app.test_client(), tenant_a, "una@example.com")
    deliver_mail(app)
    (row,) = _mail_jobs(app)
    assert row.status == "succeeded"
    assert row.result is not None and row.result["delivered"] == "file"
    assert "/" not in str(row.result.get("delivered")) and str(settings.instance_dir) not in str(row.result)
