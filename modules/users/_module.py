from bunbase import NavItem, modules

module = modules.module(
    "users",
    api_prefix="/users",
    depends_on=["auth"],
    description="Accounts: sign-up, email verification, passwords, and user administration.",
    nav=[NavItem("Platform", "Users", "users_studio.users", order=10, icon="users")],
)
