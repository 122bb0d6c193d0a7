"""Time-ordered, URL-safe identifiers with a readable prefix (``run_01J…``).

The first 10 characters encode milliseconds since the epoch in Crockford base32, so ids
sort by creation time and keyset pagination can use the id alone.
"""

from __future__ import annotations

import hashlib
import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


#: every pair of Crockford base32 digits, indexed by the 10 bits it encodes
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
#: the 130 bits of an id (50 of milliseconds, 80 random), 10 at a time, most significant first
_SHIFTS = tuple(range(120, -1, -10))


def new_id(prefix: str) -> str:
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def new_trace_id() -> str:
    """32 hex digits (the W3C trace-id form): 12 of milliseconds since the epoch, then 80
    random bits. Time first, as X-Ray's trace ids do, so the trace-id indexes of runs and
    jobs grow at their end instead of touching a random page for every row."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def id_for(prefix: str, tenant_id: str, name: str, key: str | None) -> str:
    """A new id, or, with an idempotency `key`, the same id every time for that tenant,
    name and key (so a second start or enqueue finds the first one's row)."""
    if not key:
        return new_id(prefix)
    digest = hashlib.sha256(f"{tenant_id}\x00{name}\x00{key}".encode()).hexdigest()
    return f"{prefix}_k{digest[:34]}"
