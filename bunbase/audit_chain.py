"""The audit log's per-tenant hash chain: seal entries after the fact, verify them later.

An action writes its audit entries unsealed (`seq` NULL), in its own transaction, so the
hot path pays nothing. The sealer then takes a tenant's unsealed entries in id order (ids
are time-ordered) and gives each the next `seq`, the previous entry's hash as `prev_hash`
and `hash = sha256(canonical JSON of the entry's fields + seq + prev_hash)`.

Two sealers never fork a chain: on Postgres the tenant's registry row is locked
(`SELECT ... FOR UPDATE`) for the batch; elsewhere a Redis lock is held and SQLite's
`BEGIN IMMEDIATE` serializes writers anyway; and `(tenant_id, seq)` is unique, so even a
bug could not commit two entries with one seq.

After each batch the chain head (seq, hash) is kept in Redis as an anchor outside the
database: `verify` then also notices entries cut off the end of the chain.

An entry whose transaction commits after later entries were sealed is appended with the
next seq: seq order is sealing order, which is id order within each batch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection, RowMapping, func, select, text, update
from sqlalchemy.engine import Engine

from bunbase import redis_conn
from bunbase.clock import clock
from bunbase.db import write_intent
from bunbase.models import AuditEntry

log = structlog.get_logger("bunbase.audit_chain")

GENESIS = "0" * 64
BATCH = 500
#: the columns a seal covers, in a fixed order (everything but the chain columns)
HASHED = (
    "id",
    "tenant_id",
    "actor_type",
    "actor_id",
    "action",
    "target_type",
    "target_id",
    "org_id",
    "diff",
    "ip",
    "trace_id",
    "run_id",
    "decision",
    "created_at",
)
_table = AuditEntry.__table__
_cols = [_table.c[name] for name in HASHED]


# -- hashing -------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(timespec="microseconds")
    return value


def canonical(fields: dict[str, Any], seq: int, prev_hash: str) -> bytes:
    """The bytes a seal covers: sorted keys, no whitespace, UTF-8."""
    doc = {name: _plain(fields.get(name)) for name in HASHED}
    doc["seq"], doc["prev_hash"] = seq, prev_hash
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def entry_hash(fields: dict[str, Any], seq: int, prev_hash: str) -> str:
    return hashlib.sha256(canonical(fields, seq, prev_hash)).hexdigest()


# -- the anchor and the last verification (Redis) --------------------------------------
def _anchor_key(tenant_id: str) -> str:
    return f"bunbase:audit:head:{tenant_id}"


def _verified_key(tenant_id: str) -> str:
    return f"bunbase:audit:verified:{tenant_id}"


_RAISE_HEAD = """
local cur = redis.call('HGET', KEYS[1], 'seq')
if (not cur) or tonumber(cur) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'hash', ARGV[2])
end
return 1
"""


def _save_anchor(tenant_id: str, seq: int, hash_: str) -> None:
    try:
        redis_conn.client().eval(_RAISE_HEAD, 1, _anchor_key(tenant_id), seq, hash_)
    except Exception:  # noqa: BLE001 - the anchor is a second line of defence, not the chain
        log.warning("could not store the audit chain anchor", tenant_id=tenant_id)


def anchor(tenant_id: str) -> tuple[int, str] | None:
    try:
        raw = redis_conn.client().hgetall(_anchor_key(tenant_id))
    except Exception:  # noqa: BLE001
        return None
    if not raw:
        return None
    got = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    hash_ = got.get("hash", b"")
    return int(got["seq"]), hash_.decode() if isinstance(hash_, bytes) else str(hash_)


# -- sealing -------------------------------------------------------------------------
@contextmanager
def _redis_lock(engine: Engine, tenant_id: str) -> Iterator[None]:
    """Without row locks (SQLite, ...): one sealer per tenant across processes."""
    if engine.dialect.name == "postgresql":
        yield
        return
    lock = redis_conn.client().lock(f"bunbase:audit:seal:{tenant_id}", timeout=60, blocking_timeout=30)
    if not lock.acquire():
        raise TimeoutError(f"the audit sealer lock of tenant {tenant_id} is busy")
    try:
        yield
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - expired: the unique (tenant, seq) still holds
            log.warning("audit sealer lock expired before release", tenant_id=tenant_id)


def _lock_row(conn: Connection, tenant_id: str) -> None:
    """Postgres: the tenant's registry row, FOR UPDATE, until the batch commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT id FROM tenants WHERE id = :t FOR UPDATE"), {"t": tenant_id})


def _head(conn: Connection, tenant_id: str) -> tuple[int, str]:
    row = conn.execute(
        select(_table.c.seq, _table.c.hash)
        .where(_table.c.tenant_id == tenant_id, _table.c.seq.is_not(None))
        .order_by(_table.c.seq.desc())
        .limit(1)
    ).first()
    return (int(row.seq), str(row.hash)) if row else (0, GENESIS)


def _seal_batch(engine: Engine, tenant_id: str, batch: int) -> int:
    """Seal up to `batch` of the tenant's oldest unsealed entries; returns how many."""
    with _redis_lock(engine, tenant_id), write_intent(), engine.begin() as conn:
        _lock_row(conn, tenant_id)
        seq, prev = _head(conn, tenant_id)
        rows = list(
            conn.execute(
                select(*_cols)
                .where(_table.c.tenant_id == tenant_id, _table.c.seq.is_(None))
                .order_by(_table.c.id)
                .limit(batch)
            ).mappings()
        )
        for row in rows:
            seq += 1
            digest = entry_hash(dict(row), seq, prev)
            done = conn.execute(
                update(_table)
                .where(_table.c.id == row["id"], _table.c.seq.is_(None))
                .values(seq=seq, prev_hash=prev, hash=digest)
            )
            if done.rowcount != 1:  # sealed under our feet: give the batch up whole
                raise RuntimeError(f"audit entry {row['id']} was sealed concurrently")
            prev = digest
    if rows:
        _save_anchor(tenant_id, seq, prev)
    return len(rows)


def seal_tenant(engine: Engine, tenant_id: str, *, batch: int = BATCH) -> int:
    """Seal every unsealed entry of one tenant, in batches; returns how many."""
    total = 0
    while True:
        n = _seal_batch(engine, tenant_id, batch)
        total += n
        if n < batch:
            return total


def unsealed_tenants(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        found = conn.scalars(select(_table.c.tenant_id).where(_table.c.seq.is_(None)).distinct()).all()
    return [str(t) for t in found]


def has_unsealed(engine: Engine, tenant_id: str) -> bool:
    with engine.connect() as conn:
        return (
            conn.scalar(
                select(_table.c.id).where(_table.c.tenant_id == tenant_id, _table.c.seq.is_(None)).limit(1)
            )
            is not None
        )


def seal_all(engine: Engine) -> dict[str, int]:
    """Seal every tenant that has unsealed entries; {tenant_id: sealed}."""
    done: dict[str, int] = {}
    for tenant_id in unsealed_tenants(engine):
        try:
            done[tenant_id] = seal_tenant(engine, tenant_id)
        except Exception:
            log.exception("sealing the audit chain failed", tenant_id=tenant_id)
    return done


# -- verifying -----------------------------------------------------------------------
@dataclass(frozen=True)
class Verification:
    tenant_id: str
    ok: bool
    checked: int
    unsealed: int
    head_seq: int
    first_broken_seq: int | None = None
    reason: str | None = None
    entry_id: str | None = None
    verified_at: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"chain OK: {self.checked} sealed entries, {self.unsealed} waiting"
        where = f" (entry {self.entry_id})" if self.entry_id else ""
        return f"chain BROKEN at seq {self.first_broken_seq}{where}: {self.reason}"


def _walk(conn: Connection, tenant_id: str) -> Iterator[RowMapping]:
    last = 0
    while True:
        rows = list(
            conn.execute(
                select(*_cols, _table.c.seq, _table.c.prev_hash, _table.c.hash)
                .where(_table.c.tenant_id == tenant_id, _table.c.seq > last)
                .order_by(_table.c.seq)
                .limit(BATCH)
            ).mappings()
        )
        yield from rows
        if len(rows) < BATCH:
            return
        last = int(rows[-1]["seq"])


def _check(conn: Connection, tenant_id: str) -> tuple[int, int, str | None, str | None]:
    """(entries checked, first broken seq or 0, reason, entry id)."""
    expected, prev, checked = 1, GENESIS, 0
    for row in _walk(conn, tenant_id):
        seq = int(row["seq"])
        if seq != expected:
            return checked, expected, f"entries {expected}..{seq - 1} are missing", None
        if row["prev_hash"] != prev:
            return checked, seq, "prev_hash does not match the previous entry", row["id"]
        if entry_hash(dict(row), seq, prev) != row["hash"]:
            return checked, seq, "contents changed after sealing (hash mismatch)", row["id"]
        prev, expected, checked = row["hash"], expected + 1, checked + 1
    head = anchor(tenant_id)
    if head is not None and head[0] > checked:
        return checked, checked + 1, f"entries {checked + 1}..{head[0]} are missing", None
    if head is not None and head[0] >= 1:
        at = conn.execute(
            select(_table.c.id, _table.c.hash).where(_table.c.tenant_id == tenant_id, _table.c.seq == head[0])
        ).first()
        if at is not None and at.hash != head[1]:
            return checked, head[0], "the chain was rewritten (anchor mismatch)", str(at.id)
    return checked, 0, None, None


def verify(engine: Engine, tenant_id: str) -> Verification:
    """Recompute the tenant's chain; the first broken seq, if any, and why."""
    with engine.connect() as conn:
        checked, broken, reason, entry_id = _check(conn, tenant_id)
        unsealed = conn.scalar(
            select(func.count())
            .select_from(_table)
            .where(_table.c.tenant_id == tenant_id, _table.c.seq.is_(None))
        )
    result = Verification(
        tenant_id=tenant_id,
        ok=broken == 0,
        checked=checked,
        unsealed=int(unsealed or 0),
        head_seq=checked,
        first_broken_seq=broken or None,
        reason=reason,
        entry_id=entry_id,
        verified_at=clock.now().isoformat(timespec="seconds"),
    )
    _remember(result)
    return result


def _remember(result: Verification) -> None:
    try:
        redis_conn.client().set(_verified_key(result.tenant_id), json.dumps(asdict(result)))
    except Exception:  # noqa: BLE001 - only the banner's "last verified" is lost
        log.warning("could not store the verification result", tenant_id=result.tenant_id)


def last_verification(tenant_id: str) -> Verification | None:
    try:
        raw = redis_conn.client().get(_verified_key(tenant_id))
    except Exception:  # noqa: BLE001
        return None
    if not raw:
        return None
    return Verification(**json.loads(raw))


def counts(engine: Engine, tenant_id: str) -> tuple[int, int]:
    """(sealed, unsealed) entries of the tenant."""
    with engine.connect() as conn:
        row = conn.execute(
            select(func.count(), func.count(_table.c.seq)).where(_table.c.tenant_id == tenant_id)
        ).one()
    total, sealed = int(row[0]), int(row[1])
    return sealed, total - sealed
