"""The /api/v1 routes. Each checks nothing itself: the domain services ask the policy."""

from __future__ import annotations

import json
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from dockyard.api import models as m
from dockyard.api.browse_routes import Browser, repository_out
from dockyard.api.cache_routes import Caches
from dockyard.api.deps import SESSION_COOKIE, Caller, Ctx, User
from dockyard.api.errors import documented
from dockyard.api.paging import AFTER, DEFAULT_PAGE, MAX_AUDIT_PAGE, PAGED, Limit, Paging, link_next
from dockyard.auth.authenticate import client_address
from dockyard.auth.credentials import AccessToken
from dockyard.auth.identity import Identity
from dockyard.content.listing import RepositoryBrowser
from dockyard.db.accounts import USER, AccountRow

router = APIRouter(responses=documented())
NO_CONTENT = status.HTTP_204_NO_CONTENT


def _user_out(row: AccountRow) -> m.UserOut:
    return m.UserOut(
        name=row.name,
        full_name=row.full_name,
        is_admin=row.is_admin,
        is_active=row.is_active,
        created_at=row.created_at,
    )


def _token_out(token: AccessToken) -> m.TokenOut:
    return m.TokenOut(
        id=token.public_id,
        name=token.name,
        read_only=token.read_only,
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


# Session


@router.post("/session", tags=["session"], response_model=m.SessionOut, responses=documented(403))
def log_in(body: m.Login, request: Request, response: Response, ctx: Ctx) -> m.SessionOut:
    """Log in for a browser session: sets an HttpOnly cookie and returns the CSRF token."""
    identity = ctx.auth.authenticator.login(body.name, body.password, client_address(request), via="session")
    cookie, csrf = ctx.auth.credentials.create_session(identity)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=ctx.settings.session_ttl_seconds,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" or (ctx.settings.external_url or "").startswith("https://"),
        path="/",
    )
    return m.SessionOut(
        name=identity.name or body.name, csrf_token=csrf, expires_in=ctx.settings.session_ttl_seconds
    )


@router.delete("/session", tags=["session"], status_code=NO_CONTENT, responses=documented())
def log_out(request: Request, response: Response, ctx: Ctx, _user: User) -> None:
    """End the browser session."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        ctx.auth.credentials.end_session(cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")


# The current user


@router.get("/me", tags=["me"], response_model=m.MeOut, responses=documented(404))
def me(ctx: Ctx, caches: Caches, identity: User) -> m.MeOut:
    """The current user and their settings."""
    assert identity.name is not None
    row = ctx.auth.accounts.user(identity.name)
    orgs = ctx.auth.organizations.organizations_of(identity)
    return m.MeOut(
        **_user_out(row).model_dump(),
        organizations=orgs,
        via_access_token=identity.token_id is not None,
        read_only=identity.read_only,
        cache=caches.chosen_by(identity, identity.name),
    )


@router.patch("/me", tags=["me"], response_model=m.MeOut, responses=documented(403, 404))
def update_me(body: m.MePatch, ctx: Ctx, caches: Caches, identity: User) -> m.MeOut:
    """Change the current user's settings: full name, and the content cache that serves their pulls."""
    assert identity.name is not None
    if body.full_name is not None:
        ctx.auth.accounts.set_full_name(identity, identity.name, body.full_name)
    if "cache" in body.model_fields_set:
        caches.choose_for_user(identity, identity.name, body.cache)
    return me(ctx, caches, identity)


@router.put("/me/password", tags=["me"], status_code=NO_CONTENT, responses=documented(403))
def change_password(body: m.PasswordChange, request: Request, ctx: Ctx, identity: User) -> None:
    """Change the current user's password; every docker login (refresh token) of theirs ends."""
    ctx.auth.authenticator.change_own_password(
        identity, body.current_password, body.new_password, client_address(request)
    )


@router.get(
    "/me/tokens",
    tags=["access tokens"],
    response_model=list[m.TokenOut],
    responses={**PAGED, **documented()},
)
def list_tokens(
    request: Request,
    response: Response,
    ctx: Ctx,
    identity: User,
    after: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description=AFTER)] = None,
    limit: Limit = DEFAULT_PAGE,
) -> list[m.TokenOut]:
    """The current user's personal access tokens, newest first."""
    before = int(after) if after is not None else None
    tokens = ctx.auth.credentials.access_tokens(identity, before, limit + 1)
    if len(tokens) > limit:
        link_next(request, response, str(tokens[limit - 1].id))
    return [_token_out(t) for t in tokens[:limit]]


@router.post(
    "/me/tokens",
    tags=["access tokens"],
    response_model=m.TokenCreated,
    status_code=201,
    responses=documented(403),
)
def create_token(body: m.TokenCreate, request: Request, ctx: Ctx, identity: User) -> m.TokenCreated:
    """Create a personal access token. The `token` value is shown only in this response."""
    fresh = ctx.auth.authenticator.confirm_password(identity, body.current_password, client_address(request))
    expires = time.time() + body.expires_in_days * 86400 if body.expires_in_days else None
    token, secret = ctx.auth.credentials.create_access_token(
        identity, body.name, read_only=body.read_only, expires_at=expires, fresh=fresh
    )
    return m.TokenCreated(**_token_out(token).model_dump(), token=secret)


@router.delete(
    "/me/tokens/{token_id}", tags=["access tokens"], response_model=m.TokenOut, responses=documented(403, 404)
)
def revoke_token(token_id: str, ctx: Ctx, identity: User) -> m.TokenOut:
    """Revoke a personal access token, with immediate effect."""
    token = ctx.auth.credentials.revoke_access_token(identity, token_id)
    return _token_out(token)


@router.delete(
    "/me/refresh-tokens", tags=["access tokens"], status_code=NO_CONTENT, responses=documented(403)
)
def revoke_refresh_tokens(ctx: Ctx, identity: User) -> None:
    """Log out every docker client of the current user (revoke all refresh tokens)."""
    ctx.auth.credentials.revoke_refresh_tokens(identity)


# Users (system administrators)


@router.get("/users", tags=["users"], response_model=list[m.UserOut], responses={**PAGED, **documented(403)})
def list_users(
    ctx: Ctx,
    identity: User,
    paging: Paging,
) -> list[m.UserOut]:
    """Local users by name."""
    rows = ctx.auth.accounts.list_accounts(identity, USER, paging.after, paging.fetch)
    return [_user_out(row) for row in paging.page(rows, lambda row: row.name)]


@router.post(
    "/users", tags=["users"], response_model=m.UserOut, status_code=201, responses=documented(403, 404, 409)
)
def create_user(body: m.UserCreate, ctx: Ctx, identity: User) -> m.UserOut:
    """Create a local user."""
    row = ctx.auth.accounts.create_user(
        identity, body.name, body.password, is_admin=body.is_admin, full_name=body.full_name
    )
    return _user_out(row)


@router.get("/users/{name}", tags=["users"], response_model=m.UserOut, responses=documented(404))
def get_user(name: str, ctx: Ctx, identity: User) -> m.UserOut:
    """One user (administrators, or the user themselves)."""
    return _user_out(ctx.auth.accounts.view_user(identity, name))


@router.patch("/users/{name}", tags=["users"], response_model=m.UserOut, responses=documented(403, 404, 409))
def update_user(name: str, body: m.UserPatch, ctx: Ctx, identity: User) -> m.UserOut:
    """Make or unmake an administrator, enable or disable, rename, reset the password."""
    row = ctx.auth.accounts.update_user(
        identity,
        name,
        is_admin=body.is_admin,
        is_active=body.is_active,
        full_name=body.full_name,
        password=body.password,
    )
    return _user_out(row)


@router.delete("/users/{name}", tags=["users"], status_code=NO_CONTENT, responses=documented(403, 404, 409))
def delete_user(name: str, ctx: Ctx, identity: User) -> None:
    """Delete a user with their tokens and memberships; refused (409) while their namespace holds
    repositories."""
    ctx.auth.accounts.user(name)
    ctx.auth.accounts.delete_account(identity, name)


# Repositories


def _repo_out(browse: RepositoryBrowser, identity: Identity, name: str) -> m.RepositoryOut:
    return repository_out(browse.repository(identity, name))


@router.post(
    "/repositories",
    tags=["repositories"],
    response_model=m.RepositoryOut,
    status_code=201,
    responses=documented(403, 404, 409),
)
def create_repository(body: m.RepositoryCreate, ctx: Ctx, browse: Browser, identity: User) -> m.RepositoryOut:
    """Create a repository in a namespace the caller may create in."""
    repo = ctx.auth.repositories.create(
        identity, body.name, body.visibility, body.description, body.scan_on_push
    )
    return _repo_out(browse, identity, repo.name)


@router.get(
    "/repository-grants/{name:path}",
    tags=["grants"],
    response_model=list[m.GrantOut],
    responses={**PAGED, **documented(403, 404)},
)
def repository_grants(
    name: str,
    ctx: Ctx,
    identity: User,
    paging: Paging,
) -> list[m.GrantOut]:
    """The team grants on a repository, by team (its administrators)."""
    grants = ctx.auth.grants.repository_grants(identity, name, paging.after, paging.fetch)
    page = paging.page(grants, lambda grant: grant[0])
    return [m.GrantOut(repository=name, team=team, level=level) for team, level in page]


@router.get(
    "/repositories/{name:path}",
    tags=["repositories"],
    response_model=m.RepositoryOut,
    responses=documented(404),
)
def get_repository(name: str, browse: Browser, identity: Caller) -> m.RepositoryOut:
    """One repository."""
    return _repo_out(browse, identity, name)


@router.patch(
    "/repositories/{name:path}",
    tags=["repositories"],
    response_model=m.RepositoryOut,
    responses=documented(403, 404),
)
def update_repository(
    name: str, body: m.RepositoryPatch, ctx: Ctx, browse: Browser, identity: User
) -> m.RepositoryOut:
    """Change the description, visibility or scan on push (repository administrators)."""
    ctx.auth.repositories.update(
        identity,
        name,
        visibility=body.visibility,
        description=body.description,
        scan_on_push=body.scan_on_push,
    )
    return _repo_out(browse, identity, name)


@router.delete(
    "/repositories/{name:path}", tags=["repositories"], status_code=NO_CONTENT, responses=documented(403, 404)
)
def delete_repository(name: str, ctx: Ctx, identity: User) -> None:
    """Delete a repository with its tags (repository administrators); blobs go at the next GC."""
    ctx.auth.repositories.delete(identity, name)


# Audit log


@router.get(
    "/audit", tags=["audit"], response_model=list[m.AuditEventOut], responses={**PAGED, **documented(403)}
)
def audit_events(
    request: Request,
    response: Response,
    ctx: Ctx,
    identity: User,
    limit: Annotated[
        int, Query(ge=1, le=MAX_AUDIT_PAGE, description=f"At most this many events (default {DEFAULT_PAGE})")
    ] = DEFAULT_PAGE,
    before: Annotated[
        int | None, Query(ge=1, le=m.INT64_MAX, description="Only events with a smaller id (paging)")
    ] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
) -> list[m.AuditEventOut]:
    """Security events, newest first (system administrators)."""
    rows = ctx.auth.audit.events(identity, limit=limit, before_id=before, action=action, who=actor)
    if len(rows) == limit:
        link_next(request, response, str(rows[-1].id), "before")
    return [
        m.AuditEventOut(
            id=r.id,
            at=r.at,
            actor=r.actor,
            address=r.address,
            action=r.action,
            target=r.target,
            outcome=r.outcome,
            detail=json.loads(r.detail),
        )
        for r in rows
    ]
