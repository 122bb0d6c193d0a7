"""Buffered writer for high-volume records: action runs, their log lines, session touches.

Writes are batched and flushed by a background thread every `interval` seconds, as soon
as `max_items` are waiting (in an HTTP request, by the request's thread once its response
is out), and on shutdown. Critical writes (the action's own rows, its
audit entry, idempotency records) never go through here: they are in the transaction.
"""

from __future__ import annotations

import atexit
import threading
import time
from datetime import datetime
from typing import Any

import structlog
from flask import Response, has_request_context
from sqlalchemy import Table, bindparam, update
from sqlalchemy.engine import Engine

from bunbase.db import insert_rows
from bunbase.models import ActionLog, ActionRun, AuthSession

log = structlog.get_logger("bunbase.buffer")

_RUNS: Table = ActionRun.__table__
_LOGS: Table = ActionLog.__table__


class WriteBuffer:
    def __init__(self, engine: Engine, *, interval: float = 2.0, max_items: int = 500) -> None:
        self.engine = engine
        self.interval = interval
        self.max_items = max_items
        self._runs: list[dict[str, Any]] = []
        self._logs: list[dict[str, Any]] = []
        self._touches: dict[str, dict[str, Any]] = {}
        self._rows: list[tuple[Table, dict[str, Any]]] = []
        self._row_touches: dict[tuple[Table, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._flushed_at = time.monotonic()

    # -- producers -------------------------------------------------------------------
    def add_run(self, run: dict[str, Any], logs: list[dict[str, Any]] | None = None) -> None:
        self._ensure_thread()
        with self._lock:
            self._runs.append(run)
            if logs:
                self._logs.extend(logs)
            size = self._size()
        # In an HTTP request the request's own thread flushes a full buffer once its
        # response has gone out (`flush_after_response`): the thread here, running Python
        # beside the requests, would hold up whichever of them has the write lock.
        if size >= self.max_items and not has_request_context():
            self._wake.set()

    def full(self) -> bool:
        with self._lock:
            return self._size() >= self.max_items

    def _size(self) -> int:
        """Under the lock: what counts toward `max_items`."""
        return len(self._runs) + len(self._logs)

    def flush_after_response(self, response: Response) -> Response:
        """An `after_request` hook: a full buffer is flushed when the response is closed
        (after its body was sent). The interval flush still runs in the thread."""
        if self.full():
            response.call_on_close(self.flush)
        return response

    def touch_session(self, session_id: str, at: datetime, ip: str | None) -> None:
        self._ensure_thread()
        with self._lock:
            self._touches[session_id] = {"sid": session_id, "at": at, "ip": ip}

    def add_row(self, table: Table, row: dict[str, Any]) -> None:
        """Any other append-only record that must survive the action's rollback."""
        self._ensure_thread()
        with self._lock:
            self._rows.append((table, row))

    def touch_row(self, table: Table, row_id: str, values: dict[str, Any]) -> None:
        """A coalesced UPDATE of one row by `id` (last-used stamps); the latest values win."""
        self._ensure_thread()
        with self._lock:
            self._row_touches[(table, row_id)] = dict(values)

    def pending_run(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            for run in self._runs:
                if run["id"] == run_id:
                    return run
        return None

    # -- flushing --------------------------------------------------------------------
    def flush(self) -> int:
        """Write everything waiting; returns the number of runs written."""
        with self._flush_lock:
            self._flushed_at = time.monotonic()
            with self._lock:
                runs, self._runs = self._runs, []
                logs, self._logs = self._logs, []
                touches, self._touches = list(self._touches.values()), {}
                rows, self._rows = self._rows, []
                row_touches, self._row_touches = self._row_touches, {}
            if not (runs or logs or touches or rows or row_touches):
                return 0
            try:
                # No write_intent(): this transaction only writes, and on SQLite its first
                # INSERT takes the write lock once every row's parameters are made
                # (`insert_rows`), so the lock is held for the statements alone.
                with self.engine.begin() as conn:
                    insert_rows(conn, _ordered(runs, logs, rows))
                    if touches:
                        table = AuthSession.__table__
                        conn.execute(
                            update(table)
                            .where(table.c.id == bindparam("sid"))
                            .values(last_seen_at=bindparam("at"), ip=bindparam("ip")),
                            touches,
                        )
                    for (table, cols), batch in _group_touches(row_touches).items():
                        conn.execute(
                            update(table)
                            .where(table.c.id == bindparam("_row_id"))
                            .values({c: bindparam(f"_v_{c}") for c in cols}),
                            batch,
                        )
            except Exception:
                log.exception("buffer flush failed; records kept for the next flush")
                with self._lock:
                    self._runs[:0] = runs
                    self._logs[:0] = logs
                    self._rows[:0] = rows
                    for key, values in row_touches.items():
                        self._row_touches.setdefault(key, values)
                return 0
            return len(runs)

    def _ensure_thread(self) -> None:
        import os

        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="bunbase-buffer", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def _loop(self) -> None:
        while not self._stop.is_set():
            # every `interval` since the last flush, whoever made it: under load the
            # requests' own flushes come first and this thread stays out of their way
            woken = self._wake.wait(max(0.0, self._flushed_at + self.interval - time.monotonic()))
            if not woken and time.monotonic() < self._flushed_at + self.interval:
                continue  # flushed meanwhile; a wake-up set since then is still set
            self._wake.clear()  # the flush takes whatever a wake-up was for
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)
        self._thread = None
        self.flush()


def _ordered(
    runs: list[dict[str, Any]], logs: list[dict[str, Any]], rows: list[tuple[Table, dict[str, Any]]]
) -> list[tuple[Table, dict[str, Any]]]:
    """Runs, then log lines, then the other rows, each table's rows together (one
    executemany per table and set of keys)."""
    out = [(_RUNS, run) for run in runs] + [(_LOGS, line) for line in logs]
    grouped: dict[Table, list[dict[str, Any]]] = {}
    for table, row in rows:
        grouped.setdefault(table, []).append(row)
    out.extend((table, row) for table, batch in grouped.items() for row in batch)
    return out


def _group_touches(
    touches: dict[tuple[Table, str], dict[str, Any]],
) -> dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]]:
    grouped: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
    for (table, row_id), values in touches.items():
        cols = tuple(sorted(values))
        params = {"_row_id": row_id, **{f"_v_{c}": values[c] for c in cols}}
        grouped.setdefault((table, cols), []).append(params)
    return grouped
