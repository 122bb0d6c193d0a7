"""The one source of time. Tests move it forward; production reads the wall clock.

Every timestamp the platform stores is naive UTC (the database columns are naive), so
`now()` returns a naive UTC datetime. `aware()` gives the same instant with tzinfo.
"""

from __future__ import annotations

import math
import re
import threading
from datetime import UTC, datetime, timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


#: the longest duration accepted: far enough for any delay or window, near enough that a
#: time it is added to stays a valid datetime
MAX_DURATION = timedelta(days=365 * 100)


def parse_duration(value: str | float | timedelta) -> timedelta:
    """Parse "7d", "1h30m", "250ms" or a number of seconds into a timedelta. A duration that
    is not finite or longer than `MAX_DURATION` is a ValueError, like a malformed one."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().replace(" ", "")
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"invalid duration {value!r}; use forms like '30s', '15m', '7d', '1h30m'")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or abs(seconds) > MAX_DURATION.total_seconds():
        raise ValueError(f"invalid duration {value!r}: longer than {MAX_DURATION.days // 365} years")
    return timedelta(seconds=seconds)


class Clock:
    """Wall clock with a movable offset (tests) or a frozen instant."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._frozen: datetime | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        if self._frozen is not None:
            return self._frozen
        return datetime.now(UTC).replace(tzinfo=None) + self._offset

    def aware(self) -> datetime:
        return self.now().replace(tzinfo=UTC)

    def advance(self, by: str | float | timedelta) -> datetime:
        delta = parse_duration(by)
        with self._lock:
            if self._frozen is not None:
                self._frozen += delta
            else:
                self._offset += delta
        return self.now()

    def freeze(self, at: datetime | None = None) -> None:
        self._frozen = (at or self.now()).replace(tzinfo=None)

    def reset(self) -> None:
        with self._lock:
            self._offset = timedelta(0)
            self._frozen = None


clock = Clock()
