from bunbase import NavItem, modules

module = modules.module(
    "audit",
    api_prefix="/audit",
    depends_on=["rbac"],
    description="The audit log: hash-chained per tenant, searchable, and 'why?' for access.",
    permissions=["audit:read"],
    nav=[
        NavItem("System", "Audit log", "audit_studio.events", order=80, icon="logs"),
        NavItem("Platform", "Why? (access)", "audit_studio.why", order=35, icon="shield"),
    ],
)
