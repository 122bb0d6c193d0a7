"""Bunbase kernel: actions, modules, triggers, guards, context, executor."""

from bunbase import guards, triggers
from bunbase.actions import Action, action
from bunbase.clock import clock
from bunbase.context import Context
from bunbase.contracts import Contract, Empty
from bunbase.errors import (
    BadRequest,
    BunbaseError,
    Conflict,
    Forbidden,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from bunbase.modules import Module, NavItem, module

__all__ = [
    "Action",
    "BadRequest",
    "BunbaseError",
    "Conflict",
    "Context",
    "Contract",
    "Empty",
    "Forbidden",
    "Module",
    "NavItem",
    "NotFound",
    "Unauthenticated",
    "ValidationFailed",
    "action",
    "clock",
    "guards",
    "module",
    "triggers",
]
