"""Org grants kept per process on SQLite (`modules.rbac.grants_cache`): a change made
through the ORM is seen at the next call, in this process and, through the stamp file,
in the others; on Postgres nothing is kept."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import select, text

from bunbase.db import db
from bunbase.tenancy import tenant_scope
from modules.rbac import grants_cache
from modules.rbac.models import Membership, Role
from tests.helpers import assert_failure, assert_success


def create(client, tenant):
    return client.post("/v1/support/tickets", json=tenant.ticket(), headers=tenant.headers())


def membership_of(tenant) -> Membership:
    return db.session.scalars(select(Membership).where(Membership.org_id == tenant.org_id)).one()


def viewer_role_id() -> str:
    return db.session.scalars(select(Role.id).where(Role.key == "viewer")).first()


def test_a_role_change_through_the_orm_applies_at_the_next_call(app, client, tenant_a):
    assert_success(create(client, tenant_a))  # grants read, and kept on SQLite
    with app.app_context(), tenant_scope(tenant_a.id):
        membership_of(tenant_a).role_id = viewer_role_id()
        db.session.commit()
        db.session.remove()
    assert_failure(create(client, tenant_a), 403, "forbidden")


def test_a_change_stamped_by_another_process_applies_at_the_next_call(app, client, tenant_a):
    with app.app_context():
        path = grants_cache._stamp_path()
        if path is None:
            pytest.skip("grants are kept per process on SQLite only")
    assert_success(create(client, tenant_a))
    with app.app_context(), tenant_scope(tenant_a.id):
        # a raw UPDATE, as another process's would look from here: no session saw it
        db.session.execute(text("UPDATE memberships SET role_id = :r WHERE org_id = :o"),
                           {"r": viewer_role_id(), "o": tenant_a.org_id})
        db.session.commit()
        db.session.remove()
    assert_success(create(client, tenant_a))  # still the kept grants: nothing said it changed
    # the other process's commit hook: `changed()` moves the stamp file's time
    subprocess.run([sys.executable, "-c", (
        "import os, sys, time\n"
        "p = sys.argv[1]; t = max(time.time_ns(), os.stat(p).st_mtime_ns + 1 if os.path.exists(p) else 0)\n"
        "open(p, 'a').close(); os.utime(p, ns=(t, t))\n"
    ), path], check=True)
    assert_failure(create(client, tenant_a), 403, "forbidden")


def test_on_postgres_nothing_is_kept(app):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("Postgres only")
        assert grants_cache._stamp_path() is None
        calls = []
        for _ in range(2):
            grants_cache.cached(("k",), lambda: calls.append(1))
        assert len(calls) == 2


def test_a_savepoint_rolled_back_after_the_change_does_not_hide_it(app, client, tenant_a):
    assert_success(create(client, tenant_a))
    with app.app_context(), tenant_scope(tenant_a.id):
        membership_of(tenant_a).role_id = viewer_role_id()
        db.session.flush()
        nested = db.session.begin_nested()
        nested.rollback()  # only the savepoint goes; the role change stays and commits
        db.session.commit()
        db.session.remove()
    assert_failure(create(client, tenant_a), 403, "forbidden")


def test_a_grant_written_without_a_flush_applies_at_the_next_call(app, client, tenant_a):
    """`insert_new` writes new rows with no flush (so no flush event sees them): a watched
    table among them still moves the grants on."""
    from bunbase.db import insert_new
    from bunbase.ids import new_id
    from modules.rbac.models import RolePermission

    with app.app_context(), tenant_scope(tenant_a.id):
        viewer = viewer_role_id()
        membership_of(tenant_a).role_id = viewer
        db.session.commit()
        db.session.remove()
    assert_failure(create(client, tenant_a), 403, "forbidden")  # the viewer's grants, now kept
    with app.app_context(), tenant_scope(tenant_a.id):
        db.session.add(RolePermission(id=new_id("rpm"), tenant_id=tenant_a.id, role_id=viewer,
                                      permission="ticket:create"))
        assert insert_new(db.session) == 1  # written as the executor writes new rows
        db.session.commit()
        db.session.remove()
    assert_success(create(client, tenant_a))
