from __future__ import annotations

from typing import Any

from bunbase import Context
from bunbase.jobs import job
from tests.fixture_modules.trial import services


@job(services.WARNING_JOB)
def trial_warning(payload: dict[str, Any], ctx: Context) -> dict[str, bool]:
    return {"sent": services.send_warning(ctx, payload["orgId"])}


@job(services.EXPIRATIONS_JOB)
def process_trial_expirations(payload: dict[str, Any], ctx: Context) -> dict[str, list[str]]:
    return {"expired": services.process_expirations(ctx)}
