from bunbase import NavItem, guards, modules

module = modules.module(
    "support",
    api_prefix="/support",
    guards=[guards.authenticated()],
    depends_on=["rbac"],
    description="Support tickets: the copyable example module.",
    nav=[NavItem("Support", "Tickets", "support_studio.tickets", order=10, icon="inbox")],
)
