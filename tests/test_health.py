"""GET /v1/system/health reports the database and Redis."""

from __future__ import annotations

from bunbase.db import db


def test_health_reports_database_and_redis_ok(app, client):
    resp = client.get("/v1/system/health")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["ok"] is True
    assert body["data"]["status"] == "ok"
    checks = body["data"]["checks"]
    assert checks["database"]["ok"] is True
    assert checks["redis"]["ok"] is True
    with app.app_context():
        assert checks["database"]["dialect"] == db.engine.dialect.name
