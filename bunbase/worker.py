"""The RQ worker process. It does not fork per job (SimpleWorker): forking costs ~5x
throughput here, and our jobs run inside their own transaction with errors caught, so a
failing job cannot corrupt the worker.
"""

from __future__ import annotations

from flask import Flask
from rq import Queue, SimpleWorker

from bunbase import jobs, redis_conn


def run_worker(app: Flask, queue_names: list[str], *, burst: bool = False) -> bool:
    jobs.bind_app(app)
    conn = redis_conn.client()
    queues = [Queue(name.strip(), connection=conn) for name in queue_names if name.strip()]
    worker = SimpleWorker(queues, connection=conn)
    return bool(worker.work(burst=burst, logging_level="WARNING"))
