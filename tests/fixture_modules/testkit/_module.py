from bunbase import guards, module

module = module(
    "testkit",
    api_prefix="/testkit",
    guards=[guards.authenticated()],
    depends_on=["support"],
    description="Actions that exercise every executor path in tests.",
)
