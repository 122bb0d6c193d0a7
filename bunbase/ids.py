"""Time-ordered, URL-safe identifiers with a readable prefix (``run_01J…``).

The first 10 characters encode milliseconds since the epoch in Crockford base32, so ids
sort by creation time and keyset pagination can use the id alone.
"""

from __future__ import annotations

import hashlib
import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _b32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_b32(millis, 10)}{_b32(rand, 16)}"


def new_trace_id() -> str:
    return os.urandom(16).hex()


def id_for(prefix: str, tenant_id: str, name: str, key: str | None) -> str:
    """A new id, or, with an idempotency `key`, the same id every time for that tenant,
    name and key (so a second start or enqueue finds the first one's row)."""
    if not key:
        return new_id(prefix)
    digest = hashlib.sha256(f"{tenant_id}\x00{name}\x00{key}".encode()).hexdigest()
    return f"{prefix}_k{digest[:34]}"
