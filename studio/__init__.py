"""Studio: the operator console (server-rendered Flask + HTMX).

The shell owns login, layout, navigation (built from the loaded modules), the tenant
switcher and the kernel's pages; modules add their own pages through `studio.py`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from studio import auth, nav, views

csrf = CSRFProtect()


def to_json(value: Any, indent: int | None = None) -> str:
    """The `json` template filter: JSON as plain text, so the template escapes it like any
    other text and it is safe in an element and in a quoted attribute alike. (Jinja's
    `tojson` returns markup that is safe only inside <script>; templates never use it.)"""
    return json.dumps(value, indent=indent, ensure_ascii=False, default=str)


def init_app(app: Flask) -> None:
    app.jinja_env.filters["json"] = to_json
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(app)
    csrf.exempt(app.blueprints["api"])
    views.htmx.init_app(app)
    auth.login_manager.init_app(app)
    app.register_blueprint(views.bp)
    registry = app.extensions["bunbase"].registry
    for mod, blueprint in registry.studio_blueprints:
        blueprint.before_request(views.require_studio)
        app.register_blueprint(blueprint, url_prefix=f"/studio/m/{mod.name}")
    app.context_processor(nav.layout_context)
