from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from bunbase.clock import clock
from bunbase.db import db
from bunbase.ids import new_id
from bunbase.tenancy import TenantScoped


class UserToken(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """A single-use, expiring token mailed to a user (email verification, password reset).

    Only the SHA-256 of the token is stored. `used_at` marks it spent; `revoked_at` marks
    it replaced by a newer token of the same purpose.
    """

    __tablename__ = "user_tokens"
    __table_args__ = (Index("ix_user_tokens_user_purpose", "tenant_id", "user_id", "purpose"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("utk"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    purpose: Mapped[str] = mapped_column(String(20), nullable=False)  # verify_email | reset
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
