"""How an action is invoked. The executor is the same whichever trigger fires.

`api` is served now; `event`, `cron`, `tool` and `webhook` are declared the same way and
served by the processes that own them (the worker, the scheduler, the tool and webhook
endpoints), so an action gains a trigger without any change to its code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Trigger:
    type: ClassVar[str] = "trigger"

    def describe(self) -> str:
        return self.type


@dataclass(frozen=True)
class ApiTrigger(Trigger):
    """A custom HTTP route. POST/PUT/PATCH read the JSON body, GET/DELETE the query string.

    Path parameters are written OpenAPI style (`/tickets/{ticketId}`) and merged into the
    input under that name.
    """

    type: ClassVar[str] = "api"
    method: str
    path: str

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"triggers.api: unknown method {self.method!r}")
        if self.path and not self.path.startswith("/"):
            raise ValueError(f"triggers.api: path must start with '/': {self.path!r}")

    @property
    def reads_body(self) -> bool:
        return self.method in {"POST", "PUT", "PATCH"}

    @property
    def path_params(self) -> list[str]:
        return _PARAM.findall(self.path)

    def flask_rule(self, prefix: str) -> str:
        return _PARAM.sub(r"<\1>", self.openapi_path(prefix))

    def openapi_path(self, prefix: str) -> str:
        return (prefix.rstrip("/") + self.path) or "/"

    def describe(self) -> str:
        return f"api {self.method} {self.path}"


@dataclass(frozen=True)
class EventTrigger(Trigger):
    type: ClassVar[str] = "event"
    event: str

    def describe(self) -> str:
        return f"event {self.event}"


@dataclass(frozen=True)
class CronTrigger(Trigger):
    type: ClassVar[str] = "cron"
    expr: str
    timezone: str = "UTC"
    input: dict[str, Any] = field(default_factory=dict, hash=False)

    def describe(self) -> str:
        return f"cron {self.expr} ({self.timezone})"


def api(method: str, path: str) -> ApiTrigger:
    return ApiTrigger(method.upper(), path)


def event(name: str) -> EventTrigger:
    return EventTrigger(name)


def cron(expr: str, *, timezone: str = "UTC", input: dict[str, Any] | None = None) -> CronTrigger:
    from croniter import croniter

    if not croniter.is_valid(expr):
        raise ValueError(f"triggers.cron: invalid cron expression {expr!r}")
    return CronTrigger(expr, timezone, input or {})
