"""`flask --app app bunbase ...`: migrate, tenant seed, worker, scheduler, openapi, routes, dev."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from bunbase import guards as guard_mod


@click.group("bunbase", help="Bunbase platform commands.")
def cli() -> None:
    pass


@cli.command("migrate", help="Apply every pending migration (all module branches).")
@with_appcontext
def migrate_cmd() -> None:
    from flask_migrate import upgrade

    upgrade(revision="heads")
    click.echo("migrations applied")


@cli.group("tenant", help="Tenant registry commands.")
def tenant() -> None:
    pass


@tenant.command("seed", help="Create N tenants, each with an admin user.")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print the created tenants as JSON.")
@with_appcontext
def tenant_seed(count: int, as_json: bool) -> None:
    from bunbase.seed import seed_tenants

    seeded = seed_tenants(count)
    if as_json:
        click.echo(json.dumps([s.__dict__ for s in seeded], indent=2))
        return
    for s in seeded:
        click.echo(f"{s.slug}  {s.tenant_id}  {s.admin_email}  {s.admin_password}")


@cli.command("worker", help="Run an RQ worker (queues high, default, low in that order).")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--queues", default="high,default,low", show_default=True)
@click.option(
    "--supervise/--no-supervise",
    default=True,
    show_default=True,
    help="Run the worker as a child that is restarted if a job kills it (not with --burst).",
)
@with_appcontext
def worker(burst: bool, queues: str, supervise: bool) -> None:
    from bunbase import process
    from bunbase.worker import run_worker, supervised_argv
    from bunbase.worker import supervise as run_supervisor

    process.die_with_parent()  # started by a supervisor (`make run`, or this command): never outlive it
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if supervise and not burst:
        raise SystemExit(run_supervisor(app, supervised_argv()))
    run_worker(app, queues.split(","), burst=burst)


@cli.command("scheduler", help="Run the scheduler loop (one active at a time).")
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@with_appcontext
def scheduler(once: bool) -> None:
    from bunbase import process
    from bunbase.scheduler import run_scheduler

    process.die_with_parent()
    run_scheduler(current_app._get_current_object(), once=once)  # type: ignore[attr-defined]


@cli.command("openapi", help="Write the OpenAPI 3.1 document.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@with_appcontext
def openapi_cmd(out: Path | None) -> None:
    from bunbase.openapi import build_spec

    text = json.dumps(build_spec(current_app.extensions["bunbase"].registry), indent=2)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text + "\n")
        click.echo(f"wrote {out}")


@cli.command("routes", help="List actions with their triggers and guards.")
@with_appcontext
def routes() -> None:
    registry = current_app.extensions["bunbase"].registry
    for name in sorted(registry.actions):
        act = registry.actions[name]
        prefix = act.module.api_prefix if act.module else ""
        trig = [f"POST /v1/actions/{name}/run"]
        trig += [f"{t.method} /v1{t.openapi_path(prefix)}" for t in act.api_triggers]
        trig += [t.describe() for t in act.triggers if t.type != "api"]
        gds = [guard_mod.describe(g) for g in act.all_guards()] or ["(none)"]
        kind = "write" if act.mutating else "read"
        click.echo(f"{name}  [{kind}]")
        click.echo(f"    triggers: {'; '.join(trig)}")
        click.echo(f"    guards:   {', '.join(gds)}")


@cli.command("dev", help="Run web + worker + scheduler with embedded SQLite and Redis.")
@click.option("--port", envvar="PORT", default=5000, show_default=True, type=int)
@click.option("--host", envvar="HOST", default="127.0.0.1", show_default=True)
@with_appcontext
def dev(port: int, host: str) -> None:
    from bunbase.devserver import run_dev

    run_dev(current_app._get_current_object(), host=host, port=port)  # type: ignore[attr-defined]
