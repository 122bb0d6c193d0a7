"""API key and service account actions: contracts (pydantic) and thin handlers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from bunbase import Context, Contract, action, triggers
from bunbase.contracts import Cursor, Timestamp
from modules.api_keys import services
from modules.api_keys.models import ApiKey, ServiceAccount
from modules.rbac.guards import in_org
from modules.rbac.models import Role

KeyStatus = Literal["active", "expired", "revoked"]
Id = Field(min_length=1, max_length=40)


# -- contracts -----------------------------------------------------------------------
class KeyOut(Contract):
    """A key as listed: never its secret nor its hash."""

    key_id: str
    org_id: str
    name: str
    prefix: str
    scopes: list[str]
    owner_type: Literal["user", "service_account"]
    owner_id: str
    status: KeyStatus
    created_by: str | None
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    last_used_at: Timestamp | None
    last_used_ip: str | None
    rotated_from_id: str | None
    replaced_by_id: str | None

    @classmethod
    def of(cls, key: ApiKey, ctx: Context) -> KeyOut:
        return cls(**_key_fields(key, ctx))


def _key_fields(key: ApiKey, ctx: Context) -> dict[str, Any]:
    return {
        "key_id": key.id,
        "org_id": key.org_id,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "owner_type": key.owner_type,
        "owner_id": key.owner_id,
        "status": key.status(ctx.now()),
        "created_by": key.created_by,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
        "last_used_ip": key.last_used_ip,
        "rotated_from_id": key.rotated_from_id,
        "replaced_by_id": key.replaced_by_id,
    }


class CreatedKey(KeyOut):
    """Returned once, at creation or rotation: `secret` is the whole bearer token."""

    secret: str


class RotatedKey(CreatedKey):
    previous_key_id: str
    previous_expires_at: Timestamp | None


class CreateKeyInput(Contract):
    org_id: str = Id
    name: str = Field(min_length=1, max_length=120)
    scopes: list[str] = Field(min_length=1, max_length=64)
    expires_at: Timestamp | None = None
    service_account_id: str | None = Field(default=None, max_length=40)


class ListKeysInput(Contract):
    org_id: str = Id
    status: KeyStatus | None = None
    owner_id: str | None = Field(default=None, max_length=40)
    cursor: Cursor | None = None
    limit: int = Field(default=20, ge=1, le=100)


class KeyList(Contract):
    items: list[KeyOut]
    total: int
    next_cursor: str | None


class KeyRef(Contract):
    key_id: str = Id


class RotateKeyInput(KeyRef):
    grace_seconds: int = Field(default=86_400, ge=0, le=30 * 86_400)


class ServiceAccountOut(Contract):
    service_account_id: str
    org_id: str
    name: str
    description: str
    role: str | None
    status: Literal["active", "disabled"]
    created_by: str | None
    created_at: Timestamp
    disabled_at: Timestamp | None

    @classmethod
    def of(cls, sa: ServiceAccount, role: Role | None) -> ServiceAccountOut:
        return cls(
            service_account_id=sa.id,
            org_id=sa.org_id,
            name=sa.name,
            description=sa.description,
            role=role.key if role else None,
            status="disabled" if sa.disabled_at else "active",
            created_by=sa.created_by,
            created_at=sa.created_at,
            disabled_at=sa.disabled_at,
        )


class CreateServiceAccountInput(Contract):
    org_id: str = Id
    name: str = Field(min_length=2, max_length=120)
    description: str = Field(default="", max_length=2000)
    role: str = Field(default="viewer", min_length=1, max_length=60)


class ListServiceAccountsInput(Contract):
    org_id: str = Id
    status: Literal["active", "disabled"] | None = None


class ServiceAccountList(Contract):
    items: list[ServiceAccountOut]


class ServiceAccountRef(Contract):
    service_account_id: str = Id


class UpdateServiceAccountRoleInput(ServiceAccountRef):
    role: str = Field(min_length=1, max_length=60)


# -- keys ----------------------------------------------------------------------------
@action(
    name="api_keys.key.create",
    input=CreateKeyInput,
    output=CreatedKey,
    triggers=[triggers.api("POST", "")],
    guards=[in_org()],
    permissions=["api_key:create"],
    description=(
        "Create an API key in an organization, owned by the caller or a service account "
        "(`serviceAccountId`). `secret` is returned once; the key never exceeds its owner."
    ),
)
def create_key(input: CreateKeyInput, ctx: Context) -> CreatedKey:
    key, token = services.create_key(
        ctx,
        org_id=input.org_id,
        name=input.name,
        scopes=input.scopes,
        expires_at=input.expires_at,
        service_account_id=input.service_account_id,
    )
    return CreatedKey(**_key_fields(key, ctx), secret=token)


@action(
    name="api_keys.key.list",
    input=ListKeysInput,
    output=KeyList,
    triggers=[triggers.api("GET", "")],
    guards=[in_org()],
    permissions=["api_key:read"],
    description="An organization's API keys, newest first (never their secrets).",
)
def list_keys(input: ListKeysInput, ctx: Context) -> KeyList:
    page = services.list_keys(
        ctx.db,
        org_id=input.org_id,
        status=input.status,
        owner=input.owner_id,
        cursor=input.cursor,
        limit=input.limit,
    )
    return KeyList(
        items=[KeyOut.of(k, ctx) for k in page.items],
        total=page.total,
        next_cursor=page.next_cursor,
    )


@action(
    name="api_keys.key.rotate",
    input=RotateKeyInput,
    output=RotatedKey,
    triggers=[triggers.api("POST", "/{keyId}/rotate")],
    guards=[in_org(resolve=services.org_of_key, not_found="API key not found")],
    permissions=["api_key:update"],
    description=(
        "Issue a new secret (same name, scopes, owner, org); the old key keeps working for "
        "`graceSeconds` (default 24 h, 0 = stops now)."
    ),
)
def rotate_key(input: RotateKeyInput, ctx: Context) -> RotatedKey:
    old = services.get_key(ctx.db, input.key_id)
    new, token = services.rotate_key(ctx, old, timedelta(seconds=input.grace_seconds))
    return RotatedKey(
        **_key_fields(new, ctx),
        secret=token,
        previous_key_id=old.id,
        previous_expires_at=old.expires_at,
    )


@action(
    name="api_keys.key.revoke",
    input=KeyRef,
    output=KeyOut,
    triggers=[triggers.api("POST", "/{keyId}/revoke")],
    guards=[in_org(resolve=services.org_of_key, not_found="API key not found")],
    permissions=["api_key:revoke"],
    description="Revoke an API key; it stops working at once.",
)
def revoke_key(input: KeyRef, ctx: Context) -> KeyOut:
    key = services.revoke_key(ctx, services.get_key(ctx.db, input.key_id))
    return KeyOut.of(key, ctx)


# -- service accounts ----------------------------------------------------------------
@action(
    name="api_keys.service_account.create",
    input=CreateServiceAccountInput,
    output=ServiceAccountOut,
    triggers=[triggers.api("POST", "/service-accounts")],
    guards=[in_org()],
    permissions=["service_account:create"],
    description="Create a service account holding a role (key or id) in the organization.",
)
def create_service_account(input: CreateServiceAccountInput, ctx: Context) -> ServiceAccountOut:
    sa, role = services.create_service_account(
        ctx,
        org_id=input.org_id,
        name=input.name,
        description=input.description,
        role=input.role,
    )
    return ServiceAccountOut.of(sa, role)


@action(
    name="api_keys.service_account.list",
    input=ListServiceAccountsInput,
    output=ServiceAccountList,
    triggers=[triggers.api("GET", "/service-accounts")],
    guards=[in_org()],
    permissions=["service_account:read"],
    description="An organization's service accounts with their roles.",
)
def list_service_accounts(input: ListServiceAccountsInput, ctx: Context) -> ServiceAccountList:
    rows = services.list_service_accounts(ctx.db, input.org_id, input.status)
    return ServiceAccountList(items=[ServiceAccountOut.of(sa, r) for sa, r in rows])


@action(
    name="api_keys.service_account.update_role",
    input=UpdateServiceAccountRoleInput,
    output=ServiceAccountOut,
    triggers=[triggers.api("PATCH", "/service-accounts/{serviceAccountId}")],
    guards=[in_org(resolve=services.org_of_service_account, not_found="Service account not found")],
    permissions=["service_account:update"],
    description="Change a service account's role; its keys follow at once.",
)
def update_service_account_role(input: UpdateServiceAccountRoleInput, ctx: Context) -> ServiceAccountOut:
    sa = services.get_service_account(ctx.db, input.service_account_id)
    role = services.update_service_account_role(ctx, sa, input.role)
    return ServiceAccountOut.of(sa, role)


@action(
    name="api_keys.service_account.disable",
    input=ServiceAccountRef,
    output=ServiceAccountOut,
    triggers=[triggers.api("POST", "/service-accounts/{serviceAccountId}/disable")],
    guards=[in_org(resolve=services.org_of_service_account, not_found="Service account not found")],
    permissions=["service_account:update"],
    description="Disable a service account; its keys stop working at once.",
)
def disable_service_account(input: ServiceAccountRef, ctx: Context) -> ServiceAccountOut:
    sa = services.disable_service_account(ctx, services.get_service_account(ctx.db, input.service_account_id))
    return ServiceAccountOut.of(sa, services.sa_role(ctx.db, sa))
