"""The credential resolver's audience table, called directly as the surfaces (and the web UI) call it."""

from __future__ import annotations

import asyncio
import base64

import pytest
from auth_support import PASSWORD, World

from dockyard.auth.errors import CredentialRefused
from dockyard.auth.identity import Credential
from dockyard.auth.resolver import NOBODY, Audience, Resolved

ADDRESS = "192.0.2.30"


def _resolve(world: World, audience: Audience, authorization: str | None, cookie: str | None) -> Resolved:
    return asyncio.run(world.auth.resolver.resolve(audience, authorization, cookie, ADDRESS))


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def _session_cookie(world: World) -> str:
    identity = world.auth.accounts.identity(world.auth.accounts.user("alice").id)
    assert identity is not None
    return world.auth.credentials.create_session(identity)[0]


def test_a_session_opens_the_ui_and_the_api_with_its_csrf_token(world: World) -> None:
    cookie = _session_cookie(world)
    for audience in (Audience.UI, Audience.API):
        found = _resolve(world, audience, None, cookie)
        assert found.identity.name == "alice" and found.identity.credential is Credential.SESSION
        assert found.csrf_token and found.claims is None
    # /v2/ and the token endpoint have no CSRF protection: a cookie means nothing there.
    assert _resolve(world, Audience.REGISTRY, None, cookie) == NOBODY
    assert _resolve(world, Audience.TOKEN, None, cookie) == NOBODY


def test_the_ui_reads_only_its_session(world: World) -> None:
    assert _resolve(world, Audience.UI, _basic("alice", PASSWORD), None) == NOBODY
    with pytest.raises(CredentialRefused, match="session has expired"):
        _resolve(world, Audience.UI, None, "dys_0123456789abcdef_" + "A" * 43)


@pytest.mark.parametrize("audience", [Audience.REGISTRY, Audience.TOKEN, Audience.API])
def test_unknown_schemes_and_malformed_basic_are_refused(world: World, audience: Audience) -> None:
    for header in ("Digest username=alice", "Negotiate abc", "Basic", "Basic !!!"):
        with pytest.raises(CredentialRefused):
            _resolve(world, audience, header, None)


def test_passwords_open_every_header_audience_with_their_kind(world: World) -> None:
    for audience in (Audience.REGISTRY, Audience.TOKEN, Audience.API):
        found = _resolve(world, audience, _basic("alice", PASSWORD), None)
        assert found.identity.name == "alice" and found.identity.credential is Credential.PASSWORD


def test_refresh_tokens_are_refused_outside_their_grant_and_not_counted_as_guesses(world: World) -> None:
    alice = world.auth.accounts.identity(world.auth.accounts.user("alice").id)
    assert alice is not None
    refresh = world.auth.credentials.issue_refresh_token(alice, "test")
    for audience in (Audience.REGISTRY, Audience.TOKEN, Audience.API):
        with pytest.raises(CredentialRefused):
            _resolve(world, audience, _basic("alice", refresh), None)
    for audience in (Audience.TOKEN, Audience.API):
        with pytest.raises(CredentialRefused):
            _resolve(world, audience, f"Bearer {refresh}", None)
    assert world.auth.throttle.state("alice", ADDRESS).pair.failures == 0
    found = asyncio.run(world.auth.resolver.refresh(refresh))
    assert found.name == "alice" and found.credential is Credential.REFRESH_TOKEN


def test_registry_tokens_carry_their_claims_on_v2_only(world: World) -> None:
    token = world.token("alice", "repository:alice/private:pull")
    found = _resolve(world, Audience.REGISTRY, f"Bearer {token}", None)
    assert found.claims is not None and found.claims.allows("repository", "alice/private", ["pull"])
    assert found.identity.credential is Credential.REGISTRY_TOKEN
    for audience in (Audience.TOKEN, Audience.API):
        with pytest.raises(CredentialRefused) as refused:
            _resolve(world, audience, f"Bearer {token}", None)
        assert not refused.value.invalid_token
    with pytest.raises(CredentialRefused) as bad:
        _resolve(world, Audience.REGISTRY, f"Bearer {token[:-3]}abc", None)
    assert bad.value.invalid_token
