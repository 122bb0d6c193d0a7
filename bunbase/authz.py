"""Authorization decisions: one place that says allow or deny, and why.

The kernel's default decider reads `actor.permissions`; the rbac module installs one that
resolves roles in the current organization (and API key scopes). Every decision goes to
the registered sinks (the rbac decision log), outside the action's transaction so a deny
that rolls the action back is still recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bunbase.context import Context


@dataclass(frozen=True)
class Decision:
    permission: str
    allowed: bool
    reason: str


def permission_matches(granted: str, wanted: str) -> bool:
    """`ticket:create` is granted by itself, `ticket:*`, `*:create` and `*`."""
    if granted in ("*", wanted):
        return True
    g_feature, _, g_action = granted.partition(":")
    w_feature, _, w_action = wanted.partition(":")
    return (g_feature == "*" or g_feature == w_feature) and (g_action == "*" or g_action == w_action)


def grants(granted: set[str] | frozenset[str], wanted: str) -> str | None:
    """The granted entry that covers `wanted`, or None."""
    for entry in sorted(granted):
        if permission_matches(entry, wanted):
            return entry
    return None


def _default_decider(ctx: Context, permission: str) -> Decision:
    hit = grants(ctx.actor.permissions, permission)
    if hit:
        return Decision(permission, True, f"granted by actor permission {hit!r}")
    return Decision(permission, False, f"missing permission {permission!r}")


Decider = Callable[["Context", str], Decision]
Sink = Callable[["Context", Decision], None]

_decider: Decider = _default_decider
_sinks: list[Sink] = []


def set_decider(fn: Decider) -> None:
    global _decider
    _decider = fn


def add_sink(fn: Sink) -> None:
    if fn not in _sinks:
        _sinks.append(fn)


def decide(ctx: Context, permission: str, *, record: bool = True) -> Decision:
    decision = _decider(ctx, permission)
    if record:
        for sink in _sinks:
            sink(ctx, decision)
    return decision
