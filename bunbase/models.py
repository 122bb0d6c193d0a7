"""Kernel tables: tenants, minimal identity, runs and logs, audit, idempotency, outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bunbase.clock import clock
from bunbase.db import db
from bunbase.ids import new_id
from bunbase.tenancy import TenantScoped


def _now() -> datetime:
    return clock.now()


class Tenant(db.Model):  # type: ignore[name-defined,misc]
    """The tenant registry. Bindings (db, storage, queue namespace) live here."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("tnt"))
    slug: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    hostname: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="active", nullable=False)
    bindings: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    created_at: Mapped[datetime] = mapped_column(default=_now, nullable=False)


class User(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("usr"))
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    name: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    # Grants Studio for the user's own tenant.
    is_tenant_admin: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Grants Studio across every tenant, with the tenant switcher.
    is_platform_operator: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    email_verified_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=_now, nullable=False)

    @property
    def can_use_studio(self) -> bool:
        return self.is_active and (self.is_tenant_admin or self.is_platform_operator)


class AuthSession(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """A server-side session. Only the SHA-256 of its bearer token is stored."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ses"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(20), default="api", nullable=False)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(default=_now, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(default=_now, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship(lazy="joined")


class ActionRun(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """One execution of an action, written through the buffered writer."""

    __tablename__ = "action_runs"
    __table_args__ = (
        Index("ix_action_runs_tenant_id_id", "tenant_id", "id"),
        Index("ix_action_runs_tenant_action_id", "tenant_id", "action_name", "id"),
    )

    # no index of its own: the composite indexes above lead with it
    tenant_id: Mapped[str] = mapped_column(String(40), nullable=False)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    action_name: Mapped[str] = mapped_column(String(200), nullable=False)
    module_name: Mapped[str] = mapped_column(String(100), nullable=False)
    trigger_type: Mapped[str] = mapped_column(String(20), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    error_code: Mapped[str | None] = mapped_column(String(60))
    http_status: Mapped[int | None] = mapped_column(Integer)
    trace_id: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    actor_id: Mapped[str | None] = mapped_column(String(40))
    #: the org the run acted in, as its `in_org` guard verified it (who may read the run)
    org_id: Mapped[str | None] = mapped_column(String(40))
    input: Mapped[dict[str, Any] | None] = mapped_column()
    output: Mapped[dict[str, Any] | None] = mapped_column()
    error: Mapped[dict[str, Any] | None] = mapped_column()
    duration_ms: Mapped[float] = mapped_column(nullable=False)
    started_at: Mapped[datetime] = mapped_column(nullable=False)


class ActionLog(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "action_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(40), index=True, nullable=False)
    trace_id: Mapped[str] = mapped_column(String(64), nullable=False)
    level: Mapped[str] = mapped_column(String(10), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    meta: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(nullable=False)


class AuditEntry(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """Append-only record of a change, written in the same transaction as the change.

    Entries are inserted unsealed (`seq` NULL); the sealer (`bunbase.audit_chain`) later
    gives each tenant's entries consecutive `seq` numbers and hash-chains them.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_tenant_id_id", "tenant_id", "id"),
        # one chain per tenant: two sealers can never give out the same seq
        UniqueConstraint("tenant_id", "seq", name="uq_audit_entries_tenant_seq"),
        # the sealer's work queue: only unsealed rows are in it
        Index(
            "ix_audit_entries_unsealed",
            "tenant_id",
            "id",
            postgresql_where=text("seq IS NULL"),
            sqlite_where=text("seq IS NULL"),
        ),
    )

    # no index of its own: the composite index above leads with it
    tenant_id: Mapped[str] = mapped_column(String(40), nullable=False)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("aud"))
    actor_type: Mapped[str] = mapped_column(String(20), nullable=False)
    actor_id: Mapped[str | None] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(200), nullable=False)
    target_type: Mapped[str | None] = mapped_column(String(60))
    target_id: Mapped[str | None] = mapped_column(String(80))
    org_id: Mapped[str | None] = mapped_column(String(40))
    diff: Mapped[dict[str, Any] | None] = mapped_column()
    ip: Mapped[str | None] = mapped_column(String(64))
    trace_id: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(40))
    decision: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(default=_now, nullable=False)
    # the hash chain, filled in by the sealer
    seq: Mapped[int | None] = mapped_column(Integer)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class IdempotencyRecord(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("tenant_id", "actor_id", "action_name", "key", name="uq_idempotency_scope"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("idk"))
    actor_id: Mapped[str] = mapped_column(String(40), nullable=False)
    action_name: Mapped[str] = mapped_column(String(200), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(20), default="in_progress", nullable=False)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column()
    #: the process running the claimed request ("host:pid:start"), to release it if it dies
    owner: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=_now, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(index=True, nullable=False)


class OutboxItem(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """An effect written in the action's transaction and dispatched after commit."""

    __tablename__ = "outbox"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("obx"))
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    trace_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=_now, index=True, nullable=False)


class SealedValue(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """A secret a job needs (a reset link, an invitation code), encrypted with a key derived
    from SECRET_KEY. Job payloads carry only its id (`bunbase.sealed`)."""

    __tablename__ = "sealed_values"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("sec"))
    purpose: Mapped[str] = mapped_column(String(60), nullable=False)
    ciphertext: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(default=_now, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(index=True, nullable=False)
