from bunbase import NavItem, modules

module = modules.module(
    "orgs",
    api_prefix="/orgs",
    depends_on=["rbac"],
    description="Organizations, memberships, invitations and ownership.",
    nav=[
        NavItem("Platform", "Organizations", "orgs_studio.orgs", order=20, icon="building"),
        NavItem("Platform", "Memberships", "orgs_studio.memberships", order=21, icon="users"),
    ],
)
