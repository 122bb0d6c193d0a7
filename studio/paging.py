"""Keyset pagination over time-ordered ids, shared by every Studio list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import request, url_for
from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute

from bunbase.db import DBSession

PAGE_SIZE = 25


@dataclass
class Page:
    rows: list[Any]
    total: int
    shown: int
    next_url: str | None
    prev_url: str | None
    first_url: str | None


def page_url(endpoint: str, **changes: Any) -> str:
    """This page (its view args and query string, without the cursor) with `changes`."""
    values: dict[str, Any] = dict(request.view_args or {})
    values.update({k: v for k, v in request.args.items() if k not in {"before", "after"} and v})
    values.update({k: v for k, v in changes.items() if v})
    return url_for(endpoint, **values)


def keyset(
    session: DBSession,
    stmt: Select[Any],
    id_col: InstrumentedAttribute[str],
    endpoint: str,
    size: int = PAGE_SIZE,
) -> Page:
    """Newest first. `?before=<id>` pages to older rows, `?after=<id>` back to newer ones."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    before, after = request.args.get("before"), request.args.get("after")
    if after:
        rows = list(session.scalars(stmt.where(id_col > after).order_by(id_col.asc()).limit(size + 1)))
        has_newer = len(rows) > size
        rows = list(reversed(rows[:size]))
        has_older = True
    else:
        if before:
            stmt = stmt.where(id_col < before)
        rows = list(session.scalars(stmt.order_by(id_col.desc()).limit(size + 1)))
        has_older = len(rows) > size
        rows = rows[:size]
        has_newer = bool(before)
    ids = [getattr(r, id_col.key) for r in rows]
    return Page(
        rows=rows,
        total=total,
        shown=len(rows),
        next_url=page_url(endpoint, before=ids[-1]) if has_older and ids else None,
        prev_url=page_url(endpoint, after=ids[0]) if has_newer and ids else None,
        first_url=page_url(endpoint) if (before or after) else None,
    )
