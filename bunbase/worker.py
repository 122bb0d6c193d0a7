"""The RQ worker process, and the supervisor that keeps it running.

The worker does not fork per job (SimpleWorker): forking costs ~5x throughput here, and
our jobs run inside their own transaction with errors caught, so a failing job cannot
corrupt the worker. What forking would also contain is a job that kills the process
itself (a segfault in a C extension, `os._exit`, the OOM killer). For that,
`flask bunbase worker` runs the worker as a child of a small supervisor: when the child
dies, the supervisor records the job it was running as a failed attempt ("the worker
process died", retried with backoff or dead-lettered like any failure) and starts a new
child. Ctrl-C / SIGTERM go to the child, which finishes its job first (RQ's warm shutdown).
The child dies with the supervisor (`bunbase.process.die_with_parent`): killing the
supervisor, even with SIGKILL, leaves no worker behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from types import FrameType
from typing import Any

import structlog
from flask import Flask
from rq import Queue, SimpleWorker
from rq.job import Job

from bunbase import jobs, process, redis_conn

log = structlog.get_logger("bunbase.worker")

#: a child that lived at least this long before dying is restarted at once
STABLE_AFTER = 60.0
MAX_BACKOFF = 30.0
NAME_ENV = "BUNBASE_WORKER_NAME"


def run_worker(app: Flask, queue_names: list[str], *, burst: bool = False, name: str | None = None) -> bool:
    jobs.bind_app(app)
    conn = redis_conn.client()
    queues = [Queue(n.strip(), connection=conn) for n in queue_names if n.strip()]
    worker = SimpleWorker(queues, connection=conn, name=name or os.environ.get(NAME_ENV) or None)
    return bool(worker.work(burst=burst, logging_level="WARNING"))


def supervise(app: Flask, child_argv: list[str]) -> int:
    """Run `child_argv` (a worker) until asked to stop; restart it whenever it dies."""
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failures = 0
    generation = 0
    while True:
        generation += 1
        name = f"bunbase-{socket.gethostname()}-{os.getpid()}-{generation}-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        child = subprocess.Popen(child_argv, env=process.child_env({**os.environ, NAME_ENV: name}))
        code = child.wait()
        while code is None:  # pragma: no cover - wait() returns the code
            code = child.wait()
        if stopping or code == 0:
            return 0 if stopping else code
        log.error("worker process died; starting a new one", exit_code=code, worker=name)
        with app.app_context():
            recover_dead_worker(name, f"the worker process died while running this job (exit code {code})")
        failures = 0 if time.monotonic() - started >= STABLE_AFTER else failures + 1
        if failures:
            time.sleep(min(MAX_BACKOFF, 2.0 ** (failures - 1)))
        if stopping:
            return 0


def recover_dead_worker(name: str, reason: str) -> str | None:
    """Record the job a dead worker was running as a failed attempt; return its id."""
    conn = redis_conn.client()
    worker = SimpleWorker.find_by_key(SimpleWorker.redis_worker_namespace_prefix + name, connection=conn)
    if worker is None:
        return None
    job_id = worker.get_current_job_id()
    worker.register_death()  # type: ignore[no-untyped-call]
    if job_id:
        _forget_started(conn, job_id)
        jobs.record_lost_attempt(job_id, reason)
    return job_id


def _forget_started(conn: Any, job_id: str) -> None:
    """Drop the dead run's entry from RQ's started registries (`<job id>:<execution id>`)
    and its job hash: left there, RQ's cleanup would later take the job's retry, running
    under the same id, for abandoned."""
    from rq.registry import StartedJobRegistry

    for name in jobs.QUEUES:
        registry = StartedJobRegistry(name, connection=conn)
        stale = [m for m in conn.zrange(registry.key, 0, -1) if m.decode().split(":", 1)[0] == job_id]
        if stale:
            conn.zrem(registry.key, *stale)
    conn.delete(Job.key_for(job_id))


def supervised_argv() -> list[str]:
    """The command that started this process, run again as the supervised child."""
    return [sys.executable, "-m", "flask", *sys.argv[1:], "--no-supervise"]
