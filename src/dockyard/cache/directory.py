"""The main registry's list of caches, who uses which, and whether each one answers.

System administrators register caches; a user picks one (or none) for themselves; administrators also set it
for any user and a default for an organization or a team. A user's own choice comes first, then a default of
one of their teams, then one of their organizations. The registry pings every cache's /_ping and redirects
only to one that answered lately: when a cache is down, the registry serves its users itself until it is back.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509

from dockyard.auth import policy as p
from dockyard.auth.errors import Conflict, Forbidden, InvalidInput, NotFound
from dockyard.auth.identity import Identity
from dockyard.db import accounts as aq
from dockyard.db import caches as q
from dockyard.db.engine import Database
from dockyard.events.audit import AuditLog

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# scheme://host[:port][/path] in plain characters: the URL goes into redirects and pages as it is.
_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~\-/]*)?")
_MAX_CA_BYTES = 64 * 1024
_MAX_PING_BYTES = 64 * 1024
# A cache whose last good check is older than this is not used (the checker runs every few seconds).
_FRESH_SECONDS = 60.0


@dataclass(frozen=True)
class Cache:
    """A registered cache as administrators see it."""

    name: str
    url: str
    has_ca: bool
    created_at: float
    healthy: bool
    checked_at: float | None
    last_error: str
    stats: dict[str, Any]


def _view(row: q.CacheRow) -> Cache:
    try:
        stats = json.loads(row.stats)
    except ValueError:
        stats = {}
    return Cache(
        name=row.name,
        url=row.url,
        has_ca=row.ca_pem is not None,
        created_at=row.created_at,
        healthy=row.healthy,
        checked_at=row.checked_at,
        last_error=row.last_error,
        stats=stats if isinstance(stats, dict) else {},
    )


def _check_url(url: str) -> str:
    if "@" in url:
        raise InvalidInput("a cache's URL carries no credentials", "url")
    if not _URL.fullmatch(url) or not urlsplit(url).hostname:
        raise InvalidInput("the cache's URL must be http(s)://host[:port][/path]", "url")
    return url.rstrip("/")


def _check_ca(pem: str | None) -> str | None:
    if pem is None:
        return None
    if len(pem) > _MAX_CA_BYTES:
        raise InvalidInput("the CA certificate is too large", "ca_certificate")
    try:
        x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise InvalidInput("the CA certificate is not PEM", "ca_certificate") from exc
    return pem


class CacheDirectory:
    """Registers caches, records each user's choice, and checks that caches answer."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    def add(self, actor: Identity | None, name: str, url: str, ca_pem: str | None = None) -> Cache:
        """Register a cache (administrators; `actor` None is the local command line)."""
        self._require_admin(actor)
        if not _NAME.fullmatch(name):
            raise InvalidInput("a cache name is 1 to 64 of a-z, 0-9, '.', '_' and '-'", "name")
        url, ca_pem = _check_url(url), _check_ca(ca_pem)
        with self.db.write() as conn:
            if q.cache_by_name(conn, name) is not None:
                raise Conflict(f"a cache named {name} exists")
            q.insert_cache(conn, name, url, ca_pem, time.time())
            row = q.cache_by_name(conn, name)
            self.audit.add(conn, "cache.add", actor=_by(actor), target=name, url=url)
        assert row is not None
        return _view(row)

    def remove(self, actor: Identity | None, name: str) -> None:
        """Forget a cache; users who chose it are served by the registry again."""
        self._require_admin(actor)
        with self.db.write() as conn:
            if not q.delete_cache(conn, name):
                raise NotFound(f"no cache named {name}")
            self.audit.add(conn, "cache.remove", actor=_by(actor), target=name)

    def all(self) -> list[Cache]:
        """Every cache (names and URLs are shown to every signed-in user, who picks one)."""
        with self.db.read() as conn:
            return [_view(row) for row in q.all_caches(conn)]

    def get(self, name: str) -> Cache:
        """One cache."""
        with self.db.read() as conn:
            row = q.cache_by_name(conn, name)
        if row is None:
            raise NotFound(f"no cache named {name}")
        return _view(row)

    def chosen_by(self, actor: Identity, account: str) -> str | None:
        """The cache a user (themselves, or an administrator asking) or an organization chose."""
        with self.db.read() as conn:
            row = aq.account_by_name(conn, account)
            if row is None or (row.id != actor.user_id and not p.may_administer(actor)):
                raise NotFound(f"no account named {account}")
            chosen = q.chosen_for_account(conn, row.id)
        return chosen.name if chosen else None

    def choose_for_user(self, actor: Identity, user: str, cache: str | None) -> None:
        """Set a user's cache (None: none): the user themselves, or an administrator."""
        if actor.name != user and not p.may_administer(actor):
            raise Forbidden("only administrators choose another user's cache")
        if actor.read_only or not p.may_manage_self(actor):
            raise Forbidden("a read-only token cannot change settings")
        with self.db.write() as conn:
            row = aq.account_by_name(conn, user)
            if row is None or row.kind != aq.USER:
                raise NotFound(f"no user named {user}")
            q.choose_for_account(conn, row.id, self._cache_id(conn, cache))
            self.audit.add(conn, "user.cache", actor=actor, target=user, cache=cache)

    def choose_for_organization(self, actor: Identity, org: str, cache: str | None) -> None:
        """Set an organization's default cache (administrators)."""
        self._require_admin(actor)
        with self.db.write() as conn:
            row = aq.account_by_name(conn, org)
            if row is None or row.kind != aq.ORG:
                raise NotFound(f"no organization named {org}")
            q.choose_for_account(conn, row.id, self._cache_id(conn, cache))
            self.audit.add(conn, "organization.cache", actor=actor, target=org, cache=cache)

    def choose_for_team(self, actor: Identity, org: str, team: str, cache: str | None) -> None:
        """Set a team's default cache (administrators)."""
        self._require_admin(actor)
        with self.db.write() as conn:
            row = aq.account_by_name(conn, org)
            found = aq.team_by_name(conn, row.id, team) if row is not None and row.kind == aq.ORG else None
            if found is None:
                raise NotFound(f"no team {org}/{team}")
            q.choose_for_team(conn, found.id, self._cache_id(conn, cache))
            self.audit.add(conn, "team.cache", actor=actor, target=f"{org}/{team}", cache=cache)

    def serving(self, user_id: int) -> q.ServingCache | None:
        """The cache that serves this user now; None when they have none or it is not answering (its last
        health check failed, or is older than a minute)."""
        return q.serving_for_user(self.db, user_id, checked_after=time.time() - _FRESH_SECONDS)

    def check_all(self, timeout: float = 3.0) -> list[Cache]:
        """Ping every cache's /_ping and record the outcome (the network calls run outside transactions)."""
        with self.db.read() as conn:
            rows = q.all_caches(conn)
        for row in rows:
            healthy, error, stats = _ping(row, timeout)
            with self.db.write(durable=False) as conn:
                q.save_check(conn, row.id, healthy, time.time(), error, stats)
        return self.all()

    def _cache_id(self, conn: Any, cache: str | None) -> int | None:
        if cache is None:
            return None
        row = q.cache_by_name(conn, cache)
        if row is None:
            raise NotFound(f"no cache named {cache}", "cache")
        return row.id

    @staticmethod
    def _require_admin(actor: Identity | None) -> None:
        if actor is not None and not p.may_administer(actor):
            raise Forbidden("only system administrators manage caches")


def _by(actor: Identity | None) -> Identity | str:
    """Who made a change: the caller, or the local command line."""
    return "cli" if actor is None else actor


def _ping(row: q.CacheRow, timeout: float) -> tuple[bool, str, str | None]:
    verify: ssl.SSLContext | bool = True
    if row.ca_pem is not None:
        verify = ssl.create_default_context(cadata=row.ca_pem)
    try:
        with httpx.Client(verify=verify, timeout=timeout, follow_redirects=False) as client:
            response = client.get(f"{row.url}/_ping")
    except httpx.HTTPError as exc:
        return False, f"unreachable: {type(exc).__name__}: {exc}"[:500], None
    if response.status_code != 200:
        return False, f"/_ping answered {response.status_code}", None
    body = response.content[:_MAX_PING_BYTES]
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict) or document.get("role") != "cache":
        return False, "/_ping did not answer as a Dockyard cache", None
    counters = {k: v for k, v in document.items() if isinstance(v, int) and not isinstance(v, bool)}
    return True, "", json.dumps(counters)
