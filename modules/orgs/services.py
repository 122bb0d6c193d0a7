"""Organizations, members, invitations and ownership. The only code that changes them."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from bunbase import (
    BadRequest,
    Conflict,
    Context,
    Forbidden,
    NotFound,
    Unauthenticated,
    hooks,
    identity,
    mail,
)
from bunbase.clock import clock
from bunbase.context import TenantRef
from bunbase.db import DBSession, db
from bunbase.models import User
from bunbase.seed import SeededTenant
from modules.orgs.models import Invitation, Organization
from modules.rbac import services as rbac
from modules.rbac.models import Membership, Role

INVITE_TTL = timedelta(days=7)
INVITE_PREFIX = "bbi_"
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63] or "org"


# -- organizations -------------------------------------------------------------------
def get_org(session: DBSession, org_id: str) -> Organization:
    org = session.get(Organization, org_id)
    if org is None:
        raise NotFound("Organization not found")
    return org


def create_org(ctx: Context, *, name: str, slug: str | None, owner_id: str) -> Organization:
    slug = slug or slugify(name)
    if not SLUG.match(slug):
        raise BadRequest(
            "Slug: lowercase letters, digits and '-'",
            details=[{"field": "slug", "message": "invalid", "type": "pattern"}],
        )
    if ctx.db.scalar(select(Organization.id).where(Organization.slug == slug)):
        raise Conflict(f"The slug {slug!r} is taken in this workspace")
    org = Organization(tenant_id=ctx.tenant.id, name=name, slug=slug, owner_id=owner_id, created_at=ctx.now())
    ctx.db.add(org)
    ctx.db.flush()
    rbac.bind(ctx.db, ctx.tenant.id, org.id, owner_id, rbac.creator_role(ctx.db, org.role_set_id))
    ctx.audit.record(
        action="orgs.org.create",
        target_type="org",
        target_id=org.id,
        org_id=org.id,
        diff={"after": {"name": name, "slug": slug, "owner": owner_id}},
    )
    return org


def update_org(ctx: Context, org: Organization, *, name: str | None, slug: str | None) -> Organization:
    before = {"name": org.name, "slug": org.slug}
    if slug is not None and slug != org.slug:
        if not SLUG.match(slug):
            raise BadRequest("Slug: lowercase letters, digits and '-'")
        if ctx.db.scalar(select(Organization.id).where(Organization.slug == slug)):
            raise Conflict(f"The slug {slug!r} is taken in this workspace")
        org.slug = slug
    if name is not None:
        org.name = name
    after = {"name": org.name, "slug": org.slug}
    ctx.audit.record(
        action="orgs.org.update",
        target_type="org",
        target_id=org.id,
        org_id=org.id,
        diff={"before": before, "after": after},
    )
    return org


def orgs_of(session: DBSession, user_id: str) -> list[tuple[Organization, Membership]]:
    rows = session.execute(
        select(Organization, Membership)
        .join(Membership, Membership.org_id == Organization.id)
        .where(Membership.principal_type == "user", Membership.principal_id == user_id)
        .order_by(Organization.name)
    ).all()
    return [(o, m) for o, m in rows]


# -- members -------------------------------------------------------------------------
def members(session: DBSession, org_id: str) -> list[tuple[Membership, User | None]]:
    rows = session.execute(
        select(Membership, User)
        .outerjoin(User, (User.id == Membership.principal_id) & (Membership.principal_type == "user"))
        .where(Membership.org_id == org_id)
        .order_by(Membership.created_at)
    ).all()
    return [(m, u) for m, u in rows]


def get_member(session: DBSession, org_id: str, user_id: str) -> Membership:
    m = rbac.membership(session, org_id, user_id)
    if m is None:
        raise NotFound("Member not found")
    return m


def update_member_role(ctx: Context, org: Organization, user_id: str, role: str) -> Membership:
    m = get_member(ctx.db, org.id, user_id)
    new_role = rbac.role_for(ctx.db, role)
    if (new_role.key == "owner" or m.role.key == "owner") and not _is_owner(ctx, org):
        raise Forbidden("Only an owner can make someone an owner or change an owner's role")
    if m.role.key == "owner" and new_role.key != "owner" and rbac.owner_count(ctx.db, org.id) <= 1:
        raise Conflict("The last owner cannot be demoted; transfer ownership first")
    before = m.role.key
    m.role_id, m.role = new_role.id, new_role
    if before == "owner" and new_role.key != "owner":
        _repoint_owner(ctx, org, leaving=user_id)
    ctx.audit.record(
        action="orgs.member.update_role",
        target_type="user",
        target_id=user_id,
        org_id=org.id,
        diff={"before": {"role": before}, "after": {"role": new_role.key}},
    )
    return m


def remove_member(ctx: Context, org: Organization, user_id: str) -> None:
    m = get_member(ctx.db, org.id, user_id)
    if m.role.key == "owner" and not _is_owner(ctx, org):
        raise Forbidden("Only an owner can remove an owner")
    if m.role.key == "owner" and rbac.owner_count(ctx.db, org.id) <= 1:
        raise Conflict("The last owner cannot be removed; transfer ownership first")
    if m.role.key == "owner":
        _repoint_owner(ctx, org, leaving=user_id)
    ctx.audit.record(
        action="orgs.member.remove",
        target_type="user",
        target_id=user_id,
        org_id=org.id,
        diff={"before": {"role": m.role.key}},
    )
    ctx.db.delete(m)


def leave(ctx: Context, org: Organization, user_id: str) -> None:
    m = get_member(ctx.db, org.id, user_id)
    if m.role.key == "owner" and rbac.owner_count(ctx.db, org.id) <= 1:
        raise Conflict("The last owner cannot leave; transfer ownership first")
    if m.role.key == "owner":
        _repoint_owner(ctx, org, leaving=user_id)
    ctx.audit.record(
        action="orgs.org.leave",
        target_type="user",
        target_id=user_id,
        org_id=org.id,
        diff={"before": {"role": m.role.key}},
    )
    ctx.db.delete(m)


def _repoint_owner(ctx: Context, org: Organization, *, leaving: str) -> None:
    """Keep `org.owner_id` on a user who still holds the owner role."""
    if org.owner_id != leaving:
        return
    ctx.db.flush()
    for m, user in members(ctx.db, org.id):
        if m.role.key == "owner" and m.principal_type == "user" and m.principal_id != leaving and user:
            org.owner_id = m.principal_id
            return


def _is_owner(ctx: Context, org: Organization) -> bool:
    actor = ctx.actor
    if ctx.trigger == "studio" and (actor.is_tenant_admin or actor.is_platform_operator):
        return True
    ptype, pid = actor.principal
    m = rbac.membership(ctx.db, org.id, pid or "", ptype)
    return m is not None and m.role.key == "owner"


def transfer_ownership(ctx: Context, org: Organization, to_user_id: str) -> Organization:
    if not _is_owner(ctx, org):
        raise Forbidden("Only an owner can transfer ownership")
    target = get_member(ctx.db, org.id, to_user_id)
    owner_role = rbac.role_by_key(ctx.db, "owner")
    admin_role = rbac.role_by_key(ctx.db, "admin")
    previous = org.owner_id
    target.role_id, target.role = owner_role.id, owner_role
    current = rbac.membership(ctx.db, org.id, ctx.actor.principal[1] or "")
    if current is not None and current.principal_id != to_user_id:
        current.role_id, current.role = admin_role.id, admin_role
    org.owner_id = to_user_id
    ctx.audit.record(
        action="orgs.org.transfer_ownership",
        target_type="org",
        target_id=org.id,
        org_id=org.id,
        diff={"before": {"owner": previous}, "after": {"owner": to_user_id}},
    )
    return org


# -- invitations ---------------------------------------------------------------------
def _accept_url(token: str) -> str:
    base = current_app.extensions["bunbase"].settings.public_url.rstrip("/")
    return f"{base}/invite/{token}"


def _send_invite(ctx: Context, org: Organization, inv: Invitation, token: str) -> None:
    mail.send(
        ctx,
        to=inv.email,
        kind="invitation",
        subject=f"You are invited to {org.name}",
        text=(
            f"You have been invited to join {org.name} on {ctx.tenant.name}.\n\n"
            "Accept or decline: ${link}\n\n"
            "Invitation code: ${code}\n"
            f"This invitation expires on {inv.expires_at:%Y-%m-%d %H:%M} UTC.\n"
        ),
        secrets={"link": _accept_url(token), "code": token},
        secret_ttl=inv.expires_at - ctx.now(),
    )


def invite(ctx: Context, org: Organization, *, email: str, role: str | None) -> tuple[Invitation, str]:
    email = email.lower()
    chosen = rbac.role_for(ctx.db, role) if role else rbac.default_member_role(ctx.db, org.role_set_id)
    if chosen.key == "owner" and not _is_owner(ctx, org):
        raise Forbidden("Only an owner can invite an owner")
    user = ctx.db.scalar(select(User).where(User.email == email))
    if user is not None and rbac.membership(ctx.db, org.id, user.id):
        raise Conflict(f"{email} is already a member")
    pending = ctx.db.scalar(
        select(Invitation).where(
            Invitation.org_id == org.id, Invitation.email == email, Invitation.status == "pending"
        )
    )
    if pending is not None and pending.expires_at > ctx.now():
        raise Conflict(f"{email} already has a pending invitation; resend it instead")
    token = identity.new_token(INVITE_PREFIX)
    inv = Invitation(
        tenant_id=ctx.tenant.id,
        org_id=org.id,
        email=email,
        role_id=chosen.id,
        token_hash=identity.token_hash(token),
        invited_by=ctx.actor.id,
        created_at=ctx.now(),
        expires_at=ctx.now() + INVITE_TTL,
    )
    ctx.db.add(inv)
    ctx.db.flush()
    _send_invite(ctx, org, inv, token)
    ctx.audit.record(
        action="orgs.invitation.create",
        target_type="invitation",
        target_id=inv.id,
        org_id=org.id,
        diff={"after": {"email": email, "role": chosen.key}},
    )
    return inv, token


def get_invitation(session: DBSession, org_id: str, invitation_id: str) -> Invitation:
    inv = session.get(Invitation, invitation_id)
    if inv is None or inv.org_id != org_id:
        raise NotFound("Invitation not found")
    return inv


def invitations(session: DBSession, org_id: str, status: str | None = None) -> list[Invitation]:
    stmt = select(Invitation).where(Invitation.org_id == org_id)
    if status:
        stmt = stmt.where(Invitation.status == status)
    return list(session.scalars(stmt.order_by(Invitation.created_at.desc())))


def effective_status(inv: Invitation, now: object) -> str:
    return "expired" if inv.status == "pending" and inv.expires_at <= now else inv.status  # type: ignore[operator]


def revoke_invitation(ctx: Context, inv: Invitation) -> Invitation:
    if inv.status != "pending":
        raise Conflict(f"The invitation is already {inv.status}")
    inv.status, inv.responded_at = "revoked", ctx.now()
    ctx.audit.record(
        action="orgs.invitation.revoke",
        target_type="invitation",
        target_id=inv.id,
        org_id=inv.org_id,
        diff={"before": {"status": "pending"}, "after": {"status": "revoked"}},
    )
    return inv


def resend_invitation(ctx: Context, org: Organization, inv: Invitation) -> tuple[Invitation, str]:
    """A new token and a fresh expiry; the old link stops working."""
    if inv.status != "pending":
        raise Conflict(f"The invitation is already {inv.status}")
    token = identity.new_token(INVITE_PREFIX)
    inv.token_hash = identity.token_hash(token)
    inv.expires_at = ctx.now() + INVITE_TTL
    inv.sent_count += 1
    _send_invite(ctx, org, inv, token)
    ctx.audit.record(
        action="orgs.invitation.resend",
        target_type="invitation",
        target_id=inv.id,
        org_id=org.id,
        diff={"after": {"sent_count": inv.sent_count}},
    )
    return inv, token


def invitation_by_token(session: DBSession, token: str) -> Invitation:
    inv: Invitation | None = session.scalar(
        select(Invitation).where(Invitation.token_hash == identity.token_hash(token))
    )
    if inv is None:
        raise NotFound("Invitation not found")
    return inv


def _pending(ctx: Context, token: str) -> Invitation:
    inv = invitation_by_token(ctx.db, token)
    if inv.status != "pending":
        raise Conflict(f"This invitation was {inv.status}")
    if inv.expires_at <= ctx.now():
        raise Conflict("This invitation has expired; ask for a new one")
    return inv


def accept_invitation(ctx: Context, token: str) -> Membership:
    inv = _pending(ctx, token)
    if ctx.actor.kind != "user" or not ctx.actor.email:
        raise Unauthenticated("Sign in as the invited user to accept")
    if ctx.actor.email.lower() != inv.email:
        raise Forbidden("This invitation is for another email address")
    role = ctx.db.get(Role, inv.role_id)
    assert role is not None
    m = rbac.bind(ctx.db, ctx.tenant.id, inv.org_id, ctx.actor.id or "", role)
    inv.status, inv.responded_at = "accepted", ctx.now()
    ctx.audit.record(
        action="orgs.invitation.accept",
        target_type="invitation",
        target_id=inv.id,
        org_id=inv.org_id,
        diff={"after": {"member": ctx.actor.id, "role": role.key}},
    )
    return m


def decline_invitation(ctx: Context, token: str) -> Invitation:
    inv = _pending(ctx, token)
    inv.status, inv.responded_at = "declined", ctx.now()
    ctx.audit.record(
        action="orgs.invitation.decline",
        target_type="invitation",
        target_id=inv.id,
        org_id=inv.org_id,
        diff={"after": {"status": "declined"}},
    )
    return inv


# -- demo data -----------------------------------------------------------------------
DEMO_ORG_ID = "org_1"  # the handbook's examples use this id
DEMO_MEMBERS = [
    ("alice@demo.test", "Alice Owner", "owner"),
    ("bob@demo.test", "Bob Member", "member"),
    ("carol@demo.test", "Carol Viewer", "viewer"),
]


@hooks.on("demo_seed")
def seed_demo(tenant: TenantRef, seeded: SeededTenant) -> None:
    """The demo org (id org_1) with the operator as owner and alice, bob and carol."""
    from bunbase.models import User

    org = Organization(
        id=DEMO_ORG_ID,
        tenant_id=tenant.id,
        name="Demo Support",
        slug="demo-support",
        owner_id=_user_id(seeded.admin_email),
    )
    db.session.add(org)
    db.session.flush()
    rbac.bind(db.session, tenant.id, org.id, org.owner_id, rbac.role_by_key(db.session, "owner"))
    for email, name, role in DEMO_MEMBERS:
        user = User(
            tenant_id=tenant.id,
            email=email,
            name=name,
            password_hash=identity.hash_password(seeded.admin_password),
        )
        db.session.add(user)
        db.session.flush()
        rbac.bind(db.session, tenant.id, org.id, user.id, rbac.role_by_key(db.session, role))
    db.session.add(
        Invitation(
            tenant_id=tenant.id,
            org_id=org.id,
            email="dave@demo.test",
            role_id=rbac.role_by_key(db.session, "member").id,
            token_hash=identity.token_hash(identity.new_token(INVITE_PREFIX)),
            invited_by=org.owner_id,
            expires_at=clock.now() + INVITE_TTL,
        )
    )


def _user_id(email: str) -> str:
    from bunbase.models import User

    user_id = db.session.scalar(select(User.id).where(User.email == email))
    assert user_id is not None
    return user_id
