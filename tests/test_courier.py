"""The courier's linger: a kind registered with one is pushed at once after a quiet spell,
then at most once per linger, carrying everything that arrived meanwhile in one batch;
`settle()` does not wait for the linger."""

from __future__ import annotations

import threading
import time

from bunbase.outbox import Courier, Effect, register_dispatcher

sent: list[tuple[float, list[str]]] = []
lock = threading.Lock()


def _one(effect: Effect) -> None:
    with lock:
        sent.append((time.monotonic(), [effect.id]))


def _many(effects: list[Effect]) -> None:
    with lock:
        sent.append((time.monotonic(), [e.id for e in effects]))


register_dispatcher("test-linger", _one, batch=_many, linger=0.5)
register_dispatcher("test-slow-linger", _one, batch=_many, linger=30.0)


def effect(kind: str, n: int) -> Effect:
    return Effect(f"e{n}", "tnt", kind, {}, None, durable=False)


def wait_for(count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with lock:
            if sum(len(ids) for _, ids in sent) >= count:
                return
        time.sleep(0.005)
    raise AssertionError(f"only {sent} sent")


def test_first_push_goes_at_once_then_the_rest_ride_together_after_the_linger():
    sent.clear()
    courier = Courier()
    t0 = time.monotonic()
    courier.send([effect("test-linger", 1)])
    wait_for(1)
    assert sent[0][0] - t0 < 0.4  # no wait after a quiet spell
    for n in range(2, 6):
        courier.send([effect("test-linger", n)])
    wait_for(5)
    assert [ids for _, ids in sent] == [["e1"], ["e2", "e3", "e4", "e5"]]  # one batch
    assert sent[1][0] - sent[0][0] >= 0.45  # not before the linger was over


def test_settle_sends_what_lingers_without_waiting_for_it():
    sent.clear()
    courier = Courier()
    courier.send([effect("test-slow-linger", 1)])
    wait_for(1)
    courier.send([effect("test-slow-linger", 2)])
    t0 = time.monotonic()
    assert courier.settle(timeout=10)
    assert time.monotonic() - t0 < 5  # far less than the 30 s linger
    assert [ids for _, ids in sent] == [["e1"], ["e2"]]
