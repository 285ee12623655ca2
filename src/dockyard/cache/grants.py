"""Cache grants: the main registry's signed permission to serve one blob of one repository to one user.

A grant travels in the redirect URL (clients drop the Authorization header when a redirect changes host), so
it is short-lived and names exactly one (repository, digest): it opens nothing else. It is an ES256 JWT signed
with the registry's token keys, for the audience `dockyard-cache`, so a registry token can never pass for a
grant or the other way round.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.auth.keys import ALGORITHM, SigningKey

GRANT_AUDIENCE = "dockyard-cache"
GRANT_PARAMETER = "dyg"
_MAX_GRANT_LENGTH = 4096
# Clock skew tolerated between the main registry and a cache.
_LEEWAY_SECONDS = 30


class GrantInvalid(Exception):
    """The grant is missing, malformed, forged, expired, or for another blob."""


@dataclass(frozen=True)
class Grant:
    """What a verified grant allows."""

    user: str
    repository: str
    digest: str
    expires_at: float


def issue_grant(key: SigningKey, issuer: str, user: str, repository: str, digest: str, ttl: int) -> str:
    """A grant for `user` to fetch `digest` of `repository` during the next `ttl` seconds."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": GRANT_AUDIENCE,
        "sub": user,
        "repo": repository,
        "digest": digest,
        "iat": now,
        "nbf": now - 1,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


def _header(token: str) -> dict[str, object]:
    """A grant's header, unverified; empty when too long or malformed."""
    if len(token) > _MAX_GRANT_LENGTH:
        return {}
    try:
        return dict(jwt.get_unverified_header(token))
    except jwt.PyJWTError:
        return {}


def grant_kid(token: str) -> str | None:
    """The key id a grant names, without verifying anything (to fetch an unknown key first)."""
    kid = _header(token).get("kid")
    return kid if isinstance(kid, str) else None


def verify_grant(
    token: str | None,
    public_key: Callable[[str], ec.EllipticCurvePublicKey | None],
    repository: str,
    digest: str,
) -> Grant:
    """Check the grant's signature, audience and time window, and that it is for exactly this blob."""
    if not token:
        raise GrantInvalid("a cache serves blobs only through a redirect from the registry (no grant)")
    header = _header(token)
    kid = header.get("kid")
    if not isinstance(kid, str) or header.get("alg") != ALGORITHM:
        raise GrantInvalid("malformed grant")
    key = public_key(kid)
    if key is None:
        raise GrantInvalid("grant signed by an unknown key")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=GRANT_AUDIENCE,
            leeway=_LEEWAY_SECONDS,
            options={"require": ["exp", "nbf", "aud", "sub", "repo", "digest"]},
        )
    except jwt.PyJWTError as exc:
        raise GrantInvalid(f"invalid grant: {exc}") from exc
    if claims.get("repo") != repository or claims.get("digest") != digest:
        raise GrantInvalid("the grant is for another blob")
    return Grant(str(claims["sub"]), repository, digest, float(claims["exp"]))
