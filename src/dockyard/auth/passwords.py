"""Password hashing (argon2id) and the random secrets behind access tokens, refresh tokens and sessions."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2id with OWASP's 19 MiB set (m=19 MiB, t=2, p=1), not argon2-cffi's default of 64 MiB: every
# `docker login`, and the token request starting each push or pull, costs one hash, and at 64 MiB a
# worker's memory jumped by a third at each. Hashes made with other parameters still verify and are
# re-made with these at the next successful login. Tests swap in a cheaper hasher; production code
# never changes it.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# One hash at a time per process, so a burst of logins queues instead of taking 19 MiB per thread (the
# thread pool runs 40); a hash keeps one core busy, and the worker processes give the parallelism.
_HASHING = threading.Lock()

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


class WeakPassword(ValueError):
    """The password does not meet the minimum requirements."""


def check_password_rules(password: str) -> None:
    """Raise WeakPassword unless the password is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"passwords may have at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """An argon2id PHC string for the password."""
    with _HASHING:
        return HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether the password matches the stored hash (False for no hash or a malformed one)."""
    if stored is None or len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        with _HASHING:
            return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether a hash was made with weaker parameters than the current ones."""
    return HASHER.check_needs_rehash(stored)


def dummy_verify(password: str) -> None:
    """Spend the time of one verification, so unknown accounts cannot be told apart by timing."""
    verify_password(_DUMMY_HASH, password)


def new_secret() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def new_public_id() -> str:
    """A short random identifier that can be shown and logged."""
    return secrets.token_hex(8)


def hash_secret(secret: str) -> str:
    """SHA-256 of a random secret. Enough for 256-bit secrets, and fast enough for every request."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(stored_hash: str, secret: str) -> bool:
    """Constant-time comparison of a secret against its stored hash."""
    return hmac.compare_digest(stored_hash, hash_secret(secret))


_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
