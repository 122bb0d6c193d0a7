from bunbase import guards, modules

module = modules.module(
    "testkit",
    api_prefix="/testkit",
    guards=[guards.authenticated()],
    depends_on=["support"],
    description="Actions that exercise every executor path in tests.",
)
