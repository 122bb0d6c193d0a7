"""Gunicorn settings of the dev stack (`make run`): the master dies with the supervisor
that started it (`bunbase.process.die_with_parent`); its workers die with the master."""

from __future__ import annotations

from typing import Any

from bunbase import process


def on_starting(_server: Any) -> None:
    process.die_with_parent()
