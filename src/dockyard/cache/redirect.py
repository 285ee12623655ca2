"""On the main registry: send a user's blob pulls to their cache, and accept a cache's fetch by grant."""

from __future__ import annotations

from urllib.parse import quote

from dockyard.auth.identity import Identity
from dockyard.auth.keys import KeyRing
from dockyard.cache.directory import CacheDirectory
from dockyard.cache.grants import GRANT_PARAMETER, GrantInvalid, issue_grant, verify_grant


class CacheRedirects:
    """Decides whether a blob GET goes to a cache, and signs the grant that goes with it."""

    def __init__(self, directory: CacheDirectory, keys: KeyRing, issuer: str, grant_ttl_seconds: int) -> None:
        self.directory = directory
        self.keys = keys
        self.issuer = issuer
        self.grant_ttl_seconds = grant_ttl_seconds

    def location(self, identity: Identity | None, repository: str, digest: str) -> str | None:
        """The cache URL (with its grant) for a user allowed to pull this blob; None to serve it here.

        Call only after the access policy allowed the pull: the grant is a copy of that decision.
        """
        if identity is None or identity.user_id is None or identity.name is None:
            return None
        cache = self.directory.serving(identity.user_id)
        if cache is None:
            return None
        grant = issue_grant(
            self.keys.current, self.issuer, identity.name, repository, digest, self.grant_ttl_seconds
        )
        return f"{cache.url}/v2/{repository}/blobs/{digest}?{GRANT_PARAMETER}={quote(grant, safe='')}"

    def accepts(self, grant: str, repository: str, digest: str) -> bool:
        """Whether a cache's fetch carries a valid grant for exactly this blob."""
        try:
            verify_grant(grant, self.keys.public_key, repository, digest)
        except GrantInvalid:
            return False
        return True
