from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bunbase.clock import clock
from bunbase.db import db
from bunbase.ids import new_id
from bunbase.tenancy import TenantScoped


class ServiceAccount(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """A non-human principal of one organization; its role is a `Membership` row."""

    __tablename__ = "service_accounts"
    __table_args__ = (
        UniqueConstraint("org_id", "name", name="uq_service_accounts_org_name"),
        Index("ix_service_accounts_tenant_org_id", "tenant_id", "org_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("sva"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)
    disabled_at: Mapped[datetime | None] = mapped_column()
    disabled_by: Mapped[str | None] = mapped_column(String(40))


class ApiKey(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """One API key. Only the SHA-256 of the full token is stored; `prefix` finds the row."""

    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("tenant_id", "prefix", name="uq_api_keys_tenant_prefix"),
        Index("ix_api_keys_tenant_org_id", "tenant_id", "org_id", "id"),
        Index("ix_api_keys_owner", "tenant_id", "owner_type", "owner_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    scopes: Mapped[list[Any]] = mapped_column(JSON, nullable=False)
    owner_type: Mapped[str] = mapped_column(String(20), nullable=False)  # user | service_account
    owner_id: Mapped[str] = mapped_column(String(40), nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by: Mapped[str | None] = mapped_column(String(40))
    rotated_from_id: Mapped[str | None] = mapped_column(String(40))
    replaced_by_id: Mapped[str | None] = mapped_column(String(40))
    last_used_at: Mapped[datetime | None] = mapped_column()
    last_used_ip: Mapped[str | None] = mapped_column(String(64))

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
