"""GET /v1/openapi.json: a valid OpenAPI 3.1 document covering every action."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate


@pytest.fixture
def spec(client) -> dict:
    resp = client.get("/v1/openapi.json")
    assert resp.status_code == 200
    return resp.get_json()


def test_spec_is_valid_openapi_3_1(spec):
    assert spec["openapi"].startswith("3.1.")
    validate(spec)  # raises on an invalid document


def test_every_action_has_its_run_path(app, spec):
    actions = app.extensions["bunbase"].registry.actions
    assert actions
    for name in actions:
        assert "post" in spec["paths"][f"/v1/actions/{name}/run"], name


def test_custom_routes_are_documented_with_path_and_query_parameters(spec):
    get_ticket = spec["paths"]["/v1/support/tickets/{ticketId}"]["get"]
    params = {(p["in"], p["name"]) for p in get_ticket["parameters"]}
    assert ("path", "ticketId") in params
    assert ("query", "ticketId") not in params
    listing = spec["paths"]["/v1/support/tickets"]
    assert {"get", "post"} <= set(listing)
    query = {p["name"] for p in listing["get"]["parameters"] if p["in"] == "query"}
    assert {"orgId", "status", "priority", "cursor", "limit"} <= query
    assert "requestBody" in listing["post"]
    assert "put" in spec["paths"]["/v1/testkit/echo/{itemId}"]


def _schema(spec: dict, ref: dict) -> dict:
    return spec["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


def test_property_names_are_camelcase(spec):
    op = spec["paths"]["/v1/actions/support.ticket.create/run"]["post"]
    body = _schema(spec, op["requestBody"]["content"]["application/json"]["schema"])
    assert {"orgId", "subject", "body", "priority"} == set(body["properties"])
    assert "org_id" not in body["properties"]
    out = op["responses"]["200"]["content"]["application/json"]["schema"]
    data = _schema(spec, out["properties"]["data"])
    assert set(data["properties"]) == {"ticketId", "status"}
    for name, schema in spec["components"]["schemas"].items():
        for prop in schema.get("properties", {}):
            if name not in {"ErrorEnvelope"}:
                assert "_" not in prop, f"{name}.{prop} is not camelCase"


def test_bearer_security_scheme(spec):
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    create = spec["paths"]["/v1/actions/support.ticket.create/run"]["post"]
    assert create["security"] == [{"bearerAuth": []}]
    login = spec["paths"]["/v1/actions/auth.session.login/run"]["post"]
    assert login["security"] == []  # public


def test_error_responses_are_documented(spec):
    create = spec["paths"]["/v1/actions/support.ticket.create/run"]["post"]["responses"]
    for code in ("400", "401", "403", "404", "409", "422", "429", "500"):
        assert create[code]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorEnvelope"}, code
    read = spec["paths"]["/v1/actions/support.ticket.list/run"]["post"]["responses"]
    assert "409" not in read and "422" not in read  # no idempotency on reads
    codes = spec["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
    assert {"validation_error", "unauthenticated", "forbidden", "not_found",
            "idempotency_conflict", "idempotency_mismatch", "rate_limited",
            "internal"} <= set(codes)


def test_idempotency_key_header_only_on_mutating_operations(spec):
    def headers(op):
        return {p["name"] for p in op["parameters"] if p["in"] == "header"}

    assert "Idempotency-Key" in headers(spec["paths"]["/v1/support/tickets"]["post"])
    assert "Idempotency-Key" not in headers(spec["paths"]["/v1/support/tickets"]["get"])


def _component(spec: dict, ref: dict) -> tuple[str, dict]:
    name = ref["$ref"].rsplit("/", 1)[1]
    return name, spec["components"]["schemas"][name]


def test_every_action_is_documented_with_its_own_models(app, spec):
    """The probe: PATCH /v1/roles/{roleId} was documented with another module's body (two
    components named UpdateRoleInput). Each action's body and answer are its own models."""
    owner: dict[str, object] = {}
    for name, action in app.extensions["bunbase"].registry.actions.items():
        op = spec["paths"][f"/v1/actions/{name}/run"]["post"]
        body_ref = op["requestBody"]["content"]["application/json"]["schema"]
        data_ref = op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]
        for (ref, model, mode) in ((body_ref, action.input, "validation"),
                                   (data_ref, action.output, "serialization")):
            component, schema = _component(spec, ref)
            own = model.model_json_schema(by_alias=True, mode=mode)
            assert set(schema.get("properties", {})) == set(own.get("properties", {})), (name, component)
            assert set(schema.get("required", [])) == set(own.get("required", [])), (name, component)
            first = owner.setdefault(f"{component}/{mode}", model)
            assert first is model or first.model_json_schema(mode=mode) == own, (
                f"{component} documents two different models: {first} and {model}")


def test_component_names_are_module_qualified_and_unique(spec):
    names = list(spec["components"]["schemas"])
    assert len(names) == len(set(names))
    assert {"rbac.UpdateRoleInput", "orgs.UpdateRoleInput", "audit.ListEventsInput",
            "runtime.ListEventsInput"} <= set(names)
    patch = spec["paths"]["/v1/roles/{roleId}"]["patch"]
    assert patch["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/rbac.UpdateRoleInput")
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name
