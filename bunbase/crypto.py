"""Symmetric encryption keyed from SECRET_KEY: one Fernet key per purpose (HKDF-SHA256)."""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


@lru_cache(maxsize=16)
def fernet(secret_key: str, purpose: bytes) -> Fernet:
    """The Fernet key for `purpose`: keys of different purposes are independent, so a value
    sealed for one can never be opened as another."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))
