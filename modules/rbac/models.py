from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bunbase.clock import clock
from bunbase.db import db
from bunbase.ids import new_id
from bunbase.tenancy import TenantScoped


class Role(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "rbac_roles"
    __table_args__ = (UniqueConstraint("tenant_id", "key", name="uq_rbac_roles_tenant_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rol"))
    key: Mapped[str] = mapped_column(String(60), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    is_system: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)

    grants: Mapped[list[RolePermission]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="RolePermission.permission"
    )

    @property
    def permissions(self) -> set[str]:
        return {g.permission for g in self.grants}


class RolePermission(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "rbac_role_permissions"
    __table_args__ = (UniqueConstraint("role_id", "permission", name="uq_rbac_role_permission"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rpm"))
    role_id: Mapped[str] = mapped_column(ForeignKey("rbac_roles.id", ondelete="CASCADE"), index=True)
    permission: Mapped[str] = mapped_column(String(120), nullable=False)


class RoleSet(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """Which roles an org offers, which one its creator gets and which new members get."""

    __tablename__ = "rbac_role_sets"
    __table_args__ = (UniqueConstraint("tenant_id", "key", name="uq_rbac_role_sets_tenant_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rst"))
    key: Mapped[str] = mapped_column(String(60), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)

    entries: Mapped[list[RoleSetRole]] = relationship(cascade="all, delete-orphan", lazy="selectin")


class RoleSetRole(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "rbac_role_set_roles"
    __table_args__ = (UniqueConstraint("role_set_id", "role_id", name="uq_rbac_role_set_role"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rsr"))
    role_set_id: Mapped[str] = mapped_column(ForeignKey("rbac_role_sets.id", ondelete="CASCADE"), index=True)
    role_id: Mapped[str] = mapped_column(ForeignKey("rbac_roles.id", ondelete="CASCADE"))
    is_creator_role: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    is_default_member_role: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)

    role: Mapped[Role] = relationship(lazy="joined")


class Membership(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """A principal (user or service account) holding one role in one organization."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("org_id", "principal_type", "principal_id", name="uq_memberships_principal"),
        Index("ix_memberships_principal", "tenant_id", "principal_type", "principal_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mbr"))
    org_id: Mapped[str] = mapped_column(String(40), index=True, nullable=False)
    principal_type: Mapped[str] = mapped_column(String(20), default="user", nullable=False)
    principal_id: Mapped[str] = mapped_column(String(40), nullable=False)
    role_id: Mapped[str] = mapped_column(ForeignKey("rbac_roles.id"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(default=clock.now, nullable=False)

    role: Mapped[Role] = relationship(lazy="joined")


class DecisionRecord(TenantScoped, db.Model):  # type: ignore[name-defined,misc]
    """Every allow / deny with its reason. Written through the buffer, never rolled back."""

    __tablename__ = "rbac_decisions"
    __table_args__ = (Index("ix_rbac_decisions_lookup", "tenant_id", "actor_id", "org_id", "permission"),)

    # no index of its own: the lookup index above leads with it
    tenant_id: Mapped[str] = mapped_column(String(40), nullable=False)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    actor_type: Mapped[str] = mapped_column(String(20), nullable=False)
    actor_id: Mapped[str | None] = mapped_column(String(40))
    principal_id: Mapped[str | None] = mapped_column(String(40))
    org_id: Mapped[str | None] = mapped_column(String(40))
    permission: Mapped[str] = mapped_column(String(120), nullable=False)
    allowed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str] = mapped_column(String(400), nullable=False)
    action_name: Mapped[str | None] = mapped_column(String(200))
    trace_id: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(nullable=False)
