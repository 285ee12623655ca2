"""/api/v1 routes for content caches: register them (administrators), and choose one per user, organization
or team. The rules live in dockyard.cache.directory."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.deps import User
from dockyard.api.errors import documented
from dockyard.api.models import Timestamp
from dockyard.auth import policy as p
from dockyard.cache.directory import Cache, CacheDirectory

router = APIRouter(tags=["caches"], responses=documented())
NO_CONTENT = status.HTTP_204_NO_CONTENT


def directory(request: Request) -> CacheDirectory:
    """The cache directory service."""
    found: CacheDirectory = request.app.state.caches
    return found


Caches = Annotated[CacheDirectory, Depends(directory)]


class CacheIn(BaseModel):
    """A cache to register."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    url: str = Field(min_length=1, max_length=2048)
    ca_certificate: str | None = Field(default=None, max_length=65536)


class CacheChoice(BaseModel):
    """Which cache serves the subject's pulls; null for none (the registry serves them)."""

    model_config = ConfigDict(extra="forbid")

    cache: str | None = Field(max_length=64)


class CacheOut(BaseModel):
    """A registered cache; health and counters are shown to administrators only."""

    name: str
    url: str
    has_ca_certificate: bool
    created_at: Timestamp
    healthy: bool | None = None
    checked_at: Timestamp | None = None
    last_error: str | None = None
    stats: dict[str, Any] | None = None


def _out(cache: Cache, full: bool) -> CacheOut:
    # Health and counters for administrators only.
    health: dict[str, Any] = {}
    if full:
        health = {
            "healthy": cache.healthy,
            "checked_at": cache.checked_at,
            "last_error": cache.last_error,
            "stats": cache.stats,
        }
    return CacheOut(
        name=cache.name,
        url=cache.url,
        has_ca_certificate=cache.has_ca,
        created_at=cache.created_at,
        **health,
    )


@router.get("/caches", response_model=list[CacheOut], responses=documented(403))
def list_caches(caches: Caches, identity: User) -> list[CacheOut]:
    """Every registered cache (signed-in users choose among them)."""
    full = p.may_administer(identity)
    return [_out(cache, full) for cache in caches.all()]


@router.post(
    "/caches", response_model=CacheOut, status_code=status.HTTP_201_CREATED, responses=documented(403, 409)
)
def add_cache(body: CacheIn, caches: Caches, identity: User) -> CacheOut:
    """Register a cache (system administrators). It is used once its /_ping answers."""
    return _out(caches.add(identity, body.name, body.url, body.ca_certificate), True)


@router.get("/caches/{name}", response_model=CacheOut, responses=documented(404))
def get_cache(name: str, caches: Caches, identity: User) -> CacheOut:
    """One cache, with its health and counters for administrators."""
    return _out(caches.get(name), p.may_administer(identity))


@router.delete("/caches/{name}", status_code=NO_CONTENT, responses=documented(403, 404))
def remove_cache(name: str, caches: Caches, identity: User) -> None:
    """Forget a cache (system administrators); its users are served by the registry again."""
    caches.remove(identity, name)


@router.put("/users/{user}/cache", response_model=CacheChoice, responses=documented(403, 404))
def set_user_cache(user: str, body: CacheChoice, caches: Caches, identity: User) -> CacheChoice:
    """Choose a user's cache (the user themselves, or a system administrator)."""
    caches.choose_for_user(identity, user, body.cache)
    return body


@router.put("/organizations/{org}/cache", response_model=CacheChoice, responses=documented(403, 404))
def set_organization_cache(org: str, body: CacheChoice, caches: Caches, identity: User) -> CacheChoice:
    """An organization's default cache for its members and owners (system administrators)."""
    caches.choose_for_organization(identity, org, body.cache)
    return body


@router.put(
    "/organizations/{org}/teams/{team}/cache", response_model=CacheChoice, responses=documented(403, 404)
)
def set_team_cache(org: str, team: str, body: CacheChoice, caches: Caches, identity: User) -> CacheChoice:
    """A team's default cache for its members (system administrators)."""
    caches.choose_for_team(identity, org, team, body.cache)
    return body
