"""The shell's pages: sign-in, overview, the run explorer, health and API reference."""

from __future__ import annotations

import statistics
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_htmx import HTMX
from flask_login import current_user, login_required, logout_user
from sqlalchemy import func, select
from werkzeug.exceptions import HTTPException

from bunbase import api, tenancy_cache
from bunbase import guards as guard_mod
from bunbase import runs as runs_rule
from bunbase.clock import clock
from bunbase.db import db
from bunbase.errors import BunbaseError
from bunbase.models import ActionLog, ActionRun, AuditEntry
from bunbase.platform import show_latest
from bunbase.tenancy import set_tenant
from studio import auth
from studio.paging import keyset

bp = Blueprint("studio", __name__, url_prefix="/studio")
htmx = HTMX()

WINDOWS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


def platform() -> Any:
    return current_app.extensions["bunbase"]


def require_studio() -> Response | None:
    """Every Studio page but sign-in: a signed-in Studio user, scoped to one tenant."""
    if request.endpoint in {"studio.login", "static"}:
        return None
    if not current_user.is_authenticated:
        target = url_for("studio.login", next=request.full_path.rstrip("?"))
        if request.headers.get("HX-Request"):
            return Response(status=204, headers={"HX-Redirect": target})
        return redirect(target)  # type: ignore[return-value]
    set_tenant(auth.current_tenant(current_user).id)
    if request.method == "GET":
        # run records, decisions and audit entries are written in batches: a page shows
        # what was just done (the run an action made a moment ago)
        show_latest()
    return None


bp.before_request(require_studio)


# -- sign-in -------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if current_user.is_authenticated and request.method == "GET":
        return redirect(same_origin_path(request.args.get("next")) or url_for("studio.overview"))
    error = None
    if request.method == "POST":
        try:
            auth.sign_in(
                request.form.get("email", ""),
                request.form.get("password", ""),
                request.form.get("workspace", ""),
                request.remote_addr,
                request.headers.get("User-Agent"),
            )
        except auth.LoginError as exc:
            error = str(exc)
        else:
            return redirect(same_origin_path(request.values.get("next")) or url_for("studio.overview"))
    workspace = request.form.get("workspace") or request.args.get("workspace", "")
    return render_template(
        "studio/login.html",
        error=error,
        email=request.form.get("email", ""),
        workspace=workspace,
        next=same_origin_path(request.values.get("next")),
    )


def same_origin_path(target: str | None) -> str | None:
    """`target` if it is a path of this site (`/studio/...?...`), else None: never another
    host (`//evil.example`, `https://...`, `/\\evil`), so a link cannot send a signed-in
    operator elsewhere."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(ord(c) < 32 or c == "\\" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/studio"):
        return None
    return target


@bp.post("/logout")
@login_required
def logout() -> Any:
    auth.sign_out(current_user)
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("studio.login"))


@bp.post("/tenant")
@login_required
def switch_tenant() -> Any:
    if not current_user.is_platform_operator:
        abort(403)
    ref = tenancy_cache.lookup(request.form.get("tenant_id", ""))
    if ref is None:
        abort(404)
    session["tenant_id"] = ref.id
    flash(f"Now viewing {ref.name}.", "success")
    return redirect(same_origin_path(request.form.get("next")) or url_for("studio.overview"))


# -- overview ------------------------------------------------------------------------
@bp.get("/")
def overview() -> str:
    since = clock.now() - timedelta(hours=24)
    stats = action_stats(since)
    total = sum(s["count"] for s in stats)
    errors = sum(s["errors"] for s in stats)
    recent = db.session.scalars(
        select(ActionRun).where(*_visible_runs()).order_by(ActionRun.id.desc()).limit(8)
    ).all()
    audit = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(8)).all()
    return render_template(
        "studio/overview.html",
        kpis={
            "runs": total,
            "error_rate": (errors / total * 100) if total else 0.0,
            "p95": _percentile([s["p95"] for s in stats if s["count"]], 100) if stats else 0.0,
            "actions": len(platform().registry.actions),
        },
        stats=stats[:8],
        recent=recent,
        audit=audit,
    )


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def action_stats(since: Any, **filters: str) -> list[dict[str, Any]]:
    """Per action: runs, errors, error rate, mean / p50 / p95 latency in the window."""
    stmt = select(ActionRun.action_name, ActionRun.status, ActionRun.duration_ms).where(
        ActionRun.started_at >= since, *_visible_runs()
    )
    for column, value in filters.items():
        if value:
            stmt = stmt.where(getattr(ActionRun, column) == value)
    rows = db.session.execute(stmt.order_by(ActionRun.id.desc()).limit(50_000)).all()
    by_action: dict[str, list[tuple[str, float]]] = {}
    for name, status, duration in rows:
        by_action.setdefault(name, []).append((status, duration))
    out = []
    for name, items in by_action.items():
        durations = [d for _, d in items]
        errors = sum(1 for s, _ in items if s == "error")
        out.append(
            {
                "action": name,
                "count": len(items),
                "errors": errors,
                "error_rate": errors / len(items) * 100,
                "mean": statistics.fmean(durations),
                "p50": _percentile(durations, 50),
                "p95": _percentile(durations, 95),
            }
        )
    return sorted(out, key=lambda s: -s["count"])


# -- run explorer --------------------------------------------------------------------
def _visible_runs() -> list[Any]:
    """The runs the operator may read: the API's rule (`bunbase.runs`)."""
    from studio.runner import studio_actor

    return runs_rule.list_filter(studio_actor())


def _run_filters() -> dict[str, str]:
    return {k: request.args.get(k, "").strip() for k in ("action", "status", "trigger", "window", "q")}


@bp.get("/runtime/actions")
def runs() -> str:
    f = _run_filters()
    stmt = select(ActionRun).where(*_visible_runs())
    if f["action"]:
        stmt = stmt.where(ActionRun.action_name == f["action"])
    if f["status"]:
        stmt = stmt.where(ActionRun.status == f["status"])
    if f["trigger"]:
        stmt = stmt.where(ActionRun.trigger_type == f["trigger"])
    if f["q"]:
        stmt = stmt.where((ActionRun.id == f["q"]) | (ActionRun.trace_id == f["q"]))
    window = WINDOWS.get(f["window"])
    since = clock.now() - (window or timedelta(days=3650))
    if window:
        stmt = stmt.where(ActionRun.started_at >= since)
    page = keyset(db.session, stmt, ActionRun.id, "studio.runs")
    context = {
        "page": page,
        "filters": f,
        "stats": action_stats(since, action_name=f["action"], trigger_type=f["trigger"]),
        "action_names": sorted(platform().registry.actions),
        "windows": list(WINDOWS),
    }
    if htmx and htmx.target == "runs-results":
        return render_template("studio/_runs_results.html", **context)
    return render_template("studio/runs.html", **context)


@bp.get("/runtime/actions/<run_id>")
def runs_detail(run_id: str) -> str:
    run = db.session.scalar(select(ActionRun).where(ActionRun.id == run_id, *_visible_runs()))
    if run is None:
        abort(404)
    logs = db.session.scalars(
        select(ActionLog).where(ActionLog.run_id == run_id).order_by(ActionLog.id)
    ).all()
    audit = db.session.scalars(select(AuditEntry).where(AuditEntry.run_id == run_id)).all()
    same_trace = db.session.scalar(
        select(func.count()).select_from(ActionRun).where(ActionRun.trace_id == run.trace_id)
    )
    return render_template(
        "studio/run_detail.html", run=run, logs=logs, audit=audit, same_trace=same_trace or 0
    )


# -- system --------------------------------------------------------------------------
@bp.get("/system/health")
def health() -> str:
    from bunbase import redis_conn

    checks = []
    try:
        db.session.execute(select(1))
        checks.append(
            (
                "Database",
                True,
                db.engine.dialect.name + " · " + db.engine.url.render_as_string(hide_password=True),
            )
        )
    except Exception as exc:  # noqa: BLE001 - shown to the operator
        checks.append(("Database", False, type(exc).__name__))
    try:
        info = redis_conn.client().info("server")
        checks.append(("Redis", True, f"redis {info.get('redis_version', '?')}"))
    except Exception as exc:  # noqa: BLE001 - shown to the operator
        checks.append(("Redis", False, type(exc).__name__))
    registry = platform().registry
    return render_template(
        "studio/health.html",
        checks=checks,
        modules=list(registry.modules.values()),
        action_count=len(registry.actions),
    )


@bp.get("/system/api")
def api_reference() -> str:
    registry = platform().registry
    rows = []
    for name in sorted(registry.actions):
        act = registry.actions[name]
        prefix = act.module.api_prefix if act.module else ""
        rows.append(
            {
                "name": name,
                "module": act.module_name,
                "description": act.description,
                "kind": "write" if act.mutating else "read",
                "routes": [f"POST /v1/actions/{name}/run"]
                + [f"{t.method} /v1{t.openapi_path(prefix)}" for t in act.api_triggers],
                "guards": [guard_mod.describe(g) for g in act.all_guards()],
            }
        )
    return render_template("studio/api_reference.html", rows=rows)


@bp.app_errorhandler(404)
def not_found(err: HTTPException) -> Any:
    if request.path.startswith("/v1/"):
        return api.handle_http_error(err)
    if request.path.startswith("/studio") and current_user.is_authenticated:
        return render_template("studio/not_found.html"), 404
    return err


@bp.app_errorhandler(BunbaseError)
def typed_error(err: BunbaseError) -> Any:
    """A typed error raised while building a Studio page (a bad cursor or filter in the URL):
    the page says what was wrong, with its status, instead of a 500."""
    if request.path.startswith("/v1/"):
        return api.error_response(err)
    if not (request.path.startswith("/studio") and current_user.is_authenticated):
        return Response(err.message, status=err.status, mimetype="text/plain")
    back = (
        url_for(request.endpoint)
        if request.endpoint and not request.view_args
        else url_for("studio.overview")
    )
    title = "Not found" if err.status == 404 else "Cannot show this page"
    page = render_template(
        "studio/error.html", title=title, message=err.message, code=err.code, back_url=back
    )
    return page, err.status
