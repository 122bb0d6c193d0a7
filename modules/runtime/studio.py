"""Runtime pages in Studio: Jobs (queues, the DLQ, bulk replay / discard), Scheduler,
Workflows (runs and their step timelines) and Events.

Reads query the kernel's runtime tables (scoped to the Studio tenant); every change runs an
action through `studio.runner.run_action`, so it is authorized, audited and shows as a run.
The results containers refresh themselves every 5 s while the tab is visible, unless the
operator has rows selected, a confirm dialog open or a form being edited
(`static/js/studio.js`, "live regions").
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from bunbase import jobs as kernel_jobs
from bunbase import workflows as kernel_workflows
from bunbase.clock import clock
from bunbase.db import db
from bunbase.errors import scrub_paths
from bunbase.runtime_models import EventRecord, JobRun, Schedule, WorkflowRun
from modules.runtime import services
from studio.paging import Page, page_url
from studio.runner import error_message, run_action
from studio.views import htmx

blueprint = Blueprint("runtime_studio", __name__, template_folder="templates")

PAGE_SIZE = 25


# -- helpers --------------------------------------------------------------------------------
def _args(*names: str) -> dict[str, str]:
    return {k: request.args.get(k, "").strip() for k in names}


def _page(stmt: Any, model: Any, endpoint: str) -> Page:
    """A keyset page over (created_at, id), shaped for partials/pagination.html."""
    before, after = request.args.get("before") or None, request.args.get("after") or None
    s = services.page(db.session, stmt, model, before=before, after=after, limit=PAGE_SIZE)
    return Page(
        rows=s.rows,
        total=s.total,
        shown=len(s.rows),
        next_url=page_url(endpoint, before=s.next_cursor) if s.next_cursor else None,
        prev_url=page_url(endpoint, after=s.prev_cursor) if s.prev_cursor else None,
        first_url=page_url(endpoint) if (before or after) else None,
    )


def _live_url() -> str:
    """The URL the results container polls: this page with its current filters."""
    values: dict[str, Any] = {**(request.view_args or {}), **request.args}
    return url_for(request.endpoint or "runtime_studio.jobs", **values)


def _back(default: str) -> str:
    ref = request.referrer or ""
    if ref.startswith(request.host_url + "studio/m/runtime/"):
        return ref
    return default


def _done(outcome: Any, message: str) -> bool:
    if outcome.status == 200:
        flash(message, "success")
        return True
    flash(error_message(outcome), "error")
    return False


def _json_field(name: str) -> tuple[dict[str, Any] | None, str | None]:
    """An optional JSON object from a textarea: (value, error)."""
    text = (request.form.get(name) or "").strip()
    if not text:
        return None, None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"The {name} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
    if not isinstance(value, dict):
        return None, f"The {name} must be a JSON object."
    return value, None


def age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def since(value: Any) -> str:
    return age((clock.now() - value).total_seconds()) if value else "—"


def until(value: Any) -> str:
    if not value:
        return "—"
    delta = (value - clock.now()).total_seconds()
    return f"in {age(delta)}" if delta >= 0 else f"{age(-delta)} ago"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@blueprint.app_context_processor
def _helpers() -> dict[str, Any]:
    return {"rt_age": age, "rt_since": since, "rt_until": until, "rt_json": pretty, "rt_error": _error_text}


def _error_text(value: str | None) -> str:
    """An error as tenants see it: no server paths (rows written before they were left out
    may still hold some)."""
    return scrub_paths(value) if value else ""


# -- jobs -------------------------------------------------------------------------------------
def _job_names() -> list[str]:
    seen = set(db.session.scalars(select(JobRun.name).distinct()))
    return sorted(seen | {n for n in kernel_jobs.registered() if not n.startswith("bunbase.")})


@blueprint.get("/jobs")
def jobs() -> str:
    f = _args("status", "name", "queue", "q")
    stmt = select(JobRun).where(
        *services.job_filters(status=f["status"], name=f["name"], queue=f["queue"], search=f["q"])
    )
    page = _page(stmt, JobRun, "runtime_studio.jobs")
    match = {
        "status": f["status"] or "dead",
        "name": f["name"] or None,
        "queue": f["queue"] or None,
        "search": f["q"] or None,
    }
    bulk = {
        "status": match["status"],
        "replay": services.count_matching(db.session, **match, eligible=services.REPLAYABLE),
        "discard": services.count_matching(db.session, **match, eligible=services.DISCARDABLE),
    }
    context = {
        "page": page,
        "filters": f,
        "queues": services.queue_stats(db.session),
        "counts": services.status_counts(db.session),
        "bulk": bulk,
        "job_names": _job_names(),
        "statuses": services.JOB_STATUSES,
        "replayable": services.REPLAYABLE,
        "discardable": services.DISCARDABLE,
        "live_url": _live_url(),
    }
    if htmx and htmx.target == "jobs-results":
        return render_template("runtime/_jobs_results.html", **context)
    return render_template("runtime/jobs.html", **context)


@blueprint.post("/jobs/bulk")
def jobs_bulk() -> Response:
    op = request.form.get("op", "")
    verb, _, scope = op.partition("_")
    if verb not in {"replay", "discard"} or scope not in {"selected", "matching"}:
        abort(400)
    kept = ("status", "name", "queue", "q")
    filters: dict[str, Any] = {k: request.form[k] for k in kept if request.form.get(k)}
    back = url_for("runtime_studio.jobs", **filters)
    raw: dict[str, Any] = {}
    if scope == "selected":
        ids = request.form.getlist("job_id")
        if not ids:
            flash("Select at least one job.", "error")
            return redirect(back)
        raw["jobIds"] = ids
    else:
        raw["filter"] = {k: request.form.get(k) for k in ("status", "name", "queue") if request.form.get(k)}
        if request.form.get("q"):
            raw["filter"]["search"] = request.form.get("q")
        raw["filter"]["status"] = request.form.get("match_status") or "dead"
        expected = request.form.get(f"expected_{verb}", "")
        if expected.isdigit():
            raw["expectedCount"] = int(expected)
    outcome = run_action(f"runtime.job.{verb}_matching", raw)
    if outcome.status == 200:
        data = outcome.body["data"]
        word = "replayed" if verb == "replay" else "discarded"
        message = f"{data['count']} job{'s' if data['count'] != 1 else ''} {word}."
        if data["skipped"]:
            message += f" {data['skipped']} skipped (not in a state that allows it)."
        if data["remaining"]:
            message += f" {data['remaining']} more match; repeat to continue."
        flash(message, "success")
    else:
        flash(error_message(outcome), "error")
    return redirect(back)


@blueprint.get("/jobs/<job_id>")
def jobs_detail(job_id: str) -> str:
    row = db.session.scalar(select(JobRun).where(JobRun.id == job_id))
    if row is None:
        abort(404)
    wire = services.job_to_wire(row)
    context = {
        "job": row,
        "wire": wire,
        "replayable": row.status in services.REPLAYABLE,
        "discardable": row.status in services.DISCARDABLE,
        "live_url": _live_url(),
    }
    if htmx and htmx.target == "job-live":
        return render_template("runtime/_job_live.html", **context)
    return render_template("runtime/job_detail.html", **context)


@blueprint.post("/jobs/<job_id>/replay")
def jobs_replay(job_id: str) -> Response:
    payload, err = _json_field("payload")
    if err:
        flash(err, "error")
        return redirect(url_for("runtime_studio.jobs_detail", job_id=job_id))
    raw: dict[str, Any] = {"jobId": job_id}
    if payload is not None:
        raw["payload"] = payload
    _done(run_action("runtime.job.replay", raw), "Job replayed: it runs again shortly.")
    return redirect(url_for("runtime_studio.jobs_detail", job_id=job_id))


@blueprint.post("/jobs/<job_id>/discard")
def jobs_discard(job_id: str) -> Response:
    _done(run_action("runtime.job.discard", {"jobId": job_id}), "Job discarded.")
    return redirect(url_for("runtime_studio.jobs_detail", job_id=job_id))


# -- scheduler --------------------------------------------------------------------------------
@blueprint.get("/scheduler")
def schedules() -> str:
    f = _args("state", "job")
    stmt = select(Schedule)
    if f["state"] == "paused":
        stmt = stmt.where(Schedule.paused.is_(True))
    elif f["state"] == "active":
        stmt = stmt.where(Schedule.paused.is_(False))
    if f["job"]:
        stmt = stmt.where(Schedule.job == f["job"])
    page = _page(stmt, Schedule, "runtime_studio.schedules")
    job_names = sorted(set(db.session.scalars(select(Schedule.job).distinct())))
    context = {"page": page, "filters": f, "job_names": job_names, "live_url": _live_url()}
    if htmx and htmx.target == "schedules-results":
        return render_template("runtime/_schedules_results.html", **context)
    return render_template("runtime/schedules.html", **context)


@blueprint.post("/scheduler/<schedule_id>/<verb>")
def schedules_control(schedule_id: str, verb: str) -> Response:
    messages = {
        "pause": "Schedule paused.",
        "resume": "Schedule resumed.",
        "trigger": "Schedule fired: its job is queued.",
    }
    if verb not in messages:
        abort(404)
    _done(run_action(f"runtime.schedule.{verb}", {"scheduleId": schedule_id}), messages[verb])
    return redirect(_back(url_for("runtime_studio.schedules")))


# -- workflows --------------------------------------------------------------------------------
@blueprint.get("/workflows")
def workflows() -> str:
    f = _args("name", "state")
    stmt = select(WorkflowRun)
    if f["name"]:
        stmt = stmt.where(WorkflowRun.name == f["name"])
    if f["state"]:
        stmt = stmt.where(WorkflowRun.state == f["state"])
    page = _page(stmt, WorkflowRun, "runtime_studio.workflows")
    names = set(db.session.scalars(select(WorkflowRun.name).distinct())) | set(kernel_workflows.registered())
    context = {
        "page": page,
        "filters": f,
        "names": sorted(names),
        "states": services.WORKFLOW_STATES,
        "summaries": {r.id: services.run_to_wire(db.session, r, full=False) for r in page.rows},
        "live_url": _live_url(),
    }
    if htmx and htmx.target == "workflows-results":
        return render_template("runtime/_workflows_results.html", **context)
    return render_template("runtime/workflows.html", **context)


@blueprint.get("/workflows/<run_id>")
def workflows_detail(run_id: str) -> str:
    run = db.session.scalar(select(WorkflowRun).where(WorkflowRun.id == run_id))
    if run is None:
        abort(404)
    context = {
        "run": run,
        "wire": services.run_to_wire(db.session, run),
        "live_url": _live_url(),
    }
    if htmx and htmx.target == "workflow-live":
        return render_template("runtime/_workflow_live.html", **context)
    return render_template("runtime/workflow_detail.html", **context)


@blueprint.post("/workflows/<run_id>/replay")
def workflows_replay(run_id: str) -> Response:
    data, err = _json_field("input")
    if err:
        flash(err, "error")
        return redirect(url_for("runtime_studio.workflows_detail", run_id=run_id))
    raw: dict[str, Any] = {"runId": run_id, "fromStep": request.form.get("from_step", "")}
    if data is not None:
        raw["input"] = data
    _done(run_action("runtime.workflow.replay", raw), "Replaying from the chosen step.")
    return redirect(url_for("runtime_studio.workflows_detail", run_id=run_id))


@blueprint.post("/workflows/<run_id>/<verb>")
def workflows_control(run_id: str, verb: str) -> Response:
    messages = {
        "pause": "Workflow paused.",
        "resume": "Workflow resumed.",
        "cancel": "Workflow cancelled.",
        "retry": "Retrying the failed step.",
    }
    if verb not in messages:
        abort(404)
    _done(run_action(f"runtime.workflow.{verb}", {"runId": run_id}), messages[verb])
    return redirect(url_for("runtime_studio.workflows_detail", run_id=run_id))


# -- events -----------------------------------------------------------------------------------
@blueprint.get("/events")
def events() -> str:
    f = _args("name")
    stmt = select(EventRecord)
    if f["name"]:
        stmt = stmt.where(EventRecord.name == f["name"])
    page = _page(stmt, EventRecord, "runtime_studio.events")
    context = {
        "page": page,
        "filters": f,
        "names": sorted(set(db.session.scalars(select(EventRecord.name).distinct()))),
        "deliveries": services.deliveries_of(db.session, [e.id for e in page.rows]),
        "live_url": _live_url(),
    }
    if htmx and htmx.target == "events-results":
        return render_template("runtime/_events_results.html", **context)
    return render_template("runtime/events.html", **context)
