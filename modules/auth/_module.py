from bunbase import module

module = module(
    "auth",
    api_prefix="/auth",
    description="Sign in and out: bearer session tokens for API clients.",
)
