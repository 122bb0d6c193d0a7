"""Profile the bench scenarios in one process with Flask's test client (no HTTP, no gunicorn).

    .venv/bin/python bench/profile_api.py [--requests 2000] [--top 25] [--scenario b]

Same set-up as bench/api.py (temp instance dir, fresh SQLite or Postgres, embedded Redis
unless REDIS_URL, migrate, seed, login), then for each scenario: a warm-up, the mean
wall/CPU time per request, and cProfile's top functions by cumulative and own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import (  # noqa: E402
    BenchError,
    Scenario,
    _json_tail,
    auth_headers,
    bench_org,
    database,
    flask_cli,
    redis,
    scenarios,
)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--scenario", action="append", help="a, b, c or d (default: all)")
    p.add_argument("--sort", default="cumulative,tottime")
    p.add_argument("--dump", type=Path, help="write each scenario's pstats to DIR/<key>.prof")
    p.add_argument("--no-profile", action="store_true",
                   help="timings only (to run under a sampling profiler such as py-spy)")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bunbase-profile-"))
    env = {**os.environ, "BUNBASE_INSTANCE_DIR": str(tmp / "instance"),
           "BUNBASE_LOG_LEVEL": "WARNING", "SECRET_KEY": secrets.token_urlsafe(32)}
    try:
        with database(env) as db_kind, redis(env, tmp / "instance") as redis_kind:
            flask_cli(env, "migrate")
            tenant = _json_tail(flask_cli(env, "tenant", "seed", "--count", "1", "--json"))[0]
            os.environ.update(env)
            from bench.api import bench_app

            app = bench_app()
            client = app.test_client()
            resp = client.post("/v1/auth/login", json={
                "email": tenant["admin_email"], "password": tenant["admin_password"]},
                headers={"X-Tenant-Id": tenant["tenant_id"]})
            if resp.status_code != 200:
                raise BenchError(f"login failed: {resp.status_code} {resp.get_data(True)}")
            token = resp.get_json()["data"]["token"]

            def request(method: str, path: str, body: object,
                        headers: dict[str, str]) -> tuple[int, object]:
                r = client.open(path, method=method, json=body, headers=headers)
                return r.status_code, r.get_json(silent=True)

            org_id = bench_org(request, auth_headers(tenant["tenant_id"], token))
            print(f"# profile: {db_kind}; redis {redis_kind}; {args.requests} requests each\n")
            for sc in scenarios(tenant["tenant_id"], token, org_id):
                if args.scenario and sc.key not in args.scenario:
                    continue
                profile(client, sc, args)
            from bunbase.outbox import courier

            courier.settle()  # what is still lingering goes out while the Redis is up
    except BenchError as err:
        print(f"profile: FAILED: {err}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def profile(client: object, sc: Scenario, args: argparse.Namespace) -> None:
    counter = iter(range(10**9))

    def one() -> None:
        headers = dict(sc.headers)
        if sc.unique_idempotency_key:
            headers["Idempotency-Key"] = f"prof-{next(counter)}"
        resp = client.open(sc.path, method=sc.method, data=sc.body,  # type: ignore[attr-defined]
                           headers=headers)
        if not 200 <= resp.status_code <= 299:
            raise BenchError(f"{sc.route}: {resp.status_code} {resp.get_data(True)[:300]}")

    for _ in range(min(200, args.requests)):
        one()
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.requests):
        one()
    wall = (time.perf_counter() - w0) / args.requests * 1000
    cpu = (time.process_time() - c0) / args.requests * 1000
    if args.no_profile:
        print(f"## {sc.key}) {sc.title} `{sc.route}`: {wall:.3f} ms wall, {cpu:.3f} ms CPU per request\n")
        return
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(args.requests):
        one()
    prof.disable()
    print(f"## {sc.key}) {sc.title} `{sc.route}`: {wall:.3f} ms wall, {cpu:.3f} ms CPU "
          f"per request (unprofiled)\n")
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        prof.dump_stats(str(args.dump / f"{sc.key}.prof"))
    for key in args.sort.split(","):
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out).strip_dirs().sort_stats(key)
        stats.print_stats(args.top)
        text = out.getvalue()
        print(f"### by {key}\n```\n{text[text.find('ncalls'):].rstrip()}\n```\n")


if __name__ == "__main__":
    sys.exit(main())
