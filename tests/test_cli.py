"""`flask bunbase ...` commands, through Flask's CLI test runner."""

from __future__ import annotations

import json

from openapi_spec_validator import validate

from tests.helpers import assert_success


def test_tenant_seed_prints_json_credentials_that_can_log_in(app):
    args = ["bunbase", "tenant", "seed", "--count", "2", "--json"]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    seeded = json.loads(result.output)
    assert isinstance(seeded, list) and len(seeded) == 2
    assert len({s["tenant_id"] for s in seeded}) == 2
    client = app.test_client()
    for s in seeded:
        assert set(s) == {"tenant_id", "slug", "admin_email", "admin_password"}
        resp = client.post("/v1/auth/login",
                           json={"email": s["admin_email"], "password": s["admin_password"]},
                           headers={"X-Tenant-Id": s["slug"]})
        data = assert_success(resp)["data"]
        assert data["tenantId"] == s["tenant_id"]
        me = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {data['token']}",
                                                "X-Tenant-Id": s["tenant_id"]})
        assert assert_success(me)["data"]["email"] == s["admin_email"]


def test_tenant_seed_skips_taken_slugs(app):
    runner = app.test_cli_runner()
    first = json.loads(runner.invoke(args=["bunbase", "tenant", "seed", "--json"]).output)
    second = json.loads(runner.invoke(args=["bunbase", "tenant", "seed", "--json"]).output)
    assert first[0]["slug"] != second[0]["slug"]


def test_routes_lists_actions_with_triggers_and_guards(app):
    result = app.test_cli_runner().invoke(args=["bunbase", "routes"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    i = lines.index("support.ticket.create  [write]")
    assert lines[i + 1].split() == ["triggers:", "POST", "/v1/actions/support.ticket.create/run;",
                                    "POST", "/v1/support/tickets"]
    assert lines[i + 2].split() == ["guards:", "authenticated,", "in_org,",
                                    "has_permission(ticket:create)"]
    get = lines.index("support.ticket.get  [read]")
    assert lines[get + 2].split() == ["guards:", "authenticated,", "in_org,",
                                      "has_permission(ticket:read)"]
    decline = lines.index("orgs.invitation.decline  [write]")
    assert lines[decline + 2].split() == ["guards:", "rate_limit(30/minute", "per", "ip)"]
    assert "support.ticket.list  [read]" in lines
    secret = lines.index("testkit.secret  [write]")
    assert "has_permission(secret:read)" in lines[secret + 2]
    for name in app.extensions["bunbase"].registry.actions:
        assert any(line.startswith(name + "  [") for line in lines), name


def test_openapi_writes_a_valid_document(app, tmp_path):
    out = tmp_path / "openapi.json"
    result = app.test_cli_runner().invoke(args=["bunbase", "openapi", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    spec = json.loads(out.read_text())
    validate(spec)
    assert "/v1/actions/support.ticket.create/run" in spec["paths"]


def test_openapi_without_out_prints_the_document(app):
    result = app.test_cli_runner().invoke(args=["bunbase", "openapi"])
    assert result.exit_code == 0
    assert json.loads(result.output)["openapi"].startswith("3.1.")
