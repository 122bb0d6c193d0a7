"""The JSON API: `/v1/actions/<name>/run`, each action's own routes, runs, health, spec."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import text
from werkzeug.exceptions import HTTPException

from bunbase import identity, redis_conn, tenancy_cache
from bunbase.actions import Action
from bunbase.clock import clock
from bunbase.context import ANONYMOUS, Actor, RequestInfo, TenantRef
from bunbase.db import db
from bunbase.errors import (
    BadRequest,
    BunbaseError,
    Forbidden,
    Internal,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    failure_envelope,
)
from bunbase.executor import Call, Outcome
from bunbase.ids import new_trace_id
from bunbase.tenancy import tenant_scope

if TYPE_CHECKING:
    from bunbase.platform import Platform

_TRACE_HEADERS = ("X-Trace-Id", "X-Request-Id")


def platform() -> Platform:
    from bunbase.platform import get_platform

    return get_platform(current_app)


# -- request plumbing ----------------------------------------------------------------
def trace_id() -> str:
    if "trace_id" not in g:
        incoming = next((request.headers[h] for h in _TRACE_HEADERS if h in request.headers), "")
        g.trace_id = incoming[:64] if incoming.replace("-", "").isalnum() else new_trace_id()
    return str(g.trace_id)


def request_info() -> RequestInfo:
    return RequestInfo(
        ip=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
        method=request.method,
        path=request.path,
    )


def resolve_tenant() -> TenantRef:
    """`X-Tenant-Id` (an id or a slug), else the host (`<slug>.<base domain>` or a hostname)."""
    key = request.headers.get("X-Tenant-Id", "").strip()
    if key:
        ref = tenancy_cache.lookup(key)
        if ref is None:
            raise NotFound("Tenant not found")
    else:
        host = request.host.split(":", 1)[0].lower()
        ref = tenancy_cache.lookup(host, by_host=True)
        base = platform().settings.base_domain
        if ref is None and host.endswith("." + base):
            ref = tenancy_cache.lookup(host[: -len(base) - 1])
        if ref is None:
            raise BadRequest(
                "No tenant: send the X-Tenant-Id header (tenant id or slug)",
                details=[{"field": "X-Tenant-Id", "message": "required", "type": "missing"}],
            )
    if ref.status != "active":
        raise Forbidden("This tenant is suspended")
    return ref


def authenticate(tenant: TenantRef) -> Actor:
    header = request.headers.get("Authorization", "")
    if not header:
        return ANONYMOUS
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Use 'Authorization: Bearer <token>'")
    token = token.strip()
    for authenticator in _authenticators:
        actor = authenticator(token, tenant)
        if actor is not None:
            return actor
    raise Unauthenticated("The token is invalid, expired or revoked")


Authenticator = Callable[[str, TenantRef], "Actor | None"]
_authenticators: list[Authenticator] = []


def register_authenticator(fn: Authenticator) -> Authenticator:
    """Modules add token kinds (API keys, ...): each returns an Actor or None if not theirs."""
    if fn not in _authenticators:
        _authenticators.append(fn)
    return fn


def session_authenticator(token: str, tenant: TenantRef) -> Actor | None:
    with tenant_scope(tenant.id):
        info = identity.lookup_session(db.session, token)
    if info is None:
        return None
    platform().buffer.touch_session(info.session_id, clock.now(), request.remote_addr)
    return Actor(
        kind="user",
        id=info.user_id,
        email=info.email,
        name=info.name,
        session_id=info.session_id,
        is_tenant_admin=info.is_tenant_admin,
        is_platform_operator=info.is_platform_operator,
    )


def http_resolver() -> tuple[TenantRef, Actor]:
    tenant = resolve_tenant()
    return tenant, authenticate(tenant)


def respond(outcome: Outcome) -> Response:
    resp = jsonify(outcome.body)
    resp.status_code = outcome.status
    for key, value in outcome.headers.items():
        resp.headers[key] = value
    resp.headers["X-Trace-Id"] = trace_id()
    resp.headers["X-Run-Id"] = outcome.run_id
    return resp


def error_response(err: BunbaseError) -> Response:
    resp = jsonify(failure_envelope(err, trace_id()))
    resp.status_code = err.status
    resp.headers.update(err.headers())
    resp.headers["X-Trace-Id"] = trace_id()
    return resp


#: JSON bodies nested deeper than this are refused (the probe's 1,000 levels was a 500)
MAX_JSON_DEPTH = 32


def read_input(reads_body: bool, path_params: dict[str, Any] | None = None) -> dict[str, Any]:
    if reads_body:
        # the raw body and the stdlib parser: `request.data` would run form parsing and
        # `get_json` content negotiation first, several times the cost of the parse
        raw = request.get_data(cache=True)  # 413 before reading when it is over the limit
        data: Any = _parse_json(raw) if raw else {}
        if not isinstance(data, dict):
            raise BadRequest("The request body must be a JSON object")
    else:
        data = {k: v for k, v in request.args.items()}
    data.update(path_params or {})
    return dict(data)


def _parse_json(raw: bytes) -> Any:
    if not request.is_json:
        raise BadRequest("The request body must be a JSON object (Content-Type: application/json)")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:  # not JSON, not UTF-8, or a number of more than 4,300 digits
        raise BadRequest(f"The request body is not valid JSON: {exc}") from None
    # counting brackets is C-speed; the walk only runs when the body could be that deep
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _depth(data) > MAX_JSON_DEPTH:
        raise _too_deep()
    return data


def _too_deep() -> BadRequest:
    return BadRequest(f"The request body is nested deeper than {MAX_JSON_DEPTH} levels")


def _depth(value: Any) -> int:
    """How deeply `value` nests lists and objects (iteratively: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def limit_body(act: Action) -> None:
    """Let this request's body be as large as the action declares (`max_body`)."""
    if act.max_body is not None:
        request.max_content_length = act.max_body


def execute_http(act: Action, raw: dict[str, Any], trigger: str) -> Response:
    call = Call(
        trigger=trigger,
        resolve=http_resolver,
        trace_id=trace_id(),
        request=request_info(),
        idempotency_key=request.headers.get("Idempotency-Key") or None,
        org_id=request.headers.get("X-Org-Id") or None,
    )
    return respond(platform().executor.run(act, raw, call))


# -- routes --------------------------------------------------------------------------
def run_action(name: str) -> Response:
    act = platform().registry.get(name)
    if act is None:
        raise NotFound(f"No action named {name!r}")
    limit_body(act)
    return execute_http(act, read_input(True), "api")


def make_route_view(act: Action, reads_body: bool) -> Callable[..., Response]:
    def view(**path_params: Any) -> Response:
        limit_body(act)
        return execute_http(act, read_input(reads_body, path_params), "api")

    return view


def health() -> Response:
    checks: dict[str, dict[str, Any]] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "dialect": db.engine.dialect.name}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    finally:
        db.session.rollback()
    try:
        redis_conn.client().ping()
        checks["redis"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["redis"] = {"ok": False, "error": type(exc).__name__}
    healthy = all(c["ok"] for c in checks.values())
    body = {
        "ok": healthy,
        "data": {"status": "ok" if healthy else "degraded", "checks": checks},
        "trace_id": trace_id(),
    }
    resp = jsonify(body)
    resp.status_code = 200 if healthy else 503
    return resp


def openapi() -> Response:
    from bunbase.openapi import build_spec

    return jsonify(build_spec(platform().registry))


def handle_error(err: BunbaseError) -> Response:
    return error_response(err)


def handle_http_error(err: HTTPException) -> Response:
    if err.code == 404:
        return error_response(NotFound("No such route"))
    if err.code == 405:
        return error_response(BadRequest("Method not allowed on this route"))
    if err.code == 413:
        return error_response(PayloadTooLarge(_too_large_message()))
    return error_response(BadRequest(err.description or "Bad request"))


def _too_large_message() -> str:
    limit = request.max_content_length
    return f"The request body is larger than this route accepts ({limit:,} bytes)" if limit else ""


def handle_unexpected(err: Exception) -> Response:
    if isinstance(err, HTTPException):
        return handle_http_error(err)
    current_app.logger.exception("unhandled error", exc_info=err)
    return error_response(Internal())


def build_blueprint(actions: list[Action]) -> Blueprint:
    """The /v1 blueprint: fixed routes plus one route per `triggers.api(...)`."""
    bp = Blueprint("api", __name__, url_prefix="/v1")
    bp.add_url_rule("/actions/<name>/run", view_func=run_action, methods=["POST"])
    bp.add_url_rule("/system/health", view_func=health, methods=["GET"])
    bp.add_url_rule("/openapi.json", view_func=openapi, methods=["GET"])
    for act in actions:
        prefix = act.module.api_prefix if act.module else ""
        for i, trig in enumerate(act.api_triggers):
            bp.add_url_rule(
                trig.flask_rule(prefix),
                endpoint=f"{act.name.replace('.', '__')}__{i}",
                view_func=make_route_view(act, trig.reads_body),
                methods=[trig.method],
            )
    bp.register_error_handler(BunbaseError, handle_error)
    bp.register_error_handler(Exception, handle_unexpected)
    return bp


register_authenticator(session_authenticator)
