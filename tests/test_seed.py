"""`make run`'s demo data: the demo org with members, an invitation, tickets, a service
account and API keys, so every identity page in Studio has content on first start."""

from __future__ import annotations

import re

from flask import Flask

from bunbase.db import db
from bunbase.devserver import seed_demo
from bunbase.testing import settle


def test_demo_seed_gives_every_identity_page_content(app: Flask) -> None:
    with app.app_context():
        creds = seed_demo(app)
        db.session.remove()
    settle(app)
    studio = app.test_client()
    page = studio.get("/studio/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = studio.post("/studio/login", data={"email": creds["email"], "password": creds["password"],
                                              "workspace": creds["tenant"], "csrf_token": csrf})
    assert resp.status_code == 302, resp.get_data(as_text=True)

    expected = {
        "/studio/m/users/users": ["alice@demo.test", "bob@demo.test", "carol@demo.test"],
        "/studio/m/orgs/orgs": ["Demo Support"],
        "/studio/m/orgs/orgs/org_1": ["alice@demo.test", "bob@demo.test", "carol@demo.test"],
        "/studio/m/orgs/orgs/org_1/invitations": ["dave@demo.test"],
        "/studio/m/orgs/memberships": ["alice@demo.test", "Viewer"],
        "/studio/m/rbac/roles": ["owner", "viewer"],
        "/studio/m/api_keys/keys": ["ci-readonly", "alice-laptop"],
        "/studio/m/api_keys/service-accounts": ["Demo CI bot"],
        "/studio/m/audit/events": ["support.ticket.create"],
    }
    for url, texts in expected.items():
        resp = studio.get(url)
        assert resp.status_code == 200, url
        body = resp.get_data(as_text=True)
        for text in texts:
            assert text in body, f"{text!r} not on {url}"

    # the seeded keys hold no more than their owners: the bot's viewer role reads tickets
    from bunbase import authz
    from bunbase.tenancy import tenant_scope
    from modules.api_keys.models import ApiKey
    from modules.rbac.services import membership

    with app.app_context(), tenant_scope(creds["tenant_id"]):
        for key in db.session.scalars(db.select(ApiKey)):
            held = membership(db.session, key.org_id, key.owner_id, key.owner_type)
            assert held is not None
            missing = [p for p in key.scopes if authz.grants(held.role.permissions, p) is None]
            assert missing == [], (key.name, missing)
        db.session.remove()
