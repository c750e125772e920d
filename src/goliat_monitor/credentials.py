"""Passwords, session secrets and API tokens: how they are made, hashed and checked.

Passwords are argon2id (argon2-cffi's defaults), slow on purpose because people choose them.
Session secrets and API tokens are 256 random bits made here, so a plain SHA-256 is enough to
store them: nobody can guess a preimage of a value with that much entropy, and a fast hash lets
the ingest hot path check a token without a slow KDF.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

# Checked when the account does not exist, so an unknown name costs the same time as a wrong
# password and the answer's timing tells nothing about which names exist.
_DUMMY_HASH = _hasher.hash("goliat-monitor: no such account")

TOKEN_PREFIX = "gmt_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the account exists (`password_hash` None: check the dummy)."""
    try:
        ok = _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None


def new_secret() -> str:
    """A session secret or CSRF token: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    """An API token; the prefix makes a leaked one easy to recognise in logs and secret scanners."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """The stored form of a high-entropy secret (session secret, API token)."""
    return hashlib.sha256(secret.encode()).hexdigest()
