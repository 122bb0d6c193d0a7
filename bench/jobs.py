"""Jobs bench: raw RQ against `ctx.jobs` and workflow steps, with the same workers.

Run from the repo root (``make bench`` runs it after ``bench/api.py``)::

    .venv/bin/python bench/jobs.py [--rounds 3] [--jobs 2000] [--workflows 100] [--workers 2]

One run sets everything up from nothing and tears it all down again, as bench/api.py does
(a temp instance dir with a fresh SQLite database, or a fresh Postgres database when
DATABASE_URL is set; the Redis at REDIS_URL, or an embedded one). Then:

1. ``--workers`` plain RQ workers (``rq worker -w rq.worker.SimpleWorker``) on their own
   queue, and as many Bunbase workers (``flask bunbase worker``, the same SimpleWorker
   class) on high/default/low; all of them idle before anything is measured;
2. per round (5 by default; which side goes first alternates), interleaved; each batch
   is committed first and then handed to RQ in one pipeline, so the idle workers see all
   of it at once, and throughput runs from the
   first job's start to the last job's end (the workers' rate; the enqueuer's is
   reported apart):
   - **raw RQ**: ``--jobs`` no-op jobs pushed with ``Queue.enqueue_many``;
   - **ctx.jobs**: the same number of no-op jobs through ``ctx.jobs.enqueue`` (50 per
     transaction, then the batched after-commit dispatch); each run loads its row,
     takes a tenant slot, runs the handler in a transaction and records the outcome;
   - **workflow steps**: ``--workflows`` runs of a 10-step no-op workflow started through
     ``ctx.workflows.start`` (50 per transaction); steps/s until every step has run;
3. the enqueue→start latency, idle workers, one job at a time, raw and ``ctx.jobs``
   alternating (``--probes`` each): from just before the enqueue call (for ``ctx.jobs``,
   before its transaction opens) to the first line of the job's handler;
4. a markdown table on stdout and in ``bench/results/jobs.md``.

Each no-op does one Redis call (INCR, or RPUSH of its start time for the latency probe),
the same on both sides. Timing is never asserted: the exit status is 0 unless the bench
itself broke (set-up failed, a worker died, or a batch did not finish in time).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/jobs.py` puts bench/ there, not the root

from bench.api import BIN, BenchError, _json_tail, database, flask_cli, git_rev, redis, run_meta  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BATCH = 50
DONE_TIMEOUT = 300.0


@dataclass
class Round:
    raw: float  # jobs/s
    ours: float  # jobs/s
    steps: float  # workflow steps/s


# -- workers ---------------------------------------------------------------------------
@contextlib.contextmanager
def workers(env: dict[str, str], tmp: Path, count: int) -> Iterator[None]:
    from rq import Queue, Worker

    from bench.runtime_defs import RAW_QUEUE
    from bunbase import redis_conn

    log_path = tmp / "workers.log"
    procs: list[subprocess.Popen[bytes]] = []
    raw_cmd = [str(BIN / "rq"), "worker", "-w", "rq.worker.SimpleWorker", "-u", env["REDIS_URL"],
               "--logging_level", "WARNING", "-q", RAW_QUEUE]
    ours_cmd = [str(BIN / "flask"), "--app", "bench.runtime_defs:bench_app()", "bunbase", "worker"]
    with open(log_path, "ab") as log:
        for _ in range(count):
            for cmd in (raw_cmd, ours_cmd):
                procs.append(subprocess.Popen(cmd, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                                              stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
    try:
        conn = redis_conn.client()
        deadline = time.monotonic() + 90
        while True:
            raw_up = len(Worker.all(queue=Queue(RAW_QUEUE, connection=conn)))
            ours_up = len(Worker.all(queue=Queue("default", connection=conn)))
            if raw_up >= count and ours_up >= count:
                break
            dead = [p for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise BenchError("workers did not come up:\n"
                                 + log_path.read_text(errors="replace")[-4000:])
            time.sleep(0.1)
        yield
        if any(p.poll() is not None for p in procs):
            raise BenchError("a worker died during the bench:\n"
                             + log_path.read_text(errors="replace")[-4000:])
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=15)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)


def wait_for(conn: Any, key: str, target: int) -> float:
    """Poll the counter until it reaches target; return the seconds from the batch's
    first job start to the moment it did."""
    deadline = time.monotonic() + DONE_TIMEOUT
    while time.monotonic() < deadline:
        if int(conn.get(key) or 0) >= target:
            return time.time() - float(conn.get(f"{key}:t0"))
        time.sleep(0.002)
    raise BenchError(f"{key} reached {int(conn.get(key) or 0)} of {target} in {DONE_TIMEOUT:g} s")


# -- the three measurements ------------------------------------------------------------
class Bench:
    def __init__(self, app: Any, tenant_id: str) -> None:
        from bunbase import redis_conn

        self.app = app
        self.tenant_id = tenant_id
        self.conn = redis_conn.client()
        self.enqueue_rates: dict[str, list[float]] = {"raw": [], "ours": []}

    def _in_tx(self, fn: Callable[[Any], None], *, send: bool = True) -> list[Any]:
        """Run fn(ctx) in one transaction as an action would, then dispatch after commit
        (or, with send=False, return the effects for the caller to dispatch)."""
        from bunbase.context import SYSTEM, Context
        from bunbase.db import db, write_intent
        from bunbase.ids import new_id, new_trace_id
        from bunbase.outbox import dispatch
        from bunbase.tenancy import tenant_scope
        from bunbase.tenancy_cache import tenant_ref

        with self.app.app_context(), tenant_scope(self.tenant_id), write_intent():
            ctx = Context(tenant=tenant_ref(self.tenant_id), actor=SYSTEM, trace_id=new_trace_id(),
                          run_id=new_id("run"), db=db.session, trigger="bench")
            fn(ctx)
            db.session.commit()
            if send:
                dispatch(ctx.outbox.items)
            db.session.remove()
            return [] if send else list(ctx.outbox.items)

    def raw(self, n: int) -> float:
        from rq import Queue

        from bench.runtime_defs import RAW_QUEUE

        key = f"bench:raw:{secrets.token_hex(4)}"
        q = Queue(RAW_QUEUE, connection=self.conn)
        t0 = time.perf_counter()
        # one pipeline: the idle workers see the whole batch at once
        q.enqueue_many([
            Queue.prepare_data("bench.runtime_defs.raw_noop", args=({"counter": key},),
                               result_ttl=0)  # RQ's default timeout, as a plain user gets
            for _ in range(n)
        ])
        self.enqueue_rates["raw"].append(n / (time.perf_counter() - t0))
        return n / wait_for(self.conn, key, n)

    def ours(self, n: int) -> float:
        from bunbase.outbox import dispatch

        key = f"bench:ours:{secrets.token_hex(4)}"
        t0 = time.perf_counter()
        effects: list[Any] = []
        for start in range(0, n, BATCH):
            count = min(n, start + BATCH) - start

            def enqueue(ctx: Any, count: int = count) -> None:
                for _ in range(count):
                    ctx.jobs.enqueue("bench.noop", {"counter": key})

            effects += self._in_tx(enqueue, send=False)
        with self.app.app_context():
            dispatch(effects)  # batched: the idle workers see the whole batch at once
        self.enqueue_rates["ours"].append(n / (time.perf_counter() - t0))
        return n / wait_for(self.conn, key, n)

    def workflow_steps(self, runs: int) -> float:
        from bench.runtime_defs import STEPS, WORKFLOW
        from bunbase.outbox import dispatch

        key = f"bench:wf:{secrets.token_hex(4)}"
        effects: list[Any] = []
        for start in range(0, runs, BATCH):
            count = min(runs, start + BATCH) - start

            def begin(ctx: Any, count: int = count) -> None:
                for _ in range(count):
                    ctx.workflows.start(WORKFLOW, {"counter": key})

            effects += self._in_tx(begin, send=False)
        with self.app.app_context():
            dispatch(effects)
        total = runs * STEPS
        return total / wait_for(self.conn, key, total)

    def latency(self, probes: int) -> tuple[list[float], list[float]]:
        from rq import Queue

        from bench.runtime_defs import RAW_QUEUE

        q = Queue(RAW_QUEUE, connection=self.conn)
        raw: list[float] = []
        ours: list[float] = []
        for i in range(probes):
            key = f"bench:probe:{secrets.token_hex(4)}"
            t0 = time.time()
            if i % 2 == 0:
                q.enqueue_call("bench.runtime_defs.raw_noop", args=({"probe": key},), result_ttl=0)
                sink = raw
            else:
                self._in_tx(lambda ctx, key=key: ctx.jobs.enqueue("bench.noop", {"probe": key}))
                sink = ours
            got = self.conn.blpop([key], timeout=30)
            if got is None:
                raise BenchError("a latency probe did not start within 30 s")
            sink.append((float(got[1]) - t0) * 1000)
            self.conn.delete(key)
            time.sleep(0.02)  # let the job finish: every probe meets idle workers
        return raw, ours


# -- report ----------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def render(rounds: list[Round], raw_lat: list[float], ours_lat: list[float],
           enqueue: dict[str, list[float]], meta: dict[str, str]) -> str:
    med = statistics.median
    raw = med(r.raw for r in rounds)
    ours = med(r.ours for r in rounds)
    steps = med(r.steps for r in rounds)
    ours_ratio = med(r.ours / r.raw for r in rounds)
    steps_ratio = med(r.steps / r.raw for r in rounds)
    raw_p50, ours_p50 = pct(raw_lat, 0.5), pct(ours_lat, 0.5)
    lat_ratio = ours_p50 / raw_p50 if raw_p50 else float("inf")

    def verdict(ok: bool) -> str:
        return "**PASS**" if ok else "**MISS**"

    lines = ["# Bunbase jobs bench", ""]
    lines += [f"- **{k}**: {v}" for k, v in meta.items()]
    lines += [
        "",
        "| | measure | value | vs raw RQ | target | result |",
        "|---|---|---:|---:|---|---|",
        f"| a | raw RQ no-op jobs/s | {raw:,.0f} | 100% | - | baseline |",
        f"| b | `ctx.jobs` no-op jobs/s | {ours:,.0f} | {ours_ratio:.0%} | >= 70% | "
        f"{verdict(ours_ratio >= 0.70)} |",
        f"| c | enqueue→start p50, raw RQ | {raw_p50:.2f} ms (p99 {pct(raw_lat, 0.99):.2f}) "
        "| - | - | baseline |",
        f"| d | enqueue→start p50, `ctx.jobs` | {ours_p50:.2f} ms (p99 {pct(ours_lat, 0.99):.2f}) "
        f"| {lat_ratio:.1f}x | <= 2x | {verdict(lat_ratio <= 2.0)} |",
        f"| e | workflow steps/s (10-step no-op workflow) | {steps:,.0f} | {steps_ratio:.0%} "
        f"| >= 50% | {verdict(steps_ratio >= 0.50)} |",
        f"| f | enqueue rate, one process, batches of {BATCH} | raw {med(enqueue['raw']):,.0f}/s, "
        f"ctx.jobs {med(enqueue['ours']):,.0f}/s | {med(enqueue['ours']) / med(enqueue['raw']):.0%} "
        "| - | info |",
        "",
        "Per round (ratio to that round's raw RQ jobs/s):",
        "",
    ]
    for i, r in enumerate(rounds, 1):
        lines.append(f"- round {i}: raw {r.raw:,.0f}/s, ctx.jobs {r.ours:,.0f}/s "
                     f"({r.ours / r.raw:.0%}), workflow steps {r.steps:,.0f}/s "
                     f"({r.steps / r.raw:.0%})")
    lines += ["", "Throughputs are medians over the rounds, each ratio the median of the "
              "per-round ratios; latencies are over every probe. Absolute numbers move with "
              "whatever else the machine is doing; the paired ratios much less.", ""]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=int(env("BENCH_ROUNDS", "5")))
    p.add_argument("--jobs", type=int, default=int(env("BENCH_JOBS", "2000")))
    p.add_argument("--workflows", type=int, default=int(env("BENCH_WORKFLOWS", "100")))
    p.add_argument("--workers", type=int, default=int(env("BENCH_JOB_WORKERS", "2")))
    p.add_argument("--probes", type=int, default=int(env("BENCH_PROBES", "200")))
    p.add_argument("--out", type=Path, default=RESULTS / "jobs.md")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="bunbase-jobs-bench-"))
    instance = tmp / "instance"
    env = {**os.environ, "BUNBASE_INSTANCE_DIR": str(instance), "BUNBASE_LOG_LEVEL": "WARNING",
           "SECRET_KEY": secrets.token_urlsafe(32), "PYTHONUNBUFFERED": "1"}
    load_before = os.getloadavg()
    rounds: list[Round] = []
    try:
        with database(env) as db_kind, redis(env, instance) as redis_kind:
            flask_cli(env, "migrate")
            tenant = _json_tail(flask_cli(env, "tenant", "seed", "--count", "1", "--json"))[0]
            os.environ.update({k: env[k] for k in ("BUNBASE_INSTANCE_DIR", "BUNBASE_LOG_LEVEL",
                                                   "SECRET_KEY", "REDIS_URL")})
            if "DATABASE_URL" in env:
                os.environ["DATABASE_URL"] = env["DATABASE_URL"]
            from bench.runtime_defs import bench_app
            from bunbase import jobs

            app = bench_app()
            jobs.bind_app(app)
            bench = Bench(app, tenant["tenant_id"])
            with workers(env, tmp, args.workers):
                print(f"bench: {args.workers} raw RQ + {args.workers} Bunbase workers up; "
                      f"{args.rounds} round(s) of {args.jobs} jobs and {args.workflows} "
                      "workflows", flush=True)
                bench.raw(min(200, args.jobs))  # warm-up: imports, connections, caches
                bench.ours(min(200, args.jobs))
                for i in range(args.rounds):
                    # the side measured first alternates, so a drift in the machine's speed
                    # during a round does not always favour the same side
                    if i % 2 == 0:
                        raw_rate = bench.raw(args.jobs)
                        ours_rate = bench.ours(args.jobs)
                        steps_rate = bench.workflow_steps(args.workflows)
                    else:
                        steps_rate = bench.workflow_steps(args.workflows)
                        ours_rate = bench.ours(args.jobs)
                        raw_rate = bench.raw(args.jobs)
                    r = Round(raw=raw_rate, ours=ours_rate, steps=steps_rate)
                    rounds.append(r)
                    print(f"bench: round {i + 1}: raw {r.raw:,.0f} jobs/s, ctx.jobs "
                          f"{r.ours:,.0f} jobs/s, workflow {r.steps:,.0f} steps/s", flush=True)
                raw_lat, ours_lat = bench.latency(args.probes * 2)
                enqueue_rates = bench.enqueue_rates
            with app.app_context():
                from bunbase.db import db

                db.session.remove()
                db.engine.dispose()
    except BenchError as err:
        print(f"bench: FAILED: {err}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    meta = {
        **run_meta(load_before, db_kind, redis_kind),
        "workers": f"{args.workers} x `rq worker -w rq.worker.SimpleWorker` (raw) and "
                   f"{args.workers} x `flask bunbase worker` (SimpleWorker), all running "
                   "throughout; each side only has work while it is measured",
        "per round": f"{args.jobs} raw jobs, {args.jobs} ctx.jobs jobs, {args.workflows} "
                     f"workflows x 10 steps; enqueued in batches of {BATCH}",
        "latency probes": f"{args.probes} per side, one at a time, idle workers",
        "commit": git_rev(),
        "command": "`.venv/bin/python bench/jobs.py` (`make bench`)",
    }
    report = render(rounds, raw_lat, ours_lat, enqueue_rates, meta)
    print()
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
