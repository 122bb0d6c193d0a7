"""Role actions: `/v1/roles/*`. Roles are tenant-wide, so only tenant admins and platform
operators manage them (an org admin's `role:*` covers one org, not the whole workspace).
"""

from __future__ import annotations

from pydantic import Field

from bunbase import Context, Contract, Empty, action, guards, triggers
from modules.rbac import services
from modules.rbac.models import Role

RoleKey = Field(min_length=2, max_length=60, pattern=r"^[a-z][a-z0-9_-]{1,59}$")
Permission = Field(min_length=1, max_length=120)


class RoleOut(Contract):
    role_id: str
    key: str
    name: str
    description: str
    is_system: bool
    permissions: list[str]

    @classmethod
    def of(cls, role: Role) -> RoleOut:
        return cls(
            role_id=role.id,
            key=role.key,
            name=role.name,
            description=role.description,
            is_system=role.is_system,
            permissions=sorted(role.permissions),
        )


class RoleList(Contract):
    items: list[RoleOut]


class CreateRoleInput(Contract):
    key: str = RoleKey
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    permissions: list[str] = Field(default_factory=list, max_length=200)


class RoleRef(Contract):
    role_id: str = Field(min_length=1, max_length=40)


class UpdateRoleInput(RoleRef):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    description: str | None = Field(default=None, max_length=2000)
    permissions: list[str] | None = Field(default=None, max_length=200)


class SetPermissionInput(RoleRef):
    permission: str = Permission
    granted: bool


class Done(Contract):
    ok: bool = True


@action(
    name="rbac.role.list",
    input=Empty,
    output=RoleList,
    triggers=[triggers.api("GET", "")],
    guards=[guards.authenticated()],
    description="The workspace's roles with their permissions.",
)
def list_roles(input: Empty, ctx: Context) -> RoleList:
    return RoleList(items=[RoleOut.of(r) for r in services.list_roles(ctx.db)])


@action(
    name="rbac.role.create",
    input=CreateRoleInput,
    output=RoleOut,
    triggers=[triggers.api("POST", "")],
    guards=[guards.tenant_admin()],  # roles are workspace-wide
    description="Create a custom role (workspace administrators only).",
)
def create_role(input: CreateRoleInput, ctx: Context) -> RoleOut:
    role = services.create_role(
        ctx,
        key=input.key,
        name=input.name,
        description=input.description,
        permissions=input.permissions,
    )
    return RoleOut.of(role)


@action(
    name="rbac.role.update",
    input=UpdateRoleInput,
    output=RoleOut,
    triggers=[triggers.api("PATCH", "/{roleId}")],
    guards=[guards.tenant_admin()],  # roles are workspace-wide
    description="Rename a custom role or replace its permissions; system roles are locked.",
)
def update_role(input: UpdateRoleInput, ctx: Context) -> RoleOut:
    role = services.update_role(
        ctx,
        services.get_role(ctx.db, input.role_id),
        name=input.name,
        description=input.description,
        permissions=input.permissions,
    )
    return RoleOut.of(role)


@action(
    name="rbac.role.set_permission",
    input=SetPermissionInput,
    output=RoleOut,
    triggers=[triggers.api("POST", "/{roleId}/permissions")],
    guards=[guards.tenant_admin()],  # roles are workspace-wide
    description="Grant or revoke one permission of a custom role (one cell of the grid).",
)
def set_permission(input: SetPermissionInput, ctx: Context) -> RoleOut:
    role = services.set_grant(ctx, services.get_role(ctx.db, input.role_id), input.permission, input.granted)
    return RoleOut.of(role)


@action(
    name="rbac.role.delete",
    input=RoleRef,
    output=Done,
    triggers=[triggers.api("DELETE", "/{roleId}")],
    guards=[guards.tenant_admin()],  # roles are workspace-wide
    description="Delete a custom role nobody holds (409 while it is in use).",
)
def delete_role(input: RoleRef, ctx: Context) -> Done:
    services.delete_role(ctx, services.get_role(ctx.db, input.role_id))
    return Done()
