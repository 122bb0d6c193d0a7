"""What the jobs bench runs: a no-op RQ function (the baseline), the same no-op as a
Bunbase job, and a workflow of no-op steps. Imported by the bench driver and, through
``flask --app 'bench.runtime_defs:bench_app()' bunbase worker``, by the workers.

Every no-op does one Redis INCR (or RPUSH of its start time, for the latency probe), the
same call on both sides, so the driver can tell when a batch is done; the first job of a
batch also stores when it started.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from bunbase import jobs, redis_conn
from bunbase.context import Context
from bunbase.workflows import workflow

RAW_QUEUE = "bench_raw"
WORKFLOW = "bench.steps"
STEPS = 10


def _mark(conn: Any, payload: dict[str, Any]) -> None:
    if "probe" in payload:
        conn.rpush(payload["probe"], repr(time.time()))
    else:
        _count(conn, payload["counter"])


def _count(conn: Any, key: str) -> None:
    if conn.incr(key) == 1:
        conn.set(f"{key}:t0", repr(time.time()))


# -- the baseline: a plain RQ job ------------------------------------------------------
def raw_noop(payload: dict[str, Any]) -> None:
    from rq import get_current_job

    job = get_current_job()
    assert job is not None
    _mark(job.connection, payload)


# -- the same through Bunbase ----------------------------------------------------------
@jobs.job("bench.noop", retries=0)
def noop(payload: dict[str, Any], ctx: Context) -> None:
    _mark(redis_conn.client(), payload)


class StepsInput(BaseModel):
    counter: str


def _step(input: StepsInput, ctx: Context) -> None:
    _count(redis_conn.client(), input.counter)


workflow(WORKFLOW, input=StepsInput, steps={f"s{i}": _step for i in range(STEPS)})


def bench_app() -> Any:
    from app import create_app

    return create_app()
