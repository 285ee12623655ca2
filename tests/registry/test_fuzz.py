"""Hostile /v2/ requests built by Hypothesis: never a 5xx, always the API version header, every error
body OCI JSON. Bounded: a fixed number of examples, each with a deadline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_support import OCI_MANIFEST, image_manifest, open_client, put_manifest, sha256, sqlite_settings
from starlette.testclient import TestClient

from dockyard.config import load_settings
from support import PostgresServer

NAME = "fuzz/repo"
BLOB = b"fuzzed blob bytes" * 10

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "get"]
HOSTILE_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
NUMBERS = st.one_of(
    st.integers(min_value=-(1 << 70), max_value=1 << 70).map(str),
    st.sampled_from(["", " 1", "1 ", "+1", "-0", "0x1", "1_0", "\u0661", "\u00b2", "\uff11", "9" * 5000]),
    HOSTILE_TEXT,
)
DIGESTS = st.one_of(
    st.just(sha256(BLOB)),
    st.just("sha256:" + "0" * 64),
    st.builds(lambda a, h: f"{a}:{h}", st.sampled_from(["sha256", "sha512", "md5", "SHA256", ""]),
              st.text(alphabet="0123456789abcdefABCDEF=_-", max_size=130)),
    HOSTILE_TEXT,
)  # fmt: skip
NAMES = st.one_of(
    st.sampled_from([NAME, "fuzz/other", "a", "UPPER", "a//b", "-a", "x" * 256, "a/../b", ""]),
    HOSTILE_TEXT,
)
REFERENCES = st.one_of(st.sampled_from(["v1", "latest", "-bad", "a" * 129]), DIGESTS, HOSTILE_TEXT)


@st.composite
def paths(draw: st.DrawFn) -> str:
    """A /v2/ path: a known route shape with hostile parts, or hostile segments altogether."""
    name = draw(NAMES)
    tail = draw(
        st.one_of(
            st.builds(lambda d: f"blobs/{d}", DIGESTS),
            st.builds(lambda r: f"manifests/{r}", REFERENCES),
            st.just("tags/list"),
            st.just("blobs/uploads/"),
            st.builds(lambda u: f"blobs/uploads/{u}", HOSTILE_TEXT),
            st.builds(lambda d: f"referrers/{d}", DIGESTS),
            HOSTILE_TEXT,
        )
    )
    if draw(st.booleans()) and draw(st.booleans()):
        return "/v2/" + quote(draw(st.sampled_from(["_catalog", "_catalog/", "", "x"])), safe="/")
    return "/v2/" + quote(f"{name}/{tail}", safe="/" if draw(st.booleans()) else "")


HEADER_VALUES = st.one_of(
    NUMBERS.map(lambda text: text.encode()),
    st.binary(max_size=60),
    st.sampled_from([b"bytes=0-0", b"bytes=500-0", b"bytes=-5", b"bytes=0-1,2-3", b"0-10"]),
    st.just(OCI_MANIFEST.encode()),
).map(lambda value: value.replace(b"\r", b"").replace(b"\n", b""))  # a line break would split the header
HEADER_NAMES = ["Range", "Content-Range", "Content-Length", "Content-Type", "Accept", "If-Range",
                "Authorization", "Transfer-Encoding", "X-Forwarded-For"]  # fmt: skip
QUERY_KEYS = ["n", "last", "digest", "mount", "from", "artifactType", "x"]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for every example, with a repository holding a blob, a manifest and a tag."""
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    if request.param == "sqlite":
        settings = sqlite_settings(data_dir, scan_workers=0)
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        settings = load_settings(data_dir=data_dir, database_url=server.create_database(), scan_workers=0)
    with open_client(settings) as client:
        manifest = image_manifest(client, NAME)
        assert put_manifest(client, NAME, "v1", manifest, OCI_MANIFEST).status_code == 201
        client.post(f"/v2/{NAME}/blobs/uploads/", params={"digest": sha256(BLOB)}, content=BLOB)
        yield client


@settings(
    max_examples=300,
    deadline=timedelta(seconds=5),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(METHODS),
    path=paths(),
    query=st.dictionaries(st.sampled_from(QUERY_KEYS), st.one_of(NUMBERS, NAMES, DIGESTS), max_size=4),
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES), HEADER_VALUES, max_size=4),
    body=st.binary(max_size=512),
)
def test_hostile_requests(
    client: TestClient,
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, bytes],
    body: bytes,
) -> None:
    response = client.request(method, path, params=query, headers=headers, content=body or None)
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers.get("Docker-Distribution-API-Version") == "registry/2.0"
    if response.status_code >= 400 and method.upper() != "HEAD":
        assert response.headers["Content-Type"] == "application/json", response.text[:300]
        errors = json.loads(response.content)["errors"]
        assert errors and all(isinstance(e["code"], str) and isinstance(e["message"], str) for e in errors)
