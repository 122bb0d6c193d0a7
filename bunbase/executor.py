"""The one executor every trigger goes through.

resolve tenant -> authenticate -> guards -> validate input -> idempotency -> handler in one
transaction (with its audit entry and outbox rows) -> validate output -> commit ->
hand the outbox to the courier -> record the run (buffered).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from flask import current_app
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.exc import DataError

from bunbase import idempotency
from bunbase.actions import Action, redact
from bunbase.buffer import WriteBuffer
from bunbase.clock import clock
from bunbase.context import ANONYMOUS, Actor, Context, RequestInfo, TenantRef
from bunbase.db import begin_write, db, insert_new, reads_then_write, write_intent
from bunbase.errors import (
    BadRequest,
    BunbaseError,
    Internal,
    ValidationFailed,
    failure_envelope,
    success_envelope,
)
from bunbase.guards import describe
from bunbase.ids import new_id
from bunbase.models import IdempotencyRecord
from bunbase.outbox import courier
from bunbase.tenancy import set_tenant

log = structlog.get_logger("bunbase.executor")

Resolver = Callable[[], tuple[TenantRef, Actor]]
OUT_OF_RANGE = "A value in the request is out of range or too long for what it sets"


@dataclass
class Outcome:
    status: int
    body: dict[str, Any]
    run_id: str
    headers: dict[str, str] = field(default_factory=dict)
    data: Any = None


@dataclass
class Call:
    """Everything the executor needs to know about one invocation."""

    trigger: str
    resolve: Resolver
    trace_id: str
    request: RequestInfo = field(default_factory=RequestInfo)
    idempotency_key: str | None = None
    org_id: str | None = None


class Executor:
    def __init__(
        self,
        buffer: WriteBuffer,
        idempotency_ttl: timedelta,
        *,
        sqlite: bool = False,
        request_timeout: timedelta = timedelta(seconds=30),
    ) -> None:
        self.buffer = buffer
        self.idempotency_ttl = idempotency_ttl
        self.sqlite = sqlite
        self.request_timeout = request_timeout

    def run(self, action: Action, raw_input: Mapping[str, Any], call: Call) -> Outcome:
        run_id = new_id("run")
        started_at = clock.now()
        t0 = time.perf_counter()
        tenant: TenantRef | None = None
        actor: Actor = ANONYMOUS
        ctx: Context | None = None
        claim: IdempotencyRecord | None = None
        status_word = "ok"
        failure: BunbaseError | None = None
        data_out: Any = None
        session = db.session()  # the request's Session itself, not the scoped proxy
        # SQLite: a mutating call reads (auth, guards) with no BEGIN, then takes the write
        # lock on the same connection at the first statement of the part that writes
        # (claim, handler, commit); see `bunbase.db.reads_then_write` and `begin_write`
        lazy = action.mutating and self.sqlite
        try:
            with reads_then_write() if lazy else nullcontext():
                tenant, actor = call.resolve()
                set_tenant(tenant.id)
                ctx = Context(
                    tenant=tenant,
                    actor=actor,
                    trace_id=call.trace_id,
                    run_id=run_id,
                    db=session,
                    trigger=call.trigger,
                    action=action,
                    request=call.request,
                    org_id=call.org_id,
                    raw_input=dict(raw_input),
                )
                passed = self._guards(action, ctx)
                ctx.decision = "allowed: " + (", ".join(passed) or "no guards")
                data_in = self._validate(action.input, raw_input)
            if lazy:
                begin_write(session)
            with write_intent() if action.mutating else nullcontext():
                if call.idempotency_key and action.mutating:
                    got = idempotency.claim(
                        session,
                        tenant_id=tenant.id,
                        actor_id=actor.id or "anonymous",
                        action_name=action.name,
                        key=call.idempotency_key,
                        req_hash=idempotency.request_hash(dict(raw_input)),
                        ttl=self.idempotency_ttl,
                        stale_after=self.request_timeout,
                    )
                    if isinstance(got, idempotency.Replay):
                        status_word = "replayed"
                        body = idempotency.unseal(got.body, str(current_app.config["SECRET_KEY"]))
                        return Outcome(int(got.status), body, run_id, {"Idempotent-Replayed": "true"})
                    claim = got
                result = action.handler(data_in, ctx)
                data_out = self._output(action, result)
                if action.mutating and action.audit and not ctx.audit.entries:
                    ctx.audit.record(**_default_target(data_out))
                body = success_envelope(data_out, run_id, call.trace_id)
                if claim is not None:
                    stored = idempotency.seal(body, action.redact, str(current_app.config["SECRET_KEY"]))
                    idempotency.complete(claim, 200, stored)
                insert_new(session)  # new rows without the unit of work, where it can
                session.commit()
            courier.send(ctx.outbox.items)  # jobs and events: pushed in the background
            return Outcome(200, body, run_id, data=data_out)
        except BunbaseError as err:
            status_word, failure = "error", err
            self._abort(claim)
            return _failure(err, run_id, call.trace_id)
        except (OverflowError, DataError) as exc:
            # a value the input passed on that the database (or a datetime) cannot hold: the
            # caller's to fix, never a 500
            status_word, failure = "error", BadRequest(OUT_OF_RANGE)
            log.warning("value out of range", action=action.name, trace_id=call.trace_id, error=str(exc))
            self._abort(claim)
            return _failure(failure, run_id, call.trace_id)
        except Exception:
            status_word, failure = "error", Internal()
            log.exception("action failed", action=action.name, trace_id=call.trace_id)
            self._abort(claim)
            return _failure(failure, run_id, call.trace_id)
        finally:
            if tenant is not None:
                run = {
                    "id": run_id,
                    "tenant_id": tenant.id,
                    "action_name": action.name,
                    "module_name": action.module_name,
                    "trigger_type": call.trigger,
                    "status": status_word,
                    "error_code": failure.code if failure else None,
                    "http_status": failure.status if failure else 200,
                    "trace_id": call.trace_id,
                    "actor_id": actor.id,
                    "org_id": ctx.verified_org_id if ctx is not None else None,
                    "input": _redact(raw_input, action.redact),
                    "output": (_redact(data_out, action.redact) if isinstance(data_out, dict) else data_out),
                    "error": failure.body() if failure else None,
                    "duration_ms": round((time.perf_counter() - t0) * 1000, 3),
                    "started_at": started_at,
                }
                self.buffer.add_run(run, _log_lines(ctx, run_id, tenant.id, call.trace_id))
            set_tenant(None)

    # -- pipeline steps --------------------------------------------------------------
    @staticmethod
    def _guards(action: Action, ctx: Context) -> list[str]:
        passed = []
        for guard in action.all_guards():
            guard(ctx)
            passed.append(describe(guard))
        return passed

    @staticmethod
    def _validate(model: type[BaseModel], raw: Mapping[str, Any]) -> BaseModel:
        try:
            return model.model_validate(raw)
        except PydanticValidationError as exc:
            raise ValidationFailed.from_pydantic(exc) from None

    @staticmethod
    def _output(action: Action, result: Any) -> Any:
        try:
            if isinstance(result, action.output):
                model = result
            elif isinstance(result, BaseModel):
                model = action.output.model_validate(result.model_dump())
            else:
                model = action.output.model_validate(result)
        except PydanticValidationError as exc:
            log.error("output failed validation", action=action.name, errors=exc.errors())
            raise Internal("The action returned an invalid result") from None
        return model.model_dump(mode="json", by_alias=True)

    @staticmethod
    def _abort(claim: IdempotencyRecord | None) -> None:
        db.session.rollback()
        if claim is not None:
            idempotency.release(db.session, claim.id)


def _failure(err: BunbaseError, run_id: str, trace_id: str) -> Outcome:
    return Outcome(err.status, failure_envelope(err, trace_id), run_id, err.headers())


def _log_lines(ctx: Context | None, run_id: str, tenant_id: str, trace_id: str) -> list[dict[str, Any]]:
    if ctx is None:
        return []
    return [
        {**line, "run_id": run_id, "tenant_id": tenant_id, "trace_id": trace_id} for line in ctx.logger.lines
    ]


def _redact(raw: Mapping[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    return redact(dict(raw), fields)  # type: ignore[no-any-return]


def _default_target(data: Any) -> dict[str, Any]:
    """Guess the audit target from an output such as {"ticketId": ...}."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key.endswith("Id") and isinstance(value, str):
                return {"target_type": key[:-2], "target_id": value}
            if key == "id" and isinstance(value, str):
                return {"target_id": value}
    return {}
