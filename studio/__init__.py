"""Studio: the operator console (server-rendered Flask + HTMX).

The shell owns login, layout, navigation (built from the loaded modules), the tenant
switcher and the kernel's pages; modules add their own pages through `studio.py`.
"""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from studio import auth, nav, views

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
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
