from bunbase import NavItem, modules

module = modules.module(
    "rbac",
    api_prefix="/roles",
    description="Roles, permissions, role sets, memberships and the decision log.",
    permissions=["role:read", "role:create", "role:update", "role:delete", "member:read"],
    nav=[NavItem("Platform", "Roles & permissions", "rbac_studio.roles", order=30, icon="shield")],
)
