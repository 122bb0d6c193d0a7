"""Ids: a prefix, 10 Crockford base32 digits of milliseconds, 16 random digits."""

from __future__ import annotations

import re

from bunbase import ids

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _decode(digits: str) -> int:
    value = 0
    for ch in digits:
        value = value * 32 + _ALPHABET.index(ch)
    return value


def test_an_id_is_the_prefix_then_the_time_in_milliseconds_then_randomness(monkeypatch):
    millis = 1_795_000_000_123  # 2026-11-18
    monkeypatch.setattr(ids.time, "time_ns", lambda: millis * 1_000_000 + 999_999)
    monkeypatch.setattr(ids.os, "urandom", lambda n: bytes(range(1, n + 1)))
    made = ids.new_id("tkt")
    assert re.fullmatch(r"tkt_[0-9A-HJKMNP-TV-Z]{26}", made)
    body = made.split("_", 1)[1]
    assert _decode(body[:10]) == millis
    assert _decode(body[10:]) == int.from_bytes(bytes(range(1, 11)), "big")


def test_ids_sort_by_creation_time(monkeypatch):
    clock = iter([1_700_000_000_000, 1_700_000_000_001, 1_800_000_000_000, 35_000_000_000_000])
    monkeypatch.setattr(ids.time, "time_ns", lambda: next(clock) * 1_000_000)
    made = [ids.new_id("run") for _ in range(4)]
    assert made == sorted(made)
    assert len(set(made)) == 4


def test_a_trace_id_is_32_hex_digits_time_first_then_randomness(monkeypatch):
    millis = 1_795_000_000_123
    monkeypatch.setattr(ids.time, "time_ns", lambda: millis * 1_000_000 + 999_999)
    made = ids.new_trace_id()
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert int(made[:12], 16) == millis
    monkeypatch.setattr(ids.time, "time_ns", lambda: (millis + 1) * 1_000_000)
    later = [ids.new_trace_id() for _ in range(50)]
    assert len(set(later)) == 50 and made < min(later)  # unique, and ordered by time
