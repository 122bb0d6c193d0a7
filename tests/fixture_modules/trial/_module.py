from bunbase import guards, modules

module = modules.module(
    "trial",
    api_prefix="/trial",
    guards=[guards.authenticated()],
    depends_on=["orgs"],
    description="Test-only billing + email module: the handbook's trial lifecycle.",
)
