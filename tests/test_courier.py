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


def test_in_a_request_the_push_goes_out_from_the_requests_thread_once_its_response_is_closed(
        app, monkeypatch):
    from bunbase import outbox

    monkeypatch.setattr(outbox, "INLINE_GRACE", 1.0)  # the thread's wait before it steps in
    sent.clear()
    courier = Courier()
    with app.test_request_context("/v1/x"):
        courier.send([effect("test-linger", 1)])
        response = courier.push_after_response(app.response_class("{}"))
    time.sleep(0.1)
    assert sent == []  # the courier's thread leaves it to the request (the grace is not over)
    response.close()  # what the WSGI server does once the body is out
    assert [ids for _, ids in sent] == [["e1"]]  # sent, in this thread, before close() returned
    with app.test_request_context("/v1/x"):
        courier.send([effect("test-linger", 2)])
        courier.push_after_response(app.response_class("{}")).close()
    assert [ids for _, ids in sent] == [["e1"]]  # within the linger: not yet, and not lost:
    wait_for(2)  # the thread sends it once the linger and the grace are over
    assert sent[1][1] == ["e2"] and sent[1][0] - sent[0][0] >= 1.5  # linger + grace
