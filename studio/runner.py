"""Studio changes go through the same executor as the API (trigger "studio"), so they are
validated, authorized, audited and visible in the run explorer like any other call.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_login import current_user

from bunbase import api
from bunbase.context import Actor, TenantRef
from bunbase.executor import Call, Outcome
from studio.auth import current_tenant


def studio_actor() -> Actor:
    return Actor(
        kind="user",
        id=current_user.user_id,
        email=current_user.email,
        name=current_user.name,
        session_id=current_user.session_id,
        is_tenant_admin=current_user.is_tenant_admin,
        is_platform_operator=current_user.is_platform_operator,
    )


def run_as(
    name: str, raw_input: dict[str, Any], tenant: TenantRef, actor: Actor, *, trigger: str = "web"
) -> Outcome:
    """Run an action for this request as `actor` in `tenant`, through the executor. The
    executor ends with no tenant in scope."""
    platform = current_app.extensions["bunbase"]
    action = platform.registry.get(name)
    if action is None:
        raise LookupError(f"unknown action {name!r}")
    call = Call(
        trigger=trigger, resolve=lambda: (tenant, actor), trace_id=api.trace_id(), request=api.request_info()
    )
    outcome: Outcome = platform.executor.run(action, raw_input, call)
    return outcome


def run_action(name: str, raw_input: dict[str, Any]) -> Outcome:
    tenant = current_tenant(current_user)
    outcome = run_as(name, raw_input, tenant, studio_actor(), trigger="studio")
    # the rest of this Studio request needs its tenant back in scope
    from bunbase.tenancy import set_tenant

    set_tenant(tenant.id)
    return outcome


def error_message(outcome: Outcome) -> str:
    err = outcome.body.get("error") or {}
    details = err.get("details")
    if isinstance(details, list) and details:
        fields = "; ".join(f"{d.get('field')}: {d.get('message')}" for d in details)
        return f"{err.get('message', 'Failed')} ({fields})"
    return str(err.get("message", "Failed"))
