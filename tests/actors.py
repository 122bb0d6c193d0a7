"""Named actors for authorization tests.

Tenant "acme": alice (owner of org "Acme", created by her through the API), bob (member),
carol (viewer), dave (member: the target of member operations, never an actor), erin (a
user of the tenant who is in no org). Tenant "globex": mallory, owner of her own org.
None of them is a tenant administrator, so every decision goes through org roles.

Optionally an API key of alice's with one scope (`ticket:read`) when the api_keys module
provides `api_keys.key.create`; see `_api_key_actor`.

Every user is created in the database with a real password hash and signs in through
`POST /v1/auth/login`; memberships are bound with `modules.rbac.services.bind` (the
invitation flow itself is tested in test_orgs.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask

from bunbase import identity
from bunbase.db import db
from bunbase.models import User
from bunbase.tenancy import tenant_scope

PASSWORD = "correct horse battery staple"

#: actor name -> role in alice's org (None: not a member); the order is the matrix order:
#: least privileged first, so that allowed calls which change state (leave, transfer, ...)
#: happen after every denied call has been checked against the untouched world.
ROLES_IN_ACME: dict[str, str | None] = {
    "anonymous": None,
    "mallory": None,
    "erin": None,
    "carol": "viewer",
    "bob": "member",
    "api_key": "owner",  # alice's key: her role, narrowed by its scopes
    "alice": "owner",
}
API_KEY_SCOPES = ("ticket:read",)


@dataclass
class Person:
    """One caller: the headers it sends and what the matrix needs to know about it."""

    name: str
    kind: str  # "anonymous" | "user" | "api_key"
    tenant_id: str
    headers: dict[str, str]
    user_id: str | None = None
    email: str | None = None
    password: str | None = None
    token: str | None = None
    #: role in the world's org ("Acme"), None when not a member
    role: str | None = None
    scopes: frozenset[str] | None = None

    def with_headers(self, **extra: str) -> dict[str, str]:
        return {**self.headers, **extra}


@dataclass
class World:
    acme_id: str
    acme_slug: str
    globex_id: str
    globex_slug: str
    org_id: str  # alice's org "Acme"
    mallory_org_id: str
    ticket_id: str  # a ticket in Acme, created by alice
    invitation_id: str  # a pending invitation to Acme (for zoe@acme.test)
    invitation_token: str
    dave_id: str  # a plain member of Acme, target of member operations
    people: dict[str, Person] = field(default_factory=dict)
    #: ids that exist only when their module does (key_id, service_account_id, ...)
    extras: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Person:
        return self.people[name]

    @property
    def actors(self) -> list[Person]:
        """Every actor in matrix order (the API key only when the module provides one)."""
        return [self.people[n] for n in ROLES_IN_ACME if n in self.people]


def _tenant(app: Flask, slug: str) -> tuple[str, str]:
    from bunbase.seed import create_tenant

    with app.app_context():
        seeded = create_tenant(slug, slug.title(), admin_email=f"admin@{slug}.test")
        db.session.remove()
    return seeded.tenant_id, seeded.slug


def add_user(app: Flask, tenant_id: str, email: str, name: str, password: str = PASSWORD) -> str:
    """A user row with a real Argon2 hash (not a tenant admin); returns its id."""
    with app.app_context(), tenant_scope(tenant_id):
        user = User(email=email, name=name, password_hash=identity.hash_password(password))
        db.session.add(user)
        db.session.commit()
        user_id = user.id
        db.session.remove()
    return user_id


def login(app: Flask, tenant: str, email: str, password: str = PASSWORD) -> str:
    resp = app.test_client().post(
        "/v1/auth/login", json={"email": email, "password": password},
        headers={"X-Tenant-Id": tenant},
    )
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["data"]["token"])


def bind(app: Flask, tenant_id: str, org_id: str, user_id: str, role_key: str) -> None:
    from modules.rbac import services as rbac

    with app.app_context(), tenant_scope(tenant_id):
        rbac.bind(db.session, tenant_id, org_id, user_id, rbac.role_by_key(db.session, role_key))
        db.session.commit()
        db.session.remove()


def user_person(app: Flask, tenant_id: str, name: str, role: str | None) -> Person:
    email = f"{name}@{name}-mail.test" if name == "mallory" else f"{name}@acme.test"
    user_id = add_user(app, tenant_id, email, name.title())
    token = login(app, tenant_id, email)
    return Person(
        name=name, kind="user", tenant_id=tenant_id,
        headers={"Authorization": f"Bearer {token}", "X-Tenant-Id": tenant_id},
        user_id=user_id, email=email, password=PASSWORD, token=token, role=role,
    )


def create_org(app: Flask, person: Person, name: str, slug: str) -> str:
    resp = app.test_client().post("/v1/orgs", json={"name": name, "slug": slug},
                                  headers=person.headers)
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()["data"]
    assert data["role"] == "owner"
    return str(data["orgId"])


def _pending_invitation(app: Flask, tenant_id: str, org_id: str, by: str) -> tuple[str, str]:
    """A pending invitation with a known token, written like the demo seed writes one."""
    from bunbase.clock import clock
    from modules.orgs.models import Invitation
    from modules.orgs.services import INVITE_PREFIX, INVITE_TTL
    from modules.rbac import services as rbac

    token = identity.new_token(INVITE_PREFIX)
    with app.app_context(), tenant_scope(tenant_id):
        inv = Invitation(
            org_id=org_id, email="zoe@acme.test",
            role_id=rbac.role_by_key(db.session, "member").id,
            token_hash=identity.token_hash(token), invited_by=by,
            created_at=clock.now(), expires_at=clock.now() + INVITE_TTL,
        )
        db.session.add(inv)
        db.session.commit()
        inv_id = inv.id
        db.session.remove()
    return inv_id, token


def api_key_available(app: Flask) -> bool:
    return "api_keys.key.create" in app.extensions["bunbase"].registry.actions


def _api_key_actor(app: Flask, alice: Person, org_id: str,
                   extras: dict[str, str]) -> Person | None:
    """Alice's key with one scope, created through `api_keys.key.create` (if it exists)."""
    if not api_key_available(app):
        return None
    resp = app.test_client().post(
        "/v1/actions/api_keys.key.create/run",
        json={"orgId": org_id, "name": "matrix", "scopes": list(API_KEY_SCOPES)},
        headers=alice.headers,
    )
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()["data"]
    secret = next((data[k] for k in ("secret", "key", "token", "apiKey") if k in data), None)
    assert isinstance(secret, str), f"no key in {sorted(data)}"
    if "keyId" in data:
        extras["key_id"] = data["keyId"]
    return Person(
        name="api_key", kind="api_key", tenant_id=alice.tenant_id,
        headers={"Authorization": f"Bearer {secret}", "X-Tenant-Id": alice.tenant_id},
        user_id=alice.user_id, token=secret, role="owner", scopes=frozenset(API_KEY_SCOPES),
    )


def build_world(app: Flask, *, with_api_key: bool = True, tag: str = "") -> World:
    """`tag` suffixes the tenant slugs, for more than one world in one test."""
    acme_id, acme_slug = _tenant(app, "acme" + tag)
    globex_id, globex_slug = _tenant(app, "globex" + tag)
    alice = user_person(app, acme_id, "alice", "owner")
    org_id = create_org(app, alice, "Acme", "acme")
    people = {"alice": alice}
    for name in ("bob", "carol", "erin"):
        people[name] = user_person(app, acme_id, name, ROLES_IN_ACME[name])
    dave_id = add_user(app, acme_id, "dave@acme.test", "Dave")
    for name in ("bob", "carol"):
        bind(app, acme_id, org_id, people[name].user_id or "", ROLES_IN_ACME[name] or "")
    bind(app, acme_id, org_id, dave_id, "member")
    mallory = user_person(app, globex_id, "mallory", None)
    people["mallory"] = mallory
    mallory_org = create_org(app, mallory, "Globex", "globex")
    people["anonymous"] = Person("anonymous", "anonymous", acme_id, {"X-Tenant-Id": acme_id})
    ticket = app.test_client().post(
        "/v1/support/tickets",
        json={"orgId": org_id, "subject": "Cannot login", "body": "SSO redirect loop"},
        headers=alice.headers,
    )
    assert ticket.status_code == 200, ticket.get_json()
    inv_id, inv_token = _pending_invitation(app, acme_id, org_id, alice.user_id or "")
    extras: dict[str, str] = {"ticket_run_id": ticket.get_json()["run_id"]}
    with app.app_context(), tenant_scope(acme_id):
        from modules.rbac.services import role_by_key

        extras["member_role_id"] = role_by_key(db.session, "member").id
        db.session.remove()
    if with_api_key:
        key = _api_key_actor(app, alice, org_id, extras)
        if key is not None:
            people["api_key"] = key
    if "api_keys.service_account.create" in app.extensions["bunbase"].registry.actions:
        resp = app.test_client().post(
            "/v1/actions/api_keys.service_account.create/run",
            json={"orgId": org_id, "name": "robot", "role": "viewer"}, headers=alice.headers)
        assert resp.status_code == 200, resp.get_json()
        extras["service_account_id"] = resp.get_json()["data"]["serviceAccountId"]
    return World(
        acme_id=acme_id, acme_slug=acme_slug, globex_id=globex_id, globex_slug=globex_slug,
        org_id=org_id, mallory_org_id=mallory_org,
        ticket_id=ticket.get_json()["data"]["ticketId"],
        invitation_id=inv_id, invitation_token=inv_token, dave_id=dave_id, people=people,
        extras=extras,
    )


@pytest.fixture
def world(app: Flask) -> World:
    return build_world(app)


def snapshot(app: Flask, tenant_id: str) -> dict[str, Any]:
    """Every tenant-owned table's rows of one tenant (columns that change on read excluded)."""
    from sqlalchemy import select

    from bunbase.tenancy import TenantScoped, unscoped

    volatile = {"last_seen_at", "last_used_at", "last_used_ip", "password_hash"}
    # every attempt is recorded (runs, their logs, rbac decisions): those may grow
    skip = {"action_runs", "action_logs", "rbac_decisions"}
    out: dict[str, Any] = {}
    with app.app_context(), unscoped():
        for mapper in db.Model.registry.mappers:
            cls = mapper.class_
            table = mapper.local_table
            if not issubclass(cls, TenantScoped) or table.name in skip:
                continue
            cols = [c for c in table.columns if c.name not in volatile]
            rows = db.session.execute(
                select(*cols).where(table.c.tenant_id == tenant_id)
            ).all()
            out[table.name] = sorted(tuple(str(v) for v in r) for r in rows)
        db.session.remove()
    return out
