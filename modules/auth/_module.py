from bunbase import modules

module = modules.module(
    "auth",
    api_prefix="/auth",
    description="Sign in and out: bearer session tokens for API clients.",
)
