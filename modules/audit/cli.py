"""`flask --app app bunbase audit seal|verify`."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from bunbase import audit_chain
from bunbase.db import db
from bunbase.models import Tenant
from bunbase.tenancy import unscoped


@click.group("audit", help="The audit log's hash chain.")
def cli() -> None:
    pass


def _tenants(slug: str | None) -> list[Tenant]:
    with unscoped():
        stmt = select(Tenant).order_by(Tenant.slug)
        if slug:
            stmt = stmt.where((Tenant.slug == slug) | (Tenant.id == slug))
        return list(db.session.scalars(stmt))


@cli.command("seal", help="Seal every waiting audit entry (the scheduler does this each tick).")
@with_appcontext
def seal() -> None:
    done = audit_chain.seal_all(db.engine)
    click.echo(f"sealed {sum(done.values())} entries in {len(done)} workspace(s)")


@cli.command("verify", help="Recompute the hash chain; exit 1 if any entry was tampered with.")
@click.option("--tenant", "slug", default=None, help="Workspace slug or id (default: all).")
@with_appcontext
def verify(slug: str | None) -> None:
    tenants = _tenants(slug)
    if slug and not tenants:
        raise click.ClickException(f"no workspace {slug!r}")
    broken = 0
    for t in tenants:
        result = audit_chain.verify(db.engine, t.id)
        click.echo(f"{t.slug}: {result.describe()}")
        broken += not result.ok
    if broken:
        click.echo(f"TAMPERED: the audit chain of {broken} workspace(s) is broken", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"audit chain OK in {len(tenants)} workspace(s)")
