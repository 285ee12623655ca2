"""Authorization the way registry clients send it: a bearer token per scope from the server's token endpoint
(docker, skopeo, podman and containerd all do this), or Basic credentials on every request (`--basic`)."""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
import time
from urllib.parse import parse_qs, urlencode, urlsplit

# Tokens are renewed this long before they expire, so none runs out mid-request.
_MARGIN_S = 30.0
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPOSITORY_PATH = re.compile(r"^/v2/(.+?)/(?:blobs|manifests|tags|referrers)(?:/|$)")


def scope_of(path: str) -> str:
    """The token scope(s) a /v2/ request needs: the catalog, or pull and push on its repository (and pull on
    the source repository of a cross-repository mount)."""
    route, _, query = path.partition("?")
    if route.startswith("/v2/_catalog"):
        return "registry:catalog:*"
    match = _REPOSITORY_PATH.match(route)
    if match is None:
        return ""
    scopes = [f"repository:{match.group(1)}:pull,push"]
    source = parse_qs(query).get("from")
    if source:
        scopes.append(f"repository:{source[0]}:pull")
    return " ".join(scopes)


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class Credentials:
    """A user's credentials; `header(base, path)` is the Authorization value to send, or None."""

    def __init__(self, user: str, password: str, *, basic: bool = False) -> None:
        self.basic_header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.basic = basic
        self._challenges: dict[str, dict[str, str] | None] = {}
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    @property
    def mode(self) -> str:
        """How requests are authorized, for the report."""
        return "Basic on every request" if self.basic else "bearer tokens per repository"

    def header(self, base: str, path: str) -> str | None:
        """What to send as Authorization for `path` on the registry at `base`."""
        challenge = self._challenge(base)
        if challenge is None:
            return None
        if self.basic or challenge.get("scheme") == "basic":
            return self.basic_header
        scope = scope_of(path)
        with self._lock:
            cached = self._tokens.get((base, scope))
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        query = {"service": challenge.get("service", "")}
        if scope:
            query["scope"] = scope
        status, _, body = _get(
            f"{challenge['realm']}?{urlencode(query)}", {"Authorization": self.basic_header}
        )
        if status != 200:
            raise RuntimeError(f"token endpoint {challenge['realm']} answered {status}: {body[:200]!r}")
        answer = json.loads(body)
        token = f"Bearer {answer.get('token') or answer['access_token']}"
        lifetime = float(answer.get("expires_in", 60))
        with self._lock:
            self._tokens[(base, scope)] = (token, time.monotonic() + max(1.0, lifetime - _MARGIN_S))
        return token

    def _challenge(self, base: str) -> dict[str, str] | None:
        """What /v2/ asks for: None when it answers without credentials (the reference, without auth)."""
        with self._lock:
            if base in self._challenges:
                return self._challenges[base]
        status, headers, _ = _get(f"{base}/v2/", {})
        challenge: dict[str, str] | None = None
        if status == 401:
            text = headers.get("www-authenticate", "")
            scheme, _, params = text.partition(" ")
            challenge = {"scheme": scheme.lower(), **dict(_CHALLENGE_PARAM.findall(params))}
            if challenge["scheme"] == "bearer" and "realm" not in challenge:
                raise RuntimeError(f"{base}: a Bearer challenge without a realm: {text!r}")
        with self._lock:
            self._challenges[base] = challenge
        return challenge
