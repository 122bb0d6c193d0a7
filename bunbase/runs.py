"""Who may read a run record: one rule, for the API (`GET /v1/runs/{runId}`) and Studio.

A run holds its caller's input and output, which can be anything the action read (a user
list is every user's email), so being in the tenant is not enough. A run is visible to

* its own actor (the user, API key or service that made it);
* tenant administrators and platform operators;
* members of the org the run acted in (its `in_org` guard verified it: `ActionRun.org_id`)
  whose role there grants the run's read permission: `<feature>:read` for each
  `<feature>:<verb>` the action requires (`ticket:read` for `support.ticket.create`), or
  `org:read` for an action that requires none. An API key must belong to that org and
  hold the permission in its scopes as well.

Anyone else is told the run does not exist (404), as for an id of another tenant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import select

from bunbase import authz
from bunbase.db import DBSession
from bunbase.models import ActionRun

if TYPE_CHECKING:
    from bunbase.actions import Action
    from bunbase.context import Actor, Context

#: what an org member needs to read runs of an action that declares no permission
ORG_READ = "org:read"


def read_permissions(action: Action | None) -> list[str]:
    """The permissions that let an org member read runs of `action`."""
    found = sorted({f"{p.split(':', 1)[0]}:read" for p in (action.permissions if action else [])})
    if "*:read" in found:  # an action requiring "*": only those who may read everything
        return ["*:read"]
    return found or [ORG_READ]


def sees_every_run(actor: Actor) -> bool:
    return actor.kind == "user" and (actor.is_tenant_admin or actor.is_platform_operator)


def list_filter(actor: Actor) -> list[Any]:
    """Where clauses for listing runs (Studio): everything for administrators, a caller's
    own runs otherwise (org members read other people's runs one at a time)."""
    if sees_every_run(actor):
        return []
    return [ActionRun.actor_id == actor.id] if actor.id else [ActionRun.id.is_(None)]


def load(session: DBSession, run_id: str) -> ActionRun | None:
    """The run of the tenant in scope, read after the buffered writer has written what it
    holds (runs are written in batches: the one asked for may still be pending)."""
    current_app.extensions["bunbase"].buffer.flush()
    session.rollback()  # a read snapshot older than the flush would not see it
    found: ActionRun | None = session.scalar(select(ActionRun).where(ActionRun.id == run_id))
    return found


def can_see(ctx: Context, run: ActionRun, action: Action | None) -> bool:
    """Whether the caller in `ctx` may read `run` (see the module's docstring)."""
    actor = ctx.actor
    if not actor.is_authenticated:
        return False
    if sees_every_run(actor) or (actor.id is not None and run.actor_id == actor.id):
        return True
    if run.org_id is None:
        return False
    if actor.kind == "api_key" and actor.key_org_id != run.org_id:
        return False
    saved, ctx.org_id = ctx.org_id, run.org_id  # the decision is about the run's org
    try:
        return all(authz.decide(ctx, p).allowed for p in read_permissions(action))
    finally:
        ctx.org_id = saved
