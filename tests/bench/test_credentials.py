"""The bench authorizes like registry clients: bearer tokens per scope, Basic only when asked."""

from __future__ import annotations

import http.client
import importlib.util
from pathlib import Path

import pytest

from support import DockyardFactory

# Loaded from its file: inside the test suite, the name `bench` is this directory (tests/bench).
_SPEC = importlib.util.spec_from_file_location(
    "bench_credentials", Path(__file__).resolve().parents[2] / "bench" / "credentials.py"
)
assert _SPEC is not None and _SPEC.loader is not None
credentials_module = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(credentials_module)
Credentials = credentials_module.Credentials
scope_of = credentials_module.scope_of

PASSWORD = "bench-credentials-pw"


@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("/v2/_catalog?n=100", "registry:catalog:*"),
        ("/v2/bench/small/manifests/latest", "repository:bench/small:pull,push"),
        ("/v2/a/b/c/tags/list", "repository:a/b/c:pull,push"),
        ("/v2/x/blobs/uploads/?mount=sha256:ab&from=y/z", "repository:x:pull,push repository:y/z:pull"),
        ("/v2/", ""),
    ],
)
def test_scope_of(path: str, scope: str) -> None:
    assert scope_of(path) == scope


def _status(base: str, path: str, header: str | None) -> int:
    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": header} if header else {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_bearer_tokens_from_a_live_dockyard(
    dockyard_server: DockyardFactory, reference_registry: str
) -> None:
    server = dockyard_server(env={"DOCKYARD_ADMIN_PASSWORD": PASSWORD})
    credentials = Credentials("admin", PASSWORD)
    header = credentials.header(server.url, "/v2/_catalog")
    assert header is not None and header.startswith("Bearer ")
    assert credentials.header(server.url, "/v2/_catalog") == header  # cached until it nearly expires
    assert _status(server.url, "/v2/_catalog", header) == 200
    assert _status(server.url, "/v2/_catalog", None) == 401
    basic = Credentials("admin", PASSWORD, basic=True).header(server.url, "/v2/_catalog")
    assert basic is not None and basic.startswith("Basic ")
    assert _status(server.url, "/v2/_catalog", basic) == 200
    # The reference runs without auth: it gets no header at all.
    assert credentials.header(reference_registry, "/v2/_catalog") is None
    with pytest.raises(RuntimeError, match="answered 401"):
        Credentials("admin", "wrong-password").header(server.url, "/v2/_catalog")
