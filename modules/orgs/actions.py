"""Organization actions: `/v1/orgs/*`."""

from __future__ import annotations

from typing import Literal, cast

from pydantic import Field

from bunbase import BadRequest, Context, Contract, Empty, Forbidden, action, guards, triggers
from bunbase.contracts import Email, Timestamp
from bunbase.models import User
from modules.orgs import services
from modules.orgs.models import Invitation, Organization
from modules.rbac.guards import in_org
from modules.rbac.models import Membership

Slug = Field(default=None, min_length=1, max_length=63, pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


class OrgOut(Contract):
    org_id: str
    name: str
    slug: str
    owner_id: str
    created_at: Timestamp
    role: str | None = None

    @classmethod
    def of(cls, org: Organization, role: str | None = None) -> OrgOut:
        return cls(
            org_id=org.id,
            name=org.name,
            slug=org.slug,
            owner_id=org.owner_id,
            created_at=org.created_at,
            role=role,
        )


class CreateOrgInput(Contract):
    name: str = Field(min_length=2, max_length=200)
    slug: str | None = Slug
    #: workspace administrators may create an org on behalf of another user of the workspace
    owner_id: str | None = Field(default=None, min_length=1, max_length=40)


class OrgRef(Contract):
    org_id: str = Field(min_length=1, max_length=40)


class UpdateOrgInput(OrgRef):
    name: str | None = Field(default=None, min_length=2, max_length=200)
    slug: str | None = Slug


class OrgList(Contract):
    items: list[OrgOut]


class MemberOut(Contract):
    membership_id: str
    principal_type: str
    user_id: str
    email: str | None
    name: str | None
    role: str
    joined_at: Timestamp

    @classmethod
    def of(cls, m: Membership, email: str | None = None, name: str | None = None) -> MemberOut:
        return cls(
            membership_id=m.id,
            principal_type=m.principal_type,
            user_id=m.principal_id,
            email=email,
            name=name,
            role=m.role.key,
            joined_at=m.created_at,
        )


class MemberList(Contract):
    items: list[MemberOut]


class MemberRef(OrgRef):
    user_id: str = Field(min_length=1, max_length=40)


class UpdateRoleInput(MemberRef):
    role: str = Field(min_length=1, max_length=60)


class TransferInput(OrgRef):
    user_id: str = Field(min_length=1, max_length=40)


class Done(Contract):
    ok: bool = True


InvitationStatus = Literal["pending", "accepted", "declined", "revoked", "expired"]


class InvitationOut(Contract):
    invitation_id: str
    org_id: str
    email: str
    role_id: str
    status: InvitationStatus
    expires_at: Timestamp
    sent_count: int

    @classmethod
    def of(cls, inv: Invitation, status: str) -> InvitationOut:
        return cls(
            invitation_id=inv.id,
            org_id=inv.org_id,
            email=inv.email,
            role_id=inv.role_id,
            status=cast(InvitationStatus, status),
            expires_at=inv.expires_at,
            sent_count=inv.sent_count,
        )  # type: ignore[arg-type]


class InviteInput(OrgRef):
    email: Email
    role: str | None = Field(default=None, max_length=60)


class InvitationRef(OrgRef):
    invitation_id: str = Field(min_length=1, max_length=40)


class InvitationList(Contract):
    items: list[InvitationOut]


class TokenInput(Contract):
    token: str = Field(min_length=8, max_length=200)


def _inv(inv: Invitation, ctx: Context) -> InvitationOut:
    return InvitationOut.of(inv, services.effective_status(inv, ctx.now()))


# -- organizations -------------------------------------------------------------------
@action(
    name="orgs.org.create",
    input=CreateOrgInput,
    output=OrgOut,
    triggers=[triggers.api("POST", "")],
    guards=[guards.authenticated()],
    description=(
        "Create an organization; the caller becomes its owner "
        "(workspace administrators may name another user as `ownerId`)."
    ),
)
def create_org(input: CreateOrgInput, ctx: Context) -> OrgOut:
    if ctx.actor.kind != "user":
        raise Forbidden("Only users create organizations")
    owner_id = ctx.actor.id or ""
    if input.owner_id and input.owner_id != owner_id:
        if not (ctx.actor.is_tenant_admin or ctx.actor.is_platform_operator):
            raise Forbidden("Only workspace administrators create organizations for others")
        if ctx.db.get(User, input.owner_id) is None:
            raise BadRequest(
                "The owner must be a user of this workspace",
                details=[{"field": "ownerId", "message": "unknown user", "type": "value_error"}],
            )
        owner_id = input.owner_id
    org = services.create_org(ctx, name=input.name, slug=input.slug, owner_id=owner_id)
    return OrgOut.of(org, "owner" if owner_id == ctx.actor.id else None)


@action(
    name="orgs.org.list",
    input=Empty,
    output=OrgList,
    triggers=[triggers.api("GET", "")],
    guards=[guards.authenticated()],
    description="Organizations the caller belongs to.",
)
def list_orgs(input: Empty, ctx: Context) -> OrgList:
    _, pid = ctx.actor.principal
    if ctx.actor.kind == "api_key":
        org = services.get_org(ctx.db, ctx.actor.key_org_id or "")
        return OrgList(items=[OrgOut.of(org)])
    return OrgList(items=[OrgOut.of(o, m.role.key) for o, m in services.orgs_of(ctx.db, pid or "")])


@action(
    name="orgs.org.get",
    input=OrgRef,
    output=OrgOut,
    triggers=[triggers.api("GET", "/{orgId}")],
    guards=[in_org()],
    permissions=["org:read"],
    description="One organization.",
)
def get_org(input: OrgRef, ctx: Context) -> OrgOut:
    return OrgOut.of(services.get_org(ctx.db, input.org_id))


@action(
    name="orgs.org.update",
    input=UpdateOrgInput,
    output=OrgOut,
    triggers=[triggers.api("PATCH", "/{orgId}")],
    guards=[in_org()],
    permissions=["org:update"],
    description="Rename an organization or change its slug.",
)
def update_org(input: UpdateOrgInput, ctx: Context) -> OrgOut:
    org = services.update_org(ctx, services.get_org(ctx.db, input.org_id), name=input.name, slug=input.slug)
    return OrgOut.of(org)


@action(
    name="orgs.org.transfer_ownership",
    input=TransferInput,
    output=OrgOut,
    triggers=[triggers.api("POST", "/{orgId}/transfer")],
    guards=[in_org()],
    permissions=["org:transfer"],
    description="Make another member the owner; the previous owner becomes an admin.",
)
def transfer_ownership(input: TransferInput, ctx: Context) -> OrgOut:
    org = services.transfer_ownership(ctx, services.get_org(ctx.db, input.org_id), input.user_id)
    return OrgOut.of(org)


@action(
    name="orgs.org.leave",
    input=OrgRef,
    output=Done,
    triggers=[triggers.api("POST", "/{orgId}/leave")],
    guards=[in_org()],
    description="Leave an organization (not as its last owner).",
)
def leave_org(input: OrgRef, ctx: Context) -> Done:
    if ctx.actor.kind != "user":
        raise Forbidden("Only a signed-in user can leave an organization; API keys cannot")
    services.leave(ctx, services.get_org(ctx.db, input.org_id), ctx.actor.principal[1] or "")
    return Done()


# -- members -------------------------------------------------------------------------
@action(
    name="orgs.member.list",
    input=OrgRef,
    output=MemberList,
    triggers=[triggers.api("GET", "/{orgId}/members")],
    guards=[in_org()],
    permissions=["member:read"],
    description="Members of an organization with their roles.",
)
def list_members(input: OrgRef, ctx: Context) -> MemberList:
    rows = services.members(ctx.db, input.org_id)
    return MemberList(items=[MemberOut.of(m, u.email if u else None, u.name if u else None) for m, u in rows])


@action(
    name="orgs.member.update_role",
    input=UpdateRoleInput,
    output=MemberOut,
    triggers=[triggers.api("PATCH", "/{orgId}/members/{userId}")],
    guards=[in_org()],
    permissions=["member:update"],
    description="Change a member's role (by role key or id).",
)
def update_member_role(input: UpdateRoleInput, ctx: Context) -> MemberOut:
    org = services.get_org(ctx.db, input.org_id)
    return MemberOut.of(services.update_member_role(ctx, org, input.user_id, input.role))


@action(
    name="orgs.member.remove",
    input=MemberRef,
    output=Done,
    triggers=[triggers.api("DELETE", "/{orgId}/members/{userId}")],
    guards=[in_org()],
    permissions=["member:remove"],
    description="Remove a member (not the last owner).",
)
def remove_member(input: MemberRef, ctx: Context) -> Done:
    services.remove_member(ctx, services.get_org(ctx.db, input.org_id), input.user_id)
    return Done()


# -- invitations ---------------------------------------------------------------------
@action(
    name="orgs.invitation.create",
    input=InviteInput,
    output=InvitationOut,
    triggers=[triggers.api("POST", "/{orgId}/invitations")],
    guards=[in_org()],
    permissions=["invitation:create"],
    description="Invite someone by email; they get a link to accept or decline.",
)
def create_invitation(input: InviteInput, ctx: Context) -> InvitationOut:
    org = services.get_org(ctx.db, input.org_id)
    inv, _token = services.invite(ctx, org, email=input.email, role=input.role)
    return _inv(inv, ctx)


@action(
    name="orgs.invitation.list",
    input=OrgRef,
    output=InvitationList,
    triggers=[triggers.api("GET", "/{orgId}/invitations")],
    guards=[in_org()],
    permissions=["invitation:read"],
    description="Invitations of an organization.",
)
def list_invitations(input: OrgRef, ctx: Context) -> InvitationList:
    return InvitationList(items=[_inv(i, ctx) for i in services.invitations(ctx.db, input.org_id)])


@action(
    name="orgs.invitation.revoke",
    input=InvitationRef,
    output=InvitationOut,
    triggers=[triggers.api("POST", "/{orgId}/invitations/{invitationId}/revoke")],
    guards=[in_org()],
    permissions=["invitation:revoke"],
    description="Withdraw an invitation.",
)
def revoke_invitation(input: InvitationRef, ctx: Context) -> InvitationOut:
    inv = services.get_invitation(ctx.db, input.org_id, input.invitation_id)
    return _inv(services.revoke_invitation(ctx, inv), ctx)


@action(
    name="orgs.invitation.resend",
    input=InvitationRef,
    output=InvitationOut,
    triggers=[triggers.api("POST", "/{orgId}/invitations/{invitationId}/resend")],
    guards=[in_org()],
    permissions=["invitation:create"],
    description="Send the invitation again with a new link and a fresh expiry.",
)
def resend_invitation(input: InvitationRef, ctx: Context) -> InvitationOut:
    org = services.get_org(ctx.db, input.org_id)
    inv, _ = services.resend_invitation(
        ctx, org, services.get_invitation(ctx.db, org.id, input.invitation_id)
    )
    return _inv(inv, ctx)


@action(
    name="orgs.invitation.accept",
    input=TokenInput,
    output=MemberOut,
    triggers=[triggers.api("POST", "/invitations/accept")],
    guards=[guards.authenticated()],
    description="Accept an invitation as the invited (signed-in) user.",
)
def accept_invitation(input: TokenInput, ctx: Context) -> MemberOut:
    m = services.accept_invitation(ctx, input.token)
    return MemberOut.of(m, ctx.actor.email, ctx.actor.name)


@action(
    name="orgs.invitation.decline",
    input=TokenInput,
    output=Done,
    triggers=[triggers.api("POST", "/invitations/decline")],
    public=True,
    guards=[guards.rate_limit("30/minute", per="ip")],
    description="Decline an invitation; the token is the proof.",
)
def decline_invitation(input: TokenInput, ctx: Context) -> Done:
    services.decline_invitation(ctx, input.token)
    return Done()
