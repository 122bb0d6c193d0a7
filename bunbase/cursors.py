"""Opaque keyset cursors: one format for every list in the API.

A cursor names its list and the position after which the next page starts (the last row's
sort key), as base64url JSON. A cursor that does not decode, or was handed out by another
list, is `InvalidCursor` (400 `invalid_cursor`), never an empty or wrong page; a well-formed
cursor past the end just gives an empty page.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute

from bunbase.db import DBSession
from bunbase.errors import InvalidCursor

T = TypeVar("T")
#: longest cursor accepted (a list's own cursors are far shorter)
MAX_LENGTH = 400


def encode(list_name: str, *position: str) -> str:
    raw = json.dumps([list_name, *position], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(list_name: str, cursor: str, size: int = 1) -> list[str]:
    """The `size` position values of a cursor this list handed out, or InvalidCursor."""
    try:
        if len(cursor) > MAX_LENGTH:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid(list_name) from None
    if (
        not isinstance(value, list)
        or len(value) != size + 1
        or value[0] != list_name
        or not all(isinstance(v, str) and v for v in value[1:])
    ):
        raise invalid(list_name)
    return value[1:]


def invalid(list_name: str) -> InvalidCursor:
    return InvalidCursor(
        "The cursor is not one this list handed out: use the nextCursor of its previous page",
        details=[{"field": "cursor", "message": f"not a cursor of {list_name}", "type": "invalid_cursor"}],
    )


@dataclass(frozen=True)
class KeysetPage(Generic[T]):
    items: list[T]
    total: int
    next_cursor: str | None


def newest_first(
    session: DBSession,
    stmt: Select[Any],
    id_col: InstrumentedAttribute[str],
    *,
    list_name: str,
    cursor: str | None,
    limit: int,
) -> KeysetPage[Any]:
    """One page of `stmt`, newest first by its time-ordered id, with the true total."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    if cursor:
        (after,) = decode(list_name, cursor)
        stmt = stmt.where(id_col < after)
    rows = list(session.scalars(stmt.order_by(id_col.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return KeysetPage(rows, int(total), encode(list_name, getattr(rows[-1], id_col.key)) if more else None)
