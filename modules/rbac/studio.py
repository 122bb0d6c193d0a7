"""Roles & permissions in Studio: the role x permission grid, custom roles and the
decision log. Every change runs an `rbac.role.*` action through `studio.runner`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import func, select

from bunbase import authz
from bunbase.db import db
from modules.rbac.models import DecisionRecord, Membership, Role
from modules.rbac.services import catalog, list_roles
from studio.runner import error_message, run_action
from studio.views import htmx

blueprint = Blueprint("rbac_studio", __name__, template_folder="templates")

SHOW = [("", "All roles"), ("custom", "Custom roles"), ("system", "System roles")]


@dataclass(frozen=True)
class Cell:
    """One grid cell: granted directly, or through a wildcard entry (`via`), or not."""

    direct: bool
    via: str | None

    @property
    def granted(self) -> bool:
        return self.direct or self.via is not None


def cell_of(role: Role, permission: str) -> Cell:
    held = role.permissions
    if permission in held:
        return Cell(True, None)
    return Cell(False, authz.grants(held - {permission}, permission))


def feature_of(permission: str) -> str:
    feature = permission.partition(":")[0]
    return "*" if feature == "*" else feature


def all_permissions(roles: list[Role]) -> list[str]:
    """The catalog plus anything a role already holds (wildcards included)."""
    found = set(catalog()) | {p for r in roles for p in r.permissions}
    return sorted(found, key=lambda p: (feature_of(p) != "*", feature_of(p), "*" not in p, p))


def _filters(source: dict[str, str] | None = None) -> dict[str, str]:
    args = source if source is not None else request.args
    return {k: (args.get(k) or "").strip() for k in ("q", "feature", "show")}


def _filters_from_current_url() -> dict[str, str]:
    """An htmx request from the grid: the filters of the page it came from."""
    query = parse_qs(urlparse(htmx.current_url or "").query)
    return _filters({k: v[0] for k, v in query.items() if v})


def grid_context(f: dict[str, str]) -> dict[str, Any]:
    roles = list_roles(db.session)
    permissions = all_permissions(roles)
    features = sorted({feature_of(p) for p in permissions})
    rows = permissions
    if f["feature"]:
        rows = [p for p in rows if feature_of(p) == f["feature"]]
    if f["q"]:
        rows = [p for p in rows if f["q"].lower() in p.lower()]
    columns = roles
    if f["show"] == "custom":
        columns = [r for r in roles if not r.is_system]
    elif f["show"] == "system":
        columns = [r for r in roles if r.is_system]
    groups: dict[str, list[str]] = {}
    for p in rows:
        groups.setdefault(feature_of(p), []).append(p)
    return {
        "filters": f,
        "roles": roles,
        "columns": columns,
        "groups": groups,
        "row_count": len(rows),
        "permission_count": len(permissions),
        "feature_options": [(f, "Wildcards" if f == "*" else f) for f in features],
        "show_options": SHOW,
        "cells": {(r.id, p): cell_of(r, p) for r in columns for p in rows},
        "held": _held_counts(),
    }


def _held_counts() -> dict[str, int]:
    rows = db.session.execute(select(Membership.role_id, func.count()).group_by(Membership.role_id)).all()
    return {role_id: n for role_id, n in rows}


def _role(role_id: str) -> Role:
    role = db.session.get(Role, role_id)
    if role is None:
        abort(404)
    return role


def _page(form: dict[str, str] | None = None, error: str | None = None) -> str:
    decisions = db.session.scalars(select(DecisionRecord).order_by(DecisionRecord.id.desc()).limit(8)).all()
    return render_template(
        "rbac/roles.html",
        **grid_context(_filters()),
        form=form or {"key": "", "name": "", "description": ""},
        error=error,
        decisions=decisions,
    )


@blueprint.get("/roles")
def roles() -> str:
    if htmx and htmx.target == "grid-results":
        return render_template("rbac/_grid.html", **grid_context(_filters()))
    return _page()


@blueprint.post("/roles")
def roles_create() -> Any:
    form = {k: request.form.get(k, "").strip() for k in ("key", "name", "description")}
    outcome = run_action("rbac.role.create", {**form, "name": form["name"] or form["key"]})
    if outcome.status != 200:
        return _page(form, error_message(outcome))
    flash(f"Role {form['key']} created. Tick its permissions in the grid.", "success")
    return redirect(url_for("rbac_studio.roles", show="custom"))


@blueprint.post("/roles/<role_id>/grant")
def roles_grant(role_id: str) -> Any:
    role = _role(role_id)
    permission = request.form.get("permission", "")
    granted = request.form.get("granted") == "1"
    outcome = run_action(
        "rbac.role.set_permission",
        {"roleId": role.id, "permission": permission, "granted": granted},
    )
    ok = outcome.status == 200
    verb = "granted" if granted else "revoked"
    message = f"{permission} {verb} for {role.key}." if ok else error_message(outcome)
    db.session.expire_all()
    role = _role(role_id)
    if "*" in permission:  # a wildcard changes other cells of the column: redraw the grid
        body = render_template("rbac/_grid.html", **grid_context(_filters_from_current_url()))
    else:
        body = render_template("rbac/_cell.html", role=role, p=permission, c=cell_of(role, permission))
    resp = Response(body)
    category = "success" if ok else "error"
    resp.headers["HX-Trigger"] = json.dumps({"toast": {"message": message, "category": category}})
    return resp


@blueprint.post("/roles/<role_id>/delete")
def roles_delete(role_id: str) -> Any:
    role = _role(role_id)
    key = role.key
    outcome = run_action("rbac.role.delete", {"roleId": role.id})
    if outcome.status == 200:
        flash(f"Role {key} deleted.", "success")
    else:
        flash(error_message(outcome), "error")
    return redirect(url_for("rbac_studio.roles"))
