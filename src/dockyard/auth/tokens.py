"""Registry bearer tokens (JWT, ES256) as the Docker token specification describes them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt

from dockyard.auth.identity import Identity
from dockyard.auth.keys import ALGORITHM, KeyRing

# Clock skew tolerated between the replica that issued a token and the one verifying it.
LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class Scope:
    """One resource scope: `repository:<name>:<actions>` or `registry:catalog:*`."""

    type: str
    name: str
    actions: tuple[str, ...]

    def render(self) -> str:
        """The scope string form."""
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


class ScopeInvalid(ValueError):
    """A scope string is malformed."""


def parse_scope(text: str) -> Scope:
    """Parse `type[(class)]:name:action,action`. Names never contain ':' so the ends split cleanly."""
    kind, sep1, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep1 or not sep2 or not kind or not name or len(text) > 1024:
        raise ScopeInvalid(f"invalid scope {text!r}: expected type:name:actions")
    kind = kind.split("(", 1)[0]  # a resource class such as repository(plugin) changes nothing here
    wanted = tuple(dict.fromkeys(a for a in actions.split(",") if a))
    return Scope(kind, name, wanted)


def parse_scopes(values: list[str]) -> list[Scope]:
    """Every scope from repeated parameters, each possibly holding several space-separated scopes."""
    return [parse_scope(item) for value in values for item in value.split() if item]


@dataclass(frozen=True)
class Claims:
    """What a verified token says."""

    subject: str
    user_id: int | None
    access: list[Scope] = field(default_factory=list)
    token_id: int | None = None
    read_only: bool = False

    def allows(self, kind: str, name: str, actions: list[str]) -> bool:
        """Whether the token grants every action on the resource."""
        granted: set[str] = set()
        for scope in self.access:
            if scope.type == kind and scope.name == name:
                granted.update(scope.actions)
        return "*" in granted or set(actions) <= granted


class TokenInvalid(Exception):
    """The token is malformed, forged, expired, or meant for another service."""


class TokenIssuer:
    """Signs and verifies registry tokens."""

    def __init__(self, keys: KeyRing, issuer: str, service: str, ttl_seconds: int) -> None:
        self.keys = keys
        self.issuer = issuer
        self.service = service
        self.ttl_seconds = ttl_seconds

    def issue(self, identity: Identity, access: list[Scope]) -> tuple[str, int, float]:
        """A signed token for the identity with exactly this access: (token, expires_in, issued_at)."""
        now = int(time.time())
        key = self.keys.current
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": identity.name or "",
            "aud": self.service,
            "exp": now + self.ttl_seconds,
            "nbf": now - 1,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": [{"type": s.type, "name": s.name, "actions": list(s.actions)} for s in access],
        }
        if identity.user_id is not None:
            claims["uid"] = identity.user_id
        if identity.token_id is not None:
            claims["tid"] = identity.token_id
        if identity.read_only:
            claims["ro"] = True
        token = jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})
        return token, self.ttl_seconds, float(now)

    def verify(self, token: str) -> Claims:
        """Check signature, algorithm, expiry, issuer and audience; raise TokenInvalid otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid("malformed token") from exc
        # Only our algorithm, whatever the header says: no `none`, no HMAC keyed with a public key.
        if header.get("alg") != ALGORITHM:
            raise TokenInvalid("unexpected token algorithm")
        kid = header.get("kid")
        key = self.keys.public_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenInvalid("token signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.service,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(str(exc)) from exc
        return _claims(claims)


def _claims(raw: dict[str, Any]) -> Claims:
    access: list[Scope] = []
    entries = raw.get("access", [])
    if not isinstance(entries, list):
        raise TokenInvalid("malformed access claim")
    for entry in entries:
        if not isinstance(entry, dict):
            raise TokenInvalid("malformed access claim")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if not isinstance(kind, str) or not isinstance(name, str) or not isinstance(actions, list):
            raise TokenInvalid("malformed access claim")
        access.append(Scope(kind, name, tuple(str(a) for a in actions)))
    uid, tid = raw.get("uid"), raw.get("tid")
    return Claims(
        subject=str(raw.get("sub", "")),
        user_id=uid if isinstance(uid, int) else None,
        access=access,
        token_id=tid if isinstance(tid, int) else None,
        read_only=raw.get("ro") is True,
    )
