"""`action(...)`: a named handler with typed input and output, guards and triggers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from bunbase.triggers import ApiTrigger, Trigger

if TYPE_CHECKING:
    from bunbase.context import Context
    from bunbase.guards import Guard
    from bunbase.modules import Module

Handler = Callable[[Any, "Context"], Any]

#: input fields never stored in run records or logs
REDACTED_FIELDS = frozenset({"password", "newPassword", "currentPassword", "token", "secret"})
REDACTED = "[redacted]"


def redact(value: Any, fields: frozenset[str]) -> Any:
    """`value` with every entry whose key is in `fields` replaced by "[redacted]", at any
    depth (run records, job payloads and results as shown over the API and in Studio)."""
    if isinstance(value, dict):
        return {k: (REDACTED if k in fields else redact(v, fields)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, fields) for v in value]
    return value


@dataclass(eq=False)
class Action:
    name: str
    handler: Handler
    input: type[BaseModel]
    output: type[BaseModel]
    guards: list[Guard] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    permissions: list[str] = field(default_factory=list)
    description: str = ""
    mutating: bool = True
    audit: bool = True
    public: bool = False
    redact: frozenset[str] = REDACTED_FIELDS
    #: the largest body this action's routes read, in bytes (None: BUNBASE_MAX_BODY_BYTES)
    max_body: int | None = None
    module: Module | None = None

    def __call__(self, input: Any, ctx: Context) -> Any:
        """Call the handler directly (tests, composition); no guards, no transaction."""
        return self.handler(input, ctx)

    @property
    def module_name(self) -> str:
        return self.module.name if self.module else self.name.split(".", 1)[0]

    @property
    def api_triggers(self) -> list[ApiTrigger]:
        return [t for t in self.triggers if isinstance(t, ApiTrigger)]

    def all_guards(self) -> list[Guard]:
        """Module guards first, then the action's own, then those its permissions install."""
        guards = list(self.module.guards) if self.module else []
        guards.extend(self.guards)
        if self.permissions:
            from bunbase.guards import has_permission

            guards.append(has_permission(*self.permissions))
        return guards


def action(
    *,
    name: str,
    input: type[BaseModel],
    output: type[BaseModel],
    guards: Sequence[Guard] = (),
    triggers: Sequence[Trigger] = (),
    permissions: Sequence[str] = (),
    description: str = "",
    mutating: bool | None = None,
    audit: bool = True,
    public: bool = False,
    redact: Sequence[str] = (),
    max_body: int | None = None,
) -> Callable[[Handler], Action]:
    """Declare an action. `mutating` defaults to False when it is served by GET.

    Pydantic builds each model's validator when the class is defined, so nothing is
    compiled per call; here we only check the declaration once, at import.
    """
    if not isinstance(input, type) or not issubclass(input, BaseModel):
        raise TypeError(f"action {name}: input must be a pydantic model class")
    if not isinstance(output, type) or not issubclass(output, BaseModel):
        raise TypeError(f"action {name}: output must be a pydantic model class")
    if name.count(".") < 1:
        raise ValueError(f"action {name!r}: name must be '<module>.<resource>.<verb>'")
    if max_body is not None and max_body < 1:
        raise ValueError(f"action {name}: max_body must be a positive number of bytes")

    def wrap(handler: Handler) -> Action:
        is_read = any(isinstance(t, ApiTrigger) and t.method == "GET" for t in triggers)
        return Action(
            name=name,
            handler=handler,
            input=input,
            output=output,
            guards=list(guards),
            triggers=list(triggers),
            permissions=list(permissions),
            description=description or (handler.__doc__ or "").strip(),
            mutating=(not is_read) if mutating is None else mutating,
            audit=audit,
            public=public,
            redact=REDACTED_FIELDS | frozenset(redact),
            max_body=max_body,
        )

    return wrap
