"""Guards: who may invoke an action. Each stops the chain by raising a typed error."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from limits import parse
from limits.strategies import MovingWindowRateLimiter

from bunbase import authz
from bunbase.errors import Forbidden, RateLimited, Unauthenticated

if TYPE_CHECKING:
    from bunbase.context import Context


class Guard(ABC):
    """Base class; subclasses implement `check`. Plain callables `(ctx) -> None` work too."""

    kind = "custom"

    def __call__(self, ctx: Context) -> None:
        self.check(ctx)

    @abstractmethod
    def check(self, ctx: Context) -> None: ...

    def describe(self) -> str:
        return self.kind


@dataclass
class Authenticated(Guard):
    kind = "authenticated"

    def check(self, ctx: Context) -> None:
        if not ctx.actor.is_authenticated:
            raise Unauthenticated()


@dataclass
class HasPermission(Guard):
    kind = "has_permission"
    permissions: tuple[str, ...]

    def check(self, ctx: Context) -> None:
        if not ctx.actor.is_authenticated:
            raise Unauthenticated()
        for permission in self.permissions:
            decision = authz.decide(ctx, permission)
            if not decision.allowed:
                raise Forbidden(
                    f"Not allowed: {decision.reason}",
                    details={"permission": permission, "reason": decision.reason},
                )

    def describe(self) -> str:
        return f"has_permission({', '.join(self.permissions)})"


@dataclass
class RateLimit(Guard):
    """A moving-window limit kept in Redis (the `limits` library), per actor, IP or tenant."""

    kind = "rate_limit"
    limit: str
    per: str = "actor"

    def __post_init__(self) -> None:
        if self.per not in {"actor", "ip", "tenant"}:
            raise ValueError("rate_limit: per must be 'actor', 'ip' or 'tenant'")
        self._item = parse(self.limit)

    def _identity(self, ctx: Context) -> str:
        if self.per == "ip":
            return ctx.request.ip or "unknown"
        if self.per == "tenant":
            return ctx.tenant.id
        return ctx.actor.id or f"ip:{ctx.request.ip}"

    def check(self, ctx: Context) -> None:
        from bunbase.redis_conn import rate_limiter

        limiter: MovingWindowRateLimiter = rate_limiter()
        name = ctx.action.name if ctx.action else "global"
        keys = (ctx.tenant.id, name, self.per, self._identity(ctx))
        if not limiter.hit(self._item, *keys):
            reset_at, _remaining = limiter.get_window_stats(self._item, *keys)
            raise RateLimited(retry_after=int(reset_at - time.time()) + 1)

    def describe(self) -> str:
        return f"rate_limit({self.limit} per {self.per})"


@dataclass
class TenantAdmin(Guard):
    """Tenant administrators (and platform operators) only; API keys never qualify."""

    kind = "tenant_admin"

    def check(self, ctx: Context) -> None:
        actor = ctx.actor
        if not actor.is_authenticated:
            raise Unauthenticated()
        if actor.kind != "user" or not (actor.is_tenant_admin or actor.is_platform_operator):
            raise Forbidden(
                "Not allowed: only a tenant administrator may do this",
                details={"reason": "tenant administrator required"},
            )


@dataclass
class OnlyTrigger(Guard):
    """The action answers the platform (an event, the clock), not callers: it runs only on
    these triggers, as the system actor. Anyone running it by hand is refused (403)."""

    kind = "only_trigger"
    triggers: tuple[str, ...]

    def check(self, ctx: Context) -> None:
        if ctx.trigger not in self.triggers or ctx.actor.kind != "system":
            wanted = " or ".join(self.triggers)
            raise Forbidden(
                f"This action runs on its {wanted} trigger only",
                details={"trigger": ctx.trigger, "allowed": list(self.triggers)},
            )

    def describe(self) -> str:
        return f"only_trigger({', '.join(self.triggers)})"


def only_trigger(*triggers: str) -> Guard:
    return OnlyTrigger(tuple(triggers))


def tenant_admin() -> Guard:
    return TenantAdmin()


def authenticated() -> Guard:
    return Authenticated()


def has_permission(*permissions: str) -> Guard:
    return HasPermission(tuple(permissions))


def rate_limit(limit: str, *, per: str = "actor") -> Guard:
    """`rate_limit("10/minute")`, `rate_limit("100 per hour", per="ip")`."""
    return RateLimit(limit, per)


def describe(guard: Guard | Callable[..., None]) -> str:
    if isinstance(guard, Guard):
        return guard.describe()
    return getattr(guard, "__name__", "custom")
