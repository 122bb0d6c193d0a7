"""`tenant_admin()` lives in the kernel (`bunbase.guards`); re-exported for this module."""

from bunbase.guards import TenantAdmin, tenant_admin

__all__ = ["TenantAdmin", "tenant_admin"]
