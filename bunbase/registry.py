"""The registry of modules and actions, and the loader that discovers them.

A module is a folder with `_module.py` defining `module = module(...)`. The loader
imports it, then the module's conventional files (`models`, `actions`, `jobs`,
`workflows`, `studio`) when present. Anything wrong is an error at start-up: duplicate
action names, actions outside their module's namespace, unknown `depends_on` entries.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from bunbase.actions import Action
from bunbase.modules import Module

CONVENTIONAL = ("models", "services", "actions", "jobs", "workflows")


class RegistryError(RuntimeError):
    """The set of modules does not add up; raised at start-up."""


@dataclass
class Registry:
    modules: dict[str, Module] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    studio_blueprints: list[Any] = field(default_factory=list)
    public_blueprints: list[Any] = field(default_factory=list)
    cli_groups: list[Any] = field(default_factory=list)

    def add_module(self, mod: Module) -> None:
        if mod.name in self.modules:
            raise RegistryError(f"module {mod.name!r} is defined twice")
        self.modules[mod.name] = mod

    def add_action(self, act: Action, mod: Module) -> None:
        if act.name in self.actions:
            if self.actions[act.name] is act:
                return
            raise RegistryError(f"duplicate action name {act.name!r}")
        if not act.name.startswith(mod.name + "."):
            raise RegistryError(
                f"action {act.name!r} is defined in module {mod.name!r}; "
                f"its name must start with '{mod.name}.'"
            )
        act.module = mod
        self.actions[act.name] = act

    def validate(self) -> None:
        for mod in self.modules.values():
            for dep in mod.depends_on:
                if dep not in self.modules:
                    raise RegistryError(f"module {mod.name!r} depends on unknown module {dep!r}")
        self._check_routes()

    def _check_routes(self) -> None:
        seen: dict[tuple[str, str], str] = {}
        for act in self.actions.values():
            for trig in act.api_triggers:
                key = (trig.method, trig.flask_rule(act.module.api_prefix if act.module else ""))
                if key in seen:
                    raise RegistryError(
                        f"route {key[0]} {key[1]} is claimed by {seen[key]!r} and {act.name!r}"
                    )
                seen[key] = act.name

    def permission_catalog(self) -> list[str]:
        """Every permission an action requires or a module declares, sorted."""
        found = {p for act in self.actions.values() for p in act.permissions}
        found |= {p for mod in self.modules.values() for p in mod.permissions}
        return sorted(found)

    def get(self, name: str) -> Action | None:
        return self.actions.get(name)


def _module_packages(package: str) -> list[tuple[str, Path]]:
    pkg = importlib.import_module(package)
    found: list[tuple[str, Path]] = []
    for base in getattr(pkg, "__path__", []):
        for child in sorted(Path(base).iterdir()):
            if (child / "_module.py").is_file():
                found.append((f"{package}.{child.name}", child))
    return found


def _import_optional(name: str, folder: Path) -> ModuleType | None:
    leaf = name.rsplit(".", 1)[1]
    if not ((folder / f"{leaf}.py").is_file() or (folder / leaf / "__init__.py").is_file()):
        return None
    return importlib.import_module(name)


def load(registry: Registry, packages: list[str], *, only: set[str] | None = None) -> Registry:
    """Discover modules in the given packages (e.g. `modules`); `only` limits by name."""
    for package in packages:
        for dotted, folder in _module_packages(package):
            manifest = importlib.import_module(f"{dotted}._module")
            mod = getattr(manifest, "module", None)
            if not isinstance(mod, Module):
                raise RegistryError(f"{dotted}/_module.py must define `module = module(...)`")
            if only is not None and mod.name not in only:
                continue
            mod.package = dotted
            registry.add_module(mod)
            for leaf in CONVENTIONAL:
                pymod = _import_optional(f"{dotted}.{leaf}", folder)
                if pymod is None:
                    continue
                for obj in vars(pymod).values():
                    if isinstance(obj, Action) and obj.handler.__module__ == pymod.__name__:
                        registry.add_action(obj, mod)
            studio = _import_optional(f"{dotted}.studio", folder)
            if studio is not None and hasattr(studio, "blueprint"):
                registry.studio_blueprints.append((mod, studio.blueprint))
            public = _import_optional(f"{dotted}.pages", folder)
            if public is not None and hasattr(public, "blueprint"):
                registry.public_blueprints.append((mod, public.blueprint))
            commands = _import_optional(f"{dotted}.cli", folder)
            if commands is not None and hasattr(commands, "cli"):
                registry.cli_groups.append(commands.cli)
    registry.validate()
    return registry
