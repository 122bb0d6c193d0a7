from __future__ import annotations

import os
import time
from typing import Any

from bunbase import redis_conn
from bunbase.context import Context
from bunbase.jobs import job


@job("testkit.record")
def record(payload: dict[str, Any], ctx: Context) -> None:
    redis_conn.client().rpush("testkit:jobs", f"{ctx.tenant.id}:{payload['note']}:{ctx.trace_id}")


@job("testkit.sleep", retries=2)
def sleepy(payload: dict[str, Any], ctx: Context) -> None:
    """Sleeps the first time it runs (a marker file says it started): lets a test kill the
    worker mid-job; the retry then finishes at once."""
    marker = payload.get("marker")
    if marker and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        time.sleep(payload["seconds"])


@job("testkit.crash", retries=2)
def crash(payload: dict[str, Any], ctx: Context) -> None:
    """Kills its own process the first time it runs (a marker file says it did): what a
    segfault or the OOM killer does to a worker that does not fork per job."""
    marker = payload["marker"]
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(3)
