"""Organization guards: `in_org()` and `has_role(...)`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bunbase import NotFound, Unauthenticated
from bunbase.context import Context
from bunbase.errors import Forbidden
from bunbase.guards import Guard
from modules.rbac import services

OrgResolver = Callable[[Context], str | None]
ORG_NOT_FOUND = "Organization not found"


def org_id_from(ctx: Context) -> str | None:
    """The org in play: the path or body (`orgId`), else the `X-Org-Id` header."""
    value = ctx.raw_input.get("orgId") or ctx.raw_input.get("org_id") or ctx.org_id
    return str(value) if value else None


@dataclass
class InOrg(Guard):
    """The caller must be a member of the org; anyone else gets 404, as if it did not exist.

    The org comes from `orgId` in the path or body (or `X-Org-Id`), or from `resolve`,
    which finds it from the resource the action is about (a ticket's org, say). Every
    refusal is the same 404 with the same message — `not_found`, the answer for a resource
    that does not exist — so a caller outside the org cannot tell an id of that org from a
    made-up one.
    """

    kind = "in_org"
    resolve: OrgResolver | None = None
    not_found: str = ORG_NOT_FOUND

    def check(self, ctx: Context) -> None:
        if not ctx.actor.is_authenticated:
            raise Unauthenticated()
        try:
            org_id = self.resolve(ctx) if self.resolve else org_id_from(ctx)
        except NotFound:
            org_id = None
        if not org_id or (ctx.actor.kind == "api_key" and ctx.actor.key_org_id != org_id):
            raise NotFound(self.not_found)
        ctx.org_id = org_id
        ctx.extras.pop("membership", None)
        if _studio_admin(ctx):  # operators manage every org of the tenant from Studio
            if not services.org_in_tenant(ctx.db, org_id):
                raise NotFound(self.not_found)
        elif services._org_membership(ctx) is None:
            raise NotFound(self.not_found)
        ctx.verified_org_id = org_id


def _studio_admin(ctx: Context) -> bool:
    actor = ctx.actor
    return ctx.trigger == "studio" and (actor.is_tenant_admin or actor.is_platform_operator)


@dataclass
class HasRole(Guard):
    kind = "has_role"
    roles: tuple[str, ...]

    def check(self, ctx: Context) -> None:
        m = services._org_membership(ctx)
        if m is None:
            raise NotFound("Organization not found")
        if m.role_key not in self.roles:
            raise Forbidden(f"Needs role {' or '.join(self.roles)}; you are {m.role_key}")

    def describe(self) -> str:
        return f"has_role({', '.join(self.roles)})"


def in_org(resolve: OrgResolver | None = None, *, not_found: str | None = None) -> Guard:
    """`in_org()` for actions naming the org; `in_org(resolve=..., not_found="Ticket not
    found")` for actions naming a resource of an org (the message of a missing resource,
    given for every refusal)."""
    if resolve is not None and not not_found:
        raise ValueError("in_org(resolve=...) needs not_found=: the answer for a missing resource")
    return InOrg(resolve, not_found or ORG_NOT_FOUND)


def has_role(*roles: str) -> Guard:
    return HasRole(tuple(roles))
