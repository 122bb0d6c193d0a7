"""The current tenant, and the rule that every tenant-owned query is filtered by it.

Tenant-owned models inherit :class:`TenantScoped`. While a tenant is current, every ORM
SELECT/UPDATE/DELETE gets ``tenant_id = <current>`` added, and new rows get the current
tenant stamped on flush. With no tenant current, touching a tenant-owned model raises
unless the code says so explicitly with :func:`unscoped` (platform-level work such as the
Studio operator's cross-tenant views, the buffered writer and migrations).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import String, event
from sqlalchemy.orm import Mapped, Session, mapped_column, with_loader_criteria

_current_tenant: ContextVar[str | None] = ContextVar("bunbase_tenant", default=None)
_unscoped: ContextVar[bool] = ContextVar("bunbase_unscoped", default=False)


class TenantRequired(RuntimeError):
    """A tenant-owned table was touched with no tenant current and no `unscoped()` block."""


class TenantScoped:
    """Mixin for every tenant-owned model."""

    tenant_id: Mapped[str] = mapped_column(String(40), index=True, nullable=False)


def current_tenant_id() -> str | None:
    return _current_tenant.get()


@contextmanager
def tenant_scope(tenant_id: str) -> Iterator[None]:
    token = _current_tenant.set(tenant_id)
    try:
        yield
    finally:
        _current_tenant.reset(token)


def set_tenant(tenant_id: str | None) -> None:
    """Set the tenant for the rest of this context (a request or a job)."""
    _current_tenant.set(tenant_id)


@contextmanager
def unscoped() -> Iterator[None]:
    token = _unscoped.set(True)
    try:
        yield
    finally:
        _unscoped.reset(token)


_criteria: dict[str, Any] = {}


def _criteria_for(tenant_id: str) -> Any:
    """The loader option that filters by tenant, made once per tenant (every ORM query of
    the platform gets one; building it is a good part of a small query's cost)."""
    option = _criteria.get(tenant_id)
    if option is None:
        if len(_criteria) >= 4096:
            _criteria.clear()
        option = _criteria[tenant_id] = with_loader_criteria(
            TenantScoped,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
        )
    return option


def _touches_scoped(state: Any) -> bool:
    return any(issubclass(mapper.class_, TenantScoped) for mapper in state.all_mappers)


def tenant_for_new(tenant_id: str | None, what: str) -> str:
    """The tenant of a new tenant-owned row given `tenant_id` (None: the one in scope);
    one of another tenant is refused."""
    current = _current_tenant.get()
    if tenant_id is None:
        if current is None:
            raise TenantRequired(f"new {what} has no tenant")
        return current
    if current is not None and tenant_id != current and not _unscoped.get():
        raise TenantRequired(f"new {what} belongs to another tenant")
    return tenant_id


def check_new(objects: Iterable[Any]) -> None:
    """New tenant-owned objects get the current tenant (`tenant_for_new`)."""
    for obj in objects:
        if isinstance(obj, TenantScoped):
            tenant_id = tenant_for_new(obj.tenant_id, type(obj).__name__)
            if obj.tenant_id is None:
                obj.tenant_id = tenant_id


def install(session_cls: Any) -> None:
    """Attach the scoping listeners to a Session class (done once at import)."""

    @event.listens_for(session_cls, "do_orm_execute")
    def _scope_queries(state: Any) -> None:
        if _unscoped.get() or not (state.is_select or state.is_update or state.is_delete):
            return
        if state.is_column_load or state.is_relationship_load:
            return
        tenant_id = _current_tenant.get()
        if tenant_id is None:
            if _touches_scoped(state):
                raise TenantRequired("query on a tenant-owned table with no tenant in scope")
            return
        state.statement = state.statement.options(_criteria_for(tenant_id))

    @event.listens_for(session_cls, "before_flush")
    def _stamp_tenant(session: Session, _ctx: Any, _instances: Any) -> None:
        check_new(session.new)
        tenant_id = _current_tenant.get()
        if tenant_id is None or _unscoped.get():
            return
        for obj in session.dirty:
            if isinstance(obj, TenantScoped) and obj.tenant_id != tenant_id:
                raise TenantRequired(f"{type(obj).__name__} belongs to another tenant")
