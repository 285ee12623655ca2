"""Registry bearer tokens (JWT, ES256) as the Docker token specification describes them."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
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


class _VerifiedTokens:
    """Claims of tokens whose signature, issuer and audience already checked out, kept until they expire.

    A signature is a fixed fact about the token's exact string, so re-checking it on every request of a
    pull only burns CPU; the time window is still checked on every use. Bounded, least recently used out.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._items: OrderedDict[str, tuple[str, float, float, Claims]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, token: str, now: float) -> tuple[str, Claims] | None:
        """The signing key id and claims of a token still within its time window."""
        with self._lock:
            item = self._items.get(token)
            if item is None:
                return None
            kid, not_before, expires, claims = item
            if not not_before - LEEWAY_SECONDS <= now < expires + LEEWAY_SECONDS:
                del self._items[token]
                return None
            self._items.move_to_end(token)
            return kid, claims

    def put(self, token: str, kid: str, not_before: float, expires: float, claims: Claims) -> None:
        with self._lock:
            self._items[token] = (kid, not_before, expires, claims)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)


class TokenIssuer:
    """Signs and verifies registry tokens."""

    def __init__(self, keys: KeyRing, issuer: str, service: str, ttl_seconds: int) -> None:
        self.keys = keys
        self.issuer = issuer
        self.service = service
        self.ttl_seconds = ttl_seconds
        self._verified = _VerifiedTokens()

    def already_verified(self, token: str) -> Claims | None:
        """The claims of a token this process verified before, still in its time window and signed by a
        key that is still trusted (a pruned key takes its tokens with it)."""
        found = self._verified.get(token, time.time())
        if found is None or self.keys.public_key(found[0]) is None:
            return None
        return found[1]

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
        cached = self.already_verified(token)
        if cached is not None:
            return cached
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
        verified = _claims(claims)
        self._verified.put(token, str(kid), float(claims["nbf"]), float(claims["exp"]), verified)
        return verified


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
