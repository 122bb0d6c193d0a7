"""`run_visible()`: the guard of `GET /v1/runs/{runId}` (the rule is `bunbase.runs`)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from bunbase import runs
from bunbase.context import Context
from bunbase.errors import NotFound, Unauthenticated
from bunbase.guards import Guard


@dataclass
class RunVisible(Guard):
    """The run must exist in the tenant and be one the caller may read; anything else is
    the same 404, so a run's existence is never told to someone who may not read it. The
    run found is kept for the handler (`ctx.extras["run"]`)."""

    kind = "run_visible"

    def check(self, ctx: Context) -> None:
        if not ctx.actor.is_authenticated:
            raise Unauthenticated()
        run = runs.load(ctx.db, str(ctx.raw_input.get("runId") or ""))
        registry = current_app.extensions["bunbase"].registry
        if run is None or not runs.can_see(ctx, run, registry.get(run.action_name)):
            raise NotFound("Run not found")
        ctx.extras["run"] = run


def run_visible() -> Guard:
    return RunVisible()
