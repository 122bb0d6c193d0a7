"""Wires the kernel into a Flask app: database, Redis, registry, executor, API, CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from flask import Flask, Request, Response, current_app, g, request
from flask.sessions import NullSession, SecureCookieSession, SecureCookieSessionInterface
from flask_migrate import Migrate
from werkzeug.exceptions import HTTPException

from bunbase import (  # noqa: F401 - events, mail and workflows register their jobs
    api,
    events,
    jobs,
    logs,
    mail,
    outbox,
    redis_conn,
    security,
    workflows,
)
from bunbase.buffer import WriteBuffer
from bunbase.config import ROOT, Settings
from bunbase.db import configure_engine, db
from bunbase.executor import Executor
from bunbase.registry import Registry, load
from bunbase.runtime_models import JobRun  # noqa: F401 - part of the kernel's metadata

migrate = Migrate()


@dataclass
class Platform:
    settings: Settings
    registry: Registry
    executor: Executor
    buffer: WriteBuffer


def _module_packages(settings: Settings) -> list[str]:
    packages = ["modules"]
    packages += [p.strip() for p in settings.extra_modules.split(",") if p.strip()]
    return packages


def _migration_locations(registry: Registry) -> list[str]:
    locations = [str(ROOT / "migrations" / "versions")]
    for mod in registry.modules.values():
        folder = Path(__import__(mod.package, fromlist=["_"]).__path__[0]) / "migrations"
        if folder.is_dir():
            locations.append(str(folder))
    return locations


def init_app(app: Flask, settings: Settings | None = None) -> Platform:
    settings = settings or Settings()
    logs.configure(settings.log_level)
    settings.instance_dir.mkdir(parents=True, exist_ok=True)
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask defines the key (None): no setdefault
        app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = settings.resolved_secret_key()
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.resolved_database_url()
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_recycle": 300, "pool_size": 10})
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
        engine = db.engine

    redis_url = settings.redis_url or redis_conn.start_embedded(settings.instance_dir / "redis.rdb")
    os.environ.setdefault("REDIS_URL", redis_url)
    redis_conn.configure(redis_url)

    registry = load(Registry(), _module_packages(settings))
    buffer = WriteBuffer(engine, interval=settings.buffer_interval, max_items=settings.buffer_max_items)
    executor = Executor(
        buffer,
        timedelta(hours=settings.idempotency_ttl_hours),
        sqlite=engine.dialect.name == "sqlite",
        request_timeout=timedelta(seconds=settings.request_timeout),
    )
    platform = Platform(settings, registry, executor, buffer)
    app.extensions["bunbase"] = platform

    migrate.init_app(app, db, directory=str(ROOT / "migrations"))

    @migrate.configure
    def _versions(config: Any) -> Any:
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", os.pathsep.join(_migration_locations(registry)))
        return config

    app.register_blueprint(api.build_blueprint(list(registry.actions.values())))
    for _mod, blueprint in registry.public_blueprints:
        app.register_blueprint(blueprint)
    _install_request_hooks(app)
    security.init_app(app, secure=settings.https)
    jobs.bind_app(app)

    from bunbase.cli import cli

    for group in registry.cli_groups:
        if group.name not in cli.commands:
            cli.add_command(group)
    app.cli.add_command(cli)
    return platform


API_PREFIX = "/v1/"


def _no_session(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError(
        "The JSON API is stateless: requests under /v1/ have no cookie session "
        "(they authenticate with a bearer token)"
    )


class ApiNullSession(NullSession):
    """The session of a JSON API request: empty, and writing to it is an error."""

    __setitem__ = __delitem__ = clear = pop = popitem = update = setdefault = _no_session


class CookieSessions(SecureCookieSessionInterface):
    """Studio's signed-cookie session. The JSON API (`/v1/...`) is stateless: its requests
    authenticate with a bearer token, so none is opened for them (no cookie parsed, signed
    or set, no `Vary: Cookie`)."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(API_PREFIX):
            return ApiNullSession()
        return super().open_session(app, request)


def _install_request_hooks(app: Flask) -> None:
    app.session_interface = CookieSessions()

    @app.before_request
    def _bind_trace() -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(trace_id=api.trace_id())

    @app.after_request
    def _trace_header(resp: Response) -> Response:
        if "trace_id" in g:
            resp.headers.setdefault("X-Trace-Id", g.trace_id)
        return resp

    app.after_request(get_platform(app).buffer.flush_after_response)
    app.after_request(outbox.courier.push_after_response)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Any:
        if request.path.startswith(API_PREFIX):
            return api.handle_http_error(err)
        return err

    @app.teardown_appcontext
    def _reset_tenant(_exc: BaseException | None) -> None:
        from bunbase.tenancy import set_tenant

        set_tenant(None)


def show_latest() -> None:
    """Before a page is built: what the platform writes in batches (run records, their logs,
    access decisions, last-used stamps) is written now, so the page shows what was just
    done. Studio calls it once per page."""
    get_platform(current_app).buffer.flush()


def get_platform(app: Flask) -> Platform:
    platform: Platform = app.extensions["bunbase"]
    return platform
