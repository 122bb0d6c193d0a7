from bunbase import NavItem, modules

module = modules.module(
    "api_keys",
    api_prefix="/api-keys",
    depends_on=["rbac", "orgs"],
    description="API keys (scoped, hashed, rotatable) and service accounts.",
    permissions=[
        "api_key:create",
        "api_key:read",
        "api_key:update",
        "api_key:revoke",
        "service_account:create",
        "service_account:read",
        "service_account:update",
    ],
    nav=[
        NavItem("Platform", "API keys", "api_keys_studio.keys", order=40, icon="key"),
        NavItem(
            "Platform",
            "Service accounts",
            "api_keys_studio.service_accounts",
            order=41,
            icon="server",
        ),
    ],
)
