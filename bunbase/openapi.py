"""OpenAPI 3.1 built from the registry: every action, its schemas, errors and security."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import (
    CoreModeRef,
    DefsRef,
    GenerateJsonSchema,
    JsonSchemaMode,
    models_json_schema,
)

from bunbase import guards as guard_mod
from bunbase.errors import ERROR_TYPES
from bunbase.registry import Registry

REF = "#/components/schemas/{model}"


class _QualifiedNames(GenerateJsonSchema):
    """Component names qualified by the module that defines the model (`rbac.UpdateRoleInput`,
    `runtime.ListEventsInput`): two modules' models of one name can never share a component.
    Pydantic picks the first choice no other model claims, so names stay unique even where
    the qualified name would not be (its longer fallbacks follow)."""

    def get_defs_ref(self, core_mode_ref: CoreModeRef) -> DefsRef:
        ref = super().get_defs_ref(core_mode_ref)
        core_ref, mode = core_mode_ref
        qualified = _qualified(core_ref)
        if qualified:
            choices = self._prioritized_defsref_choices[ref]
            suffix = "-Input" if mode == "validation" else "-Output"
            choices[:0] = [DefsRef(qualified), DefsRef(qualified + suffix)]
        return ref


def _qualified(core_ref: str) -> str | None:
    """ "modules.rbac.actions.UpdateRoleInput:1234" -> "rbac.UpdateRoleInput"; None for a
    generic or otherwise unusual reference (pydantic's own names serve those)."""
    path = core_ref.rsplit(":", 1)[0]
    if not re.fullmatch(r"[A-Za-z0-9_.]+", path) or "." not in path:
        return None
    *package, name = path.split(".")
    if package[:1] == ["modules"] and len(package) > 1:
        owner = package[1]
    elif package[:2] == ["tests", "fixture_modules"] and len(package) > 2:
        owner = package[2]
    else:
        owner = package[0]
    return f"{owner}.{name}"


Refs = dict[tuple[Any, str], dict[str, Any]]


def _schemas(registry: Registry) -> tuple[Refs, dict[str, Any]]:
    """Every action's input and output schema in one pass, so every component name is
    decided knowing all the others: a `$ref` per (model, mode), and the components."""
    pairs: set[tuple[type[BaseModel], JsonSchemaMode]] = set()
    for act in registry.actions.values():
        pairs.add((act.input, "validation"))
        pairs.add((act.output, "serialization"))
    ordered = sorted(pairs, key=lambda p: (p[0].__module__, p[0].__qualname__, p[1]))
    refs, top = models_json_schema(ordered, by_alias=True, ref_template=REF, schema_generator=_QualifiedNames)
    components = dict(top.get("$defs", {}))
    if set(components) & set(_ERROR_COMPONENTS):
        raise RuntimeError(
            f"a model is named like an error component: {set(components) & set(_ERROR_COMPONENTS)}"
        )
    out: Refs = {(model, mode): dict(ref) for (model, mode), ref in refs.items()}
    return out, components


_ERROR_COMPONENTS = ("Error", "ErrorEnvelope")


def _error_components(components: dict[str, Any]) -> None:
    components["Error"] = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "enum": sorted({e.code for e in ERROR_TYPES})},
            "message": {"type": "string"},
            "details": {},
        },
    }
    components["ErrorEnvelope"] = {
        "type": "object",
        "required": ["ok", "error", "trace_id"],
        "properties": {
            "ok": {"const": False},
            "error": {"$ref": REF.format(model="Error")},
            "trace_id": {"type": "string"},
        },
    }


def _responses(action_name: str, output_ref: dict[str, Any], mutating: bool) -> dict[str, Any]:
    err = {"application/json": {"schema": {"$ref": REF.format(model="ErrorEnvelope")}}}
    responses: dict[str, Any] = {
        "200": {
            "description": f"{action_name} succeeded",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["ok", "data", "run_id", "trace_id"],
                        "properties": {
                            "ok": {"const": True},
                            "data": output_ref,
                            "run_id": {"type": "string"},
                            "trace_id": {"type": "string"},
                        },
                    }
                }
            },
        }
    }
    codes = {
        "400": "validation_error: the input is not valid (per-field details)",
        "401": "unauthenticated",
        "403": "forbidden",
        "404": "not_found (also for another tenant's ids)",
        "429": "rate_limited (see Retry-After)",
        "500": "internal",
    }
    if mutating:
        codes["409"] = "idempotency_conflict: the same key is still running"
        codes["422"] = "idempotency_mismatch: the key was used with another body"
    for code, text in codes.items():
        responses[code] = {"description": text, "content": err}
    return responses


def _parameters(mutating: bool, path_params: list[str], query_model: Any = None) -> list[Any]:
    params: list[dict[str, Any]] = [
        {
            "name": "X-Tenant-Id",
            "in": "header",
            "required": False,
            "description": "Tenant id or slug (else resolved from the host)",
            "schema": {"type": "string"},
        },
    ]
    if mutating:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Replays the stored response for 24 h",
                "schema": {"type": "string", "maxLength": 255},
            }
        )
    for name in path_params:
        params.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    if query_model is not None:
        for field_name, field in query_model.model_fields.items():
            if field.alias in path_params or field_name in path_params:
                continue
            params.append(
                {
                    "name": field.alias or field_name,
                    "in": "query",
                    "required": field.is_required(),
                    "schema": {"type": "string"},
                }
            )
    return params


def build_spec(registry: Registry) -> dict[str, Any]:
    refs, components = _schemas(registry)
    _error_components(components)
    paths: dict[str, Any] = {}
    for name in sorted(registry.actions):
        act = registry.actions[name]
        input_ref = refs[(act.input, "validation")]
        output_ref = refs[(act.output, "serialization")]
        security: list[dict[str, list[str]]] = [] if act.public else [{"bearerAuth": []}]
        base_op = {
            "summary": act.description.splitlines()[0] if act.description else name,
            "description": act.description,
            "tags": [act.module_name],
            "security": security,
            "x-bunbase-guards": [guard_mod.describe(g) for g in act.all_guards()],
            "responses": _responses(name, output_ref, act.mutating),
        }
        paths[f"/v1/actions/{name}/run"] = {
            "post": {
                **base_op,
                "operationId": name.replace(".", "_"),
                "parameters": _parameters(act.mutating, []),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": input_ref}},
                },
            }
        }
        prefix = act.module.api_prefix if act.module else ""
        for i, trig in enumerate(act.api_triggers):
            op: dict[str, Any] = {
                **base_op,
                "operationId": f"{name.replace('.', '_')}_{trig.method.lower()}_{i}",
            }
            if trig.reads_body:
                op["parameters"] = _parameters(act.mutating, trig.path_params)
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": input_ref}},
                }
            else:
                op["parameters"] = _parameters(act.mutating, trig.path_params, act.input)
            paths.setdefault(f"/v1{trig.openapi_path(prefix)}", {})[trig.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Bunbase API",
            "version": "1.0.0",
            "description": "Every action is callable at POST /v1/actions/{name}/run.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A session token from POST /v1/auth/login",
                },
            },
        },
    }
