"""Settings for the kernel suite only (shared fixtures live in tests/fixtures.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from tests.actors import world  # noqa: F401 - the named actors fixture (alice, bob, ...)


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Real Argon2id, with its minimum cost parameters instead of the production ones.

    Almost every test signs a tenant admin in (one hash + one verify); at the production
    cost that is most of the suite's run time. Hashing and verification stay real: the
    hashes are still checked, and the dummy hash used for unknown emails keeps the same
    cost as a real one.
    """
    from bunbase import identity

    saved = identity._hasher, identity._DUMMY_HASH
    identity._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    identity._DUMMY_HASH = identity._hasher.hash("dummy-password")
    yield
    identity._hasher, identity._DUMMY_HASH = saved
