from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bunbase.clock import clock
from bunbase.db import db
from bunbase.ids import new_id
from bunbase.tenancy import TenantScoped


class Ticket(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "support_tickets"
    __table_args__ = (Index("ix_support_tickets_tenant_org_id", "tenant_id", "org_id", "id"),)

    # no index of its own: the composite index above leads with it
    tenant_id: Mapped[str] = mapped_column(String(40), nullable=False)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("tkt"))
    org_id: Mapped[str] = mapped_column(String(40), nullable=False)
    subject: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    priority: Mapped[str] = mapped_column(String(10), nullable=False)
    status: Mapped[str] = mapped_column(String(20), default="open", nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)
