"""Audit pages in Studio: the explorer (with the chain banner), one entry, and "why?"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from bunbase.clock import clock
from bunbase.db import db
from bunbase.models import ActionRun, AuditEntry
from modules.audit import services
from studio.auth import current_tenant
from studio.paging import keyset
from studio.runner import error_message, run_action
from studio.views import WINDOWS, htmx

blueprint = Blueprint("audit_studio", __name__, template_folder="templates")

FILTERS = ("actor", "action", "target", "org", "window", "from", "to")


def _time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value).replace(tzinfo=None) if value else None
    except ValueError:
        return None


def _filters() -> tuple[dict[str, str], services.EventFilters]:
    f = {k: request.args.get(k, "").strip() for k in FILTERS}
    window = WINDOWS.get(f["window"])
    since = _time(f["from"]) or (clock.now() - window if window else None)
    return f, services.EventFilters(
        org_id=f["org"] or None,
        actor=f["actor"] or None,
        action=f["action"] or None,
        target=f["target"] or None,
        since=since,
        until=_time(f["to"]),
    )


def _status() -> dict[str, Any]:
    tenant_id = current_tenant(current_user).id
    return {"status": services.chain_status(tenant_id)}


@blueprint.get("/events")
def events() -> str:
    tenant_id = current_tenant(current_user).id
    services.seal_before_read(db.session, tenant_id)
    f, query = _filters()
    stmt = services.filtered(db.session, query)
    page = keyset(db.session, stmt, AuditEntry.id, "audit_studio.events")  # type: ignore[arg-type]
    runs = set(
        db.session.scalars(
            select(ActionRun.id).where(ActionRun.id.in_([e.run_id for e in page.rows if e.run_id]))
        )
    )
    context = {"page": page, "filters": f, "runs": runs, "windows": list(WINDOWS)}
    if htmx and htmx.target == "audit-results":
        return render_template("audit/_events_results.html", **context)
    return render_template(
        "audit/events.html",
        action_names=services.action_names(db.session),
        **context,
        **_status(),
    )


@blueprint.get("/events/<entry_id>")
def events_detail(entry_id: str) -> str:
    services.seal_before_read(db.session, current_tenant(current_user).id)
    entry = services.get_entry(db.session, entry_id)
    if entry is None:
        abort(404)
    run = db.session.get(ActionRun, entry.run_id) if entry.run_id else None
    return render_template(
        "audit/event_detail.html",
        entry=entry,
        run=run,
        rows=services.diff_rows(entry.diff),
        decisions=services.decisions_of_run(db.session, entry.run_id),
    )


@blueprint.post("/chain/verify")
def verify() -> Any:
    outcome = run_action("audit.chain.verify", {})
    if outcome.status != 200:
        if htmx:
            return render_template("audit/_chain_status.html", error=error_message(outcome), **_status())
        flash(error_message(outcome), "error")
    elif not htmx:
        data = outcome.body["data"]
        if data["ok"]:
            flash(f"Audit chain OK: {data['checked']} sealed entries verified.", "success")
        else:
            flash(f"Audit chain broken at seq {data['firstBrokenSeq']}: {data['reason']}", "error")
    if htmx:
        return render_template("audit/_chain_status.html", **_status())
    return redirect(url_for("audit_studio.events"))


@blueprint.get("/why")
def why() -> str:
    db.session.commit()  # see the decisions just flushed (SQLite snapshots per transaction)
    f = {k: request.args.get(k, "").strip() for k in ("email", "org", "permission")}
    explanation = None
    if f["email"] and f["org"] and f["permission"]:
        explanation = services.explain(
            db.session, email=f["email"], org_id=f["org"], permission=f["permission"]
        )
    runs: set[str] = set()
    if explanation and explanation.history:
        ids = [d.run_id for d in explanation.history if d.run_id]
        runs = set(db.session.scalars(select(ActionRun.id).where(ActionRun.id.in_(ids))))
    context = {"filters": f, "x": explanation, "runs": runs}
    if htmx and htmx.target == "why-results":
        return render_template("audit/_why_results.html", **context)
    return render_template(
        "audit/why.html",
        **context,
        permissions=services.permission_catalog(),
        emails=services.users(db.session),
        orgs=services.org_ids(db.session),
    )
