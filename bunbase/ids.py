"""Time-ordered, URL-safe identifiers with a readable prefix (``run_01J…``).

The first 10 characters encode milliseconds since the epoch in Crockford base32, so ids
sort by creation time and keyset pagination can use the id alone.
"""

from __future__ import annotations

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
