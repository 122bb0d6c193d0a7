"""`module(...)`: the manifest in `modules/<name>/_module.py`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bunbase.guards import Guard


@dataclass(frozen=True)
class NavItem:
    section: str
    label: str
    endpoint: str
    order: int = 100
    icon: str | None = None


@dataclass(eq=False)
class Module:
    name: str
    api_prefix: str
    guards: list[Guard] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    description: str = ""
    nav: list[NavItem] = field(default_factory=list)
    permissions: list[str] = field(default_factory=list)
    package: str = ""


def module(
    name: str,
    *,
    api_prefix: str | None = None,
    guards: Sequence[Guard] = (),
    depends_on: Sequence[str] = (),
    description: str = "",
    nav: Sequence[NavItem] = (),
    permissions: Sequence[str] = (),
) -> Module:
    prefix = api_prefix if api_prefix is not None else f"/{name}"
    if prefix and not prefix.startswith("/"):
        raise ValueError(f"module {name}: api_prefix must start with '/'")
    return Module(
        name=name,
        api_prefix=prefix.rstrip("/"),
        guards=list(guards),
        depends_on=list(depends_on),
        description=description,
        nav=list(nav),
        permissions=list(permissions),
    )
