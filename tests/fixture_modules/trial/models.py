from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bunbase.clock import clock
from bunbase.db import db
from bunbase.ids import new_id
from bunbase.tenancy import TenantScoped


class Subscription(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """An org's plan: "trial" until it ends, then "free" until a payment method, then "pro"."""

    __tablename__ = "trial_subscriptions"
    __table_args__ = (UniqueConstraint("tenant_id", "org_id", name="uq_trial_subscriptions_tenant_org"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("sub"))
    org_id: Mapped[str] = mapped_column(String(40), nullable=False)
    plan: Mapped[str] = mapped_column(String(20), nullable=False)
    trial_ends_at: Mapped[datetime] = mapped_column(nullable=False)
    warned_at: Mapped[datetime | None] = mapped_column()
    expired_at: Mapped[datetime | None] = mapped_column()
    card_last4: Mapped[str | None] = mapped_column(String(4))
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)
