"""The WSGI entry point (`gunicorn 'app:create_app()'`) and `python app.py` dev runner."""

from __future__ import annotations

from flask import Flask, redirect

from bunbase.config import ROOT, Settings
from bunbase.platform import init_app


def create_app(settings: Settings | None = None, **config: object) -> Flask:
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str((settings or Settings()).instance_dir),
    )
    app.config.update(config)
    init_app(app, settings)

    import studio

    studio.init_app(app)

    @app.get("/")
    def index() -> object:
        return redirect("/studio/")

    return app


if __name__ == "__main__":
    import sys

    from flask.cli import FlaskGroup

    sys.argv[1:] = ["bunbase", "dev", *sys.argv[1:]]
    FlaskGroup(create_app=create_app)()
