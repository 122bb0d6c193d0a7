"""Named hook lists modules subscribe to at import (e.g. seed a new tenant's roles)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_hooks: dict[str, list[Callable[..., Any]]] = {
    # (tenant, admin_user) inside the transaction that creates the tenant
    "tenant_created": [],
    # (tenant_ref, admin_user_id) once, when `make run` seeds the demo workspace
    "demo_seed": [],
    # () on every scheduler tick, in an app context, on the one active scheduler
    "scheduler_tick": [],
}


def on(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if name not in _hooks:
        raise KeyError(f"unknown hook {name!r}; known: {sorted(_hooks)}")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if fn not in _hooks[name]:
            _hooks[name].append(fn)
        return fn

    return register


def fire(name: str, *args: Any, **kwargs: Any) -> None:
    for fn in _hooks[name]:
        fn(*args, **kwargs)
