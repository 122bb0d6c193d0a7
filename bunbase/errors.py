"""One error hierarchy, mapped once to HTTP status and the failure envelope."""

from __future__ import annotations

import functools
import re
import traceback
from typing import Any

from pydantic import ValidationError as PydanticValidationError


class BunbaseError(Exception):
    """Base of every typed error an action, guard or the executor may raise."""

    status: int = 500
    code: str = "internal"
    default_message: str = "Internal error"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.details = details

    def headers(self) -> dict[str, str]:
        return {}

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ValidationFailed(BunbaseError):
    status, code, default_message = 400, "validation_error", "Input is not valid"

    @classmethod
    def from_pydantic(cls, exc: PydanticValidationError, where: str = "body") -> ValidationFailed:
        details = [
            {
                "field": ".".join(str(p) for p in err["loc"]) or where,
                "message": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors(include_url=False, include_input=False)
        ]
        return cls("Input is not valid", details=details)


class BadRequest(BunbaseError):
    status, code, default_message = 400, "bad_request", "Bad request"


class InvalidCursor(BunbaseError):
    """A `cursor` this list did not hand out (malformed, tampered, or another list's)."""

    status, code, default_message = 400, "invalid_cursor", "The cursor is not valid"


class Unauthenticated(BunbaseError):
    status, code, default_message = 401, "unauthenticated", "Authentication required"


class Forbidden(BunbaseError):
    status, code, default_message = 403, "forbidden", "Not allowed"


class NotFound(BunbaseError):
    status, code, default_message = 404, "not_found", "Not found"


class Conflict(BunbaseError):
    status, code, default_message = 409, "conflict", "Conflict"


class IdempotencyConflict(BunbaseError):
    status, code = 409, "idempotency_conflict"
    default_message = "A request with this Idempotency-Key is still being processed"


class IdempotencyMismatch(BunbaseError):
    status, code = 422, "idempotency_mismatch"
    default_message = "This Idempotency-Key was used with a different request body"


class RateLimited(BunbaseError):
    status, code, default_message = 429, "rate_limited", "Too many requests"

    def __init__(self, message: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(message, details={"retryAfter": retry_after})
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class PayloadTooLarge(BunbaseError):
    """The body is larger than the route accepts; said before the body is read."""

    status, code, default_message = 413, "payload_too_large", "The request body is too large"

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}  # the rest of the body is never read


class Internal(BunbaseError):
    """Anything unexpected. The message never carries the original exception text."""


ERROR_TYPES: tuple[type[BunbaseError], ...] = (
    ValidationFailed,
    BadRequest,
    InvalidCursor,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    IdempotencyConflict,
    IdempotencyMismatch,
    RateLimited,
    PayloadTooLarge,
    Internal,
)


def failure_envelope(err: BunbaseError, trace_id: str) -> dict[str, Any]:
    return {"ok": False, "error": err.body(), "trace_id": trace_id}


def success_envelope(data: Any, run_id: str | None, trace_id: str) -> dict[str, Any]:
    return {"ok": True, "data": data, "run_id": run_id, "trace_id": trace_id}


# -- failures shown to tenants ----------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _server_roots() -> tuple[str, ...]:
    import os
    import sys
    import sysconfig
    import tempfile

    from bunbase.config import ROOT

    roots = {
        str(ROOT),
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        tempfile.gettempdir(),
        os.path.expanduser("~"),
    }
    roots.update(p for p in sysconfig.get_paths().values() if p)
    # longest first, so a site-packages folder wins over the prefix that contains it
    return tuple(sorted((r.rstrip("/") for r in roots if r and r != "/"), key=len, reverse=True))


#: absolute paths under the usual system folders, for what the roots above do not cover
_SYSTEM_PATH = re.compile(
    r"(?<![\w:/.])/(?:home|root|usr|var|opt|etc|tmp|srv|mnt|proc|work|app|data)/[^\s'\",:)]*"
)


def scrub_paths(text: str) -> str:
    """`text` with the server's file paths taken out: a path under the project or a
    library folder becomes relative to it, any other absolute system path `<path>`."""
    for root in _server_roots():
        text = text.replace(root + "/", "")
    return _SYSTEM_PATH.sub("<path>", text)


def describe_failure(exc: BaseException) -> str:
    """One line for a failed job or step, as tenants see it: the exception's type and
    message, with no server file paths."""
    return scrub_paths(f"{type(exc).__name__}: {exc}")


def format_failure(exc: BaseException, limit: int = 8000) -> str:
    """A traceback that names frames by module-relative file (`modules/x/jobs.py:12 in f`)
    instead of server paths, ending with `describe_failure`; at most `limit` characters."""
    frames = traceback.extract_tb(exc.__traceback__)
    lines = ["Traceback (most recent call last):"]
    lines += [f"  {scrub_paths(f.filename)}:{f.lineno} in {f.name}" for f in frames]
    lines.append(describe_failure(exc))
    return "\n".join(lines)[-limit:]
