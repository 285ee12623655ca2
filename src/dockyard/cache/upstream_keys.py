"""The main registry's public keys, as a cache node learns them: its JWKS, fetched through the upstream.

A cache in a chain (main → asia → china) asks its own upstream, which answers with what it learned from its
upstream, so every cache verifies grants with the main registry's keys. An unknown key id triggers a refresh
(a rotation on the main registry), at most once per `refresh_seconds`, so forged key ids cannot make the cache
hammer its upstream.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

JWKS_PATH = "/auth/jwks.json"
_MAX_JWKS_BYTES = 256 * 1024


class UpstreamKeys:
    """Public keys by id, refreshed from the upstream when an unknown id appears."""

    def __init__(self, upstream: str, client: httpx.AsyncClient, refresh_seconds: float = 10.0) -> None:
        self.url = upstream.rstrip("/") + JWKS_PATH
        self.client = client
        self.refresh_seconds = refresh_seconds
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._document: dict[str, Any] = {"keys": []}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    @property
    def document(self) -> dict[str, Any]:
        """The JWKS as last fetched (served again to caches below this one)."""
        return self._document

    def get(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """A known key; None when unknown (call `refresh` first)."""
        return self._keys.get(kid)

    async def ensure(self, kid: str | None) -> None:
        """Fetch the key set if `kid` is unknown and the last fetch is old enough."""
        if kid is not None and kid in self._keys:
            return
        # Concurrent requests with the same new key wait for one fetch instead of failing meanwhile.
        async with self._lock:
            if kid is not None and kid in self._keys:
                return
            if time.monotonic() - self._fetched_at < self.refresh_seconds:
                return
            await self.refresh()

    async def refresh(self) -> None:
        """Fetch the upstream's key set now (errors leave the known keys in place)."""
        self._fetched_at = time.monotonic()
        try:
            response = await self.client.get(self.url)
        except httpx.HTTPError:
            return
        if response.status_code != 200 or len(response.content) > _MAX_JWKS_BYTES:
            return
        try:
            document = json.loads(response.content)
            keys = {
                str(jwk["kid"]): ECAlgorithm.from_jwk(json.dumps(jwk))
                for jwk in document.get("keys", [])
                if isinstance(jwk, dict) and jwk.get("kty") == "EC" and "kid" in jwk
            }
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        self._keys = {kid: key for kid, key in keys.items() if isinstance(key, ec.EllipticCurvePublicKey)}
        self._document = {"keys": [jwk for jwk in document["keys"] if jwk.get("kid") in self._keys]}
