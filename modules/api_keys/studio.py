"""API keys and service accounts in Studio. Reads query the models; every change runs an
action through `studio.runner.run_action`, so it is authorized, audited and shows as a run.

A new secret is rendered once in the response to the POST that created it; it never goes
into a redirect, the session or a flash message.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, or_, select
from werkzeug.wrappers import Response

from bunbase.clock import clock
from bunbase.db import db
from bunbase.models import ActionRun, AuditEntry
from modules.api_keys import services
from modules.api_keys.models import ApiKey, ServiceAccount
from modules.rbac.models import Membership, Role
from studio.paging import keyset
from studio.runner import error_message, run_action
from studio.views import htmx

blueprint = Blueprint("api_keys_studio", __name__, template_folder="templates")

_SPLIT = re.compile(r"[\s,]+")


def _back() -> str:
    """Where a list form came from (keeps its filters), else the list."""
    ref = request.referrer or ""
    if ref.startswith(request.host_url + "studio/m/api_keys/"):
        return ref
    return url_for("api_keys_studio.service_accounts")


def _org_options() -> list[tuple[str, str]]:
    return [(o.id, f"{o.name} ({o.slug})") for o in services.orgs(db.session)]


def _org_names() -> dict[str, str]:
    return {o.id: o.name for o in services.orgs(db.session)}


# -- keys ----------------------------------------------------------------------------
@blueprint.get("/keys")
def keys() -> str:
    now = clock.now()
    f = {k: request.args.get(k, "").strip() for k in ("org", "status", "owner", "q")}
    stmt = select(ApiKey).where(
        *services.key_filters(org_id=f["org"], status=f["status"], owner=f["owner"], search=f["q"], now=now)
    )
    page = keyset(db.session, stmt, ApiKey.id, "api_keys_studio.keys")
    context: dict[str, Any] = {
        "page": page,
        "filters": f,
        "now": now,
        "counts": services.status_counts(db.session, f["org"] or None, now),
        "org_options": _org_options(),
        "org_names": _org_names(),
        "owners": services.owner_names(db.session, page.rows),
    }
    if htmx and htmx.target == "keys-results":
        return render_template("api_keys/_keys_results.html", **context)
    return render_template("api_keys/keys.html", **context)


def _key_form_context(values: dict[str, str]) -> dict[str, Any]:
    sas = db.session.scalars(
        select(ServiceAccount).where(ServiceAccount.disabled_at.is_(None)).order_by(ServiceAccount.name)
    ).all()
    return {
        "orgs": services.orgs(db.session),
        "org_names": _org_names(),
        "service_accounts": sas,
        "values": values,
    }


@blueprint.route("/keys/new", methods=["GET", "POST"])
def keys_new() -> str:
    values = {
        k: request.values.get(k, "").strip()
        for k in ("org_id", "name", "scopes", "expires_at", "service_account_id")
    }
    if request.method == "GET":
        return render_template("api_keys/key_new.html", **_key_form_context(values))
    raw: dict[str, Any] = {
        "orgId": values["org_id"],
        "name": values["name"],
        "scopes": [s for s in _SPLIT.split(values["scopes"]) if s],
    }
    if values["expires_at"]:
        raw["expiresAt"] = values["expires_at"]
    if values["service_account_id"]:
        raw["serviceAccountId"] = values["service_account_id"]
    outcome = run_action("api_keys.key.create", raw)
    if outcome.status != 200:
        flash(error_message(outcome), "error")
        return render_template("api_keys/key_new.html", **_key_form_context(values))
    return render_template("api_keys/key_secret.html", key=outcome.body["data"], heading="API key created")


@blueprint.get("/keys/<key_id>")
def keys_detail(key_id: str) -> str:
    key = db.session.get(ApiKey, key_id)
    if key is None:
        abort(404)
    audit = db.session.scalars(
        select(AuditEntry)
        .where(
            or_(
                AuditEntry.target_id == key_id,
                AuditEntry.target_id == key.rotated_from_id,
            )
        )
        .order_by(AuditEntry.id)
    ).all()
    run_ids = [a.run_id for a in audit if a.run_id]
    runs = {r.id for r in db.session.scalars(select(ActionRun).where(ActionRun.id.in_(run_ids)))}
    return render_template(
        "api_keys/key_detail.html",
        key=key,
        status=key.status(clock.now()),
        owners=services.owner_names(db.session, [key]),
        audit=audit,
        runs=runs,
    )


@blueprint.post("/keys/<key_id>/rotate")
def keys_rotate(key_id: str) -> str | Response:
    try:
        grace = max(0, round(float(request.form.get("grace_hours", "24") or 0) * 3600))
    except ValueError:
        grace = -1
    outcome = run_action("api_keys.key.rotate", {"keyId": key_id, "graceSeconds": grace})
    if outcome.status != 200:
        flash(error_message(outcome), "error")
        return redirect(url_for("api_keys_studio.keys_detail", key_id=key_id))
    return render_template("api_keys/key_secret.html", key=outcome.body["data"], heading="API key rotated")


@blueprint.post("/keys/<key_id>/revoke")
def keys_revoke(key_id: str) -> Response:
    outcome = run_action("api_keys.key.revoke", {"keyId": key_id})
    if outcome.status == 200:
        flash("The key is revoked; it stops working at once.", "success")
    else:
        flash(error_message(outcome), "error")
    return redirect(url_for("api_keys_studio.keys_detail", key_id=key_id))


# -- service accounts ----------------------------------------------------------------
@blueprint.get("/service-accounts")
def service_accounts() -> str:
    f = {k: request.args.get(k, "").strip() for k in ("org", "status", "q")}
    stmt = select(ServiceAccount)
    if f["org"]:
        stmt = stmt.where(ServiceAccount.org_id == f["org"])
    if f["status"] == "active":
        stmt = stmt.where(ServiceAccount.disabled_at.is_(None))
    elif f["status"] == "disabled":
        stmt = stmt.where(ServiceAccount.disabled_at.is_not(None))
    if f["q"]:
        stmt = stmt.where(func.lower(ServiceAccount.name).like(f"%{f['q'].lower()}%"))
    page = keyset(db.session, stmt, ServiceAccount.id, "api_keys_studio.service_accounts")
    ids = [sa.id for sa in page.rows]
    roles = {
        m.principal_id: m.role.key
        for m in db.session.scalars(
            select(Membership).where(
                Membership.principal_type == "service_account", Membership.principal_id.in_(ids)
            )
        )
    }
    key_counts = dict(
        db.session.execute(
            select(ApiKey.owner_id, func.count())
            .where(
                ApiKey.owner_type == "service_account",
                ApiKey.owner_id.in_(ids),
                services.status_filter("active", clock.now()),
            )
            .group_by(ApiKey.owner_id)
        ).all()
    )
    context = {
        "page": page,
        "filters": f,
        "roles": roles,
        "key_counts": key_counts,
        "org_options": _org_options(),
        "org_names": _org_names(),
        "all_roles": db.session.scalars(select(Role).order_by(Role.name)).all(),
    }
    if htmx and htmx.target == "sa-results":
        return render_template("api_keys/_service_accounts_results.html", **context)
    return render_template("api_keys/service_accounts.html", **context)


@blueprint.route("/service-accounts/new", methods=["GET", "POST"])
def service_accounts_new() -> str | Response:
    values = {k: request.values.get(k, "").strip() for k in ("org_id", "name", "description", "role")}
    context = {
        "orgs": services.orgs(db.session),
        "all_roles": db.session.scalars(select(Role).order_by(Role.name)).all(),
        "values": values,
    }
    if request.method == "GET":
        return render_template("api_keys/service_account_new.html", **context)
    outcome = run_action(
        "api_keys.service_account.create",
        {
            "orgId": values["org_id"],
            "name": values["name"],
            "description": values["description"],
            "role": values["role"] or "viewer",
        },
    )
    if outcome.status != 200:
        flash(error_message(outcome), "error")
        return render_template("api_keys/service_account_new.html", **context)
    data = outcome.body["data"]
    flash(f"Service account {data['name']} created with role {data['role']}.", "success")
    return redirect(url_for("api_keys_studio.service_accounts", org=data["orgId"]))


@blueprint.post("/service-accounts/<sa_id>/role")
def service_accounts_role(sa_id: str) -> Response:
    outcome = run_action(
        "api_keys.service_account.update_role",
        {"serviceAccountId": sa_id, "role": request.form.get("role", "")},
    )
    if outcome.status == 200:
        flash(f"Role changed to {outcome.body['data']['role']}.", "success")
    else:
        flash(error_message(outcome), "error")
    return redirect(_back())


@blueprint.post("/service-accounts/<sa_id>/disable")
def service_accounts_disable(sa_id: str) -> Response:
    outcome = run_action("api_keys.service_account.disable", {"serviceAccountId": sa_id})
    if outcome.status == 200:
        flash("Service account disabled; its keys stopped working.", "success")
    else:
        flash(error_message(outcome), "error")
    return redirect(_back())
