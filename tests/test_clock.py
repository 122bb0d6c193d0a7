"""The movable clock and duration parsing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bunbase.clock import Clock, clock, parse_duration


@pytest.mark.parametrize(("text", "expected"), [
    ("30s", timedelta(seconds=30)),
    ("15m", timedelta(minutes=15)),
    ("7d", timedelta(days=7)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("250ms", timedelta(milliseconds=250)),
    ("2w", timedelta(weeks=2)),
    (90, timedelta(seconds=90)),
    (timedelta(hours=1), timedelta(hours=1)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "10", "1x", "h", "1h foo", "-5s"])
def test_parse_duration_rejects_garbage(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_advance_moves_now_forward():
    c = Clock()
    before = c.now()
    c.advance("2h")
    assert c.now() - before >= timedelta(hours=2)
    assert c.now() - before < timedelta(hours=2, seconds=5)
    c.reset()
    assert c.now() - before < timedelta(seconds=5)


def test_freeze_and_advance():
    c = Clock()
    at = datetime(2030, 1, 1, 12, 0)
    c.freeze(at)
    assert c.now() == at
    assert c.advance("90m") == datetime(2030, 1, 1, 13, 30)
    assert c.now() == datetime(2030, 1, 1, 13, 30)
    assert c.aware().tzinfo is not None
    c.reset()
    assert c.now() != datetime(2030, 1, 1, 13, 30)


def test_now_is_naive_utc():
    assert clock.now().tzinfo is None


def test_clock_is_reset_between_tests_part_1(app):
    from datetime import UTC

    clock.advance("10d")
    assert clock.now() - datetime.now(UTC).replace(tzinfo=None) >= timedelta(days=10) - timedelta(
        seconds=5
    )


def test_clock_is_reset_between_tests_part_2(app):
    # the fixture's clean-up resets the global clock after every test using the app
    from datetime import UTC

    assert abs(clock.now() - datetime.now(UTC).replace(tzinfo=None)) < timedelta(seconds=5)


def test_advanced_clock_drives_session_expiry(client, tenant_a):
    assert client.get("/v1/auth/me", headers=tenant_a.headers()).status_code == 200
    clock.advance("8d")
    assert client.get("/v1/auth/me", headers=tenant_a.headers()).status_code == 401
    clock.reset()
    assert client.get("/v1/auth/me", headers=tenant_a.headers()).status_code == 200


def test_reset_clears_a_freeze():
    c = Clock()
    c.freeze(datetime(2030, 1, 1, 12, 0))
    c.reset()
    first = c.now()
    assert abs(first - clock.now()) < timedelta(seconds=5)  # the wall clock again
    # and it moves again: a frozen clock would return the same instant
    deadline = datetime.now() + timedelta(seconds=2)
    while c.now() == first and datetime.now() < deadline:
        pass
    assert c.now() > first
