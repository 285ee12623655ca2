"""One scripted sequence of raw requests against a live `dockyard serve` and CNCF Distribution, compared.

Every step records the status, the OCI error codes and (where it matters) what came back; the two
registries must agree except for the deliberate differences tabled in KNOWN_DIFFERENCES.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
from registry_support import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    sha256,
    stop_process,
    wait_for,
)

from support import free_port

DOCKYARD = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "dockyard"
ADMIN_PASSWORD = "differential-admin-1"

# label -> (Dockyard's status and codes, Distribution 2.8's, why they differ). Compared without the values.
# Each entry is a choice, not a bug: Dockyard follows OCI Distribution 1.1 where 2.8 predates it.
KNOWN_DIFFERENCES: dict[str, tuple[str, str, str]] = {
    "chunked.out-of-order": (
        "416 BLOB_UPLOAD_INVALID", "202",
        "OCI: 416 for a chunk not starting at the session's end; 2.8 ignores Content-Range, appends",
    ),
    "monolithic": ("201", "202", "single-POST upload (?digest= and a body) is optional; 2.8 opens a session"),
    "bad-digest.monolithic": ("400 DIGEST_INVALID", "202", "as `monolithic`: 2.8 ignores ?digest= on POST"),
    "sha512.head": (
        "200", "200", "Docker-Content-Digest: we echo the sha512 digest asked for, 2.8 gives its sha256",
    ),
    "upload.unknown-uuid": (
        "404 BLOB_UPLOAD_UNKNOWN", "404 BLOB_UPLOAD_INVALID",
        "OCI's code for an unknown session; 2.8 first rejects the missing _state token of its own design",
    ),
    "upload.unknown-uuid.patch": (
        "404 BLOB_UPLOAD_UNKNOWN", "404 BLOB_UPLOAD_INVALID", "as upload.unknown-uuid",
    ),
    "upload.unknown-uuid.put": (
        "404 BLOB_UPLOAD_UNKNOWN", "404 BLOB_UPLOAD_INVALID", "as upload.unknown-uuid",
    ),
    "manifest.unknown-repo": (
        "404 NAME_UNKNOWN", "404 MANIFEST_UNKNOWN", "OCI NAME_UNKNOWN names the unknown repository",
    ),
    "manifest.invalid-tag": ("400 TAG_INVALID", "404", "OCI TAG_INVALID; 2.8's router simply does not match"),
    "manifest.invalid-tag.get": (
        "404 MANIFEST_UNKNOWN", "404", "same status; 2.8's router answers without an OCI error body",
    ),
    "index.delete-child": (
        "409 DENIED", "202", "we refuse, to keep indexes whole; 2.8 deletes it and leaves the index dangling",
    ),
    "referrers": ("200", "404", "the OCI 1.1 referrers API; Distribution 2.8 has none"),
    "tags.page1": ("200", "200", "OCI tag lists are sorted and honour n/last with a Link; 2.8 ignores both"),
    "tags.after-v1": ("200", "200", "as tags.page1: 2.8 ignores last"),
    "tags.bad-n": ("400 PAGINATION_NUMBER_INVALID", "200", "2.8 ignores n, so never rejects it"),
    "manifest.delete.tag": (
        "202", "400 DIGEST_INVALID", "OCI 1.1 allows DELETE /manifests/<tag>; Distribution 2.8 refuses it",
    ),
    "name.upper": ("400 NAME_INVALID", "404", "OCI NAME_INVALID; 2.8's router does not match the name"),
    "name.long": ("400 NAME_INVALID", "500 UNKNOWN", "names over 255 characters are invalid; 2.8 fails"),
    "blob.range.end-before-start": (
        "416 RANGE_INVALID", "416", "both refuse; ours says why in OCI JSON, 2.8's body is plain text",
    ),
    "blob.range.unsatisfiable": ("416 RANGE_INVALID", "416", "as blob.range.end-before-start"),
    "blob.range.garbage": (
        "200", "416", "RFC 9110 14.2: a Range that does not parse is ignored (the whole blob, 200)",
    ),
    "blob.range.several": (
        "200", "206", "several ranges: RFC 9110 lets a server send the whole blob; 2.8 sends multipart",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Observation:
    """What one step saw: status, error codes, and a step-specific value."""

    status: int
    codes: tuple[str, ...]
    value: Any = None

    @property
    def outcome(self) -> str:
        """Status and error codes."""
        return f"{self.status} {','.join(self.codes)}".strip()

    def __str__(self) -> str:
        return self.outcome + ("" if self.value is None else f" {self.value!r}")


@dataclass
class Run:
    """One registry driven through the script."""

    client: httpx.Client
    prefix: str
    state: dict[str, Any] = field(default_factory=dict)
    seen: dict[str, Observation] = field(default_factory=dict)

    def record(self, label: str, response: httpx.Response, value: Any = None) -> httpx.Response:
        codes: tuple[str, ...] = ()
        if response.headers.get("content-type", "").startswith("application/json") and response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("errors"), list):
                codes = tuple(str(e.get("code")) for e in body["errors"])
        assert label not in self.seen, f"duplicate step {label}"
        self.seen[label] = Observation(response.status_code, codes, value)
        return response

    def name(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"


def _session(run: Run, repo: str, label: str) -> str:
    response = run.record(label, run.client.post(f"/v2/{repo}/blobs/uploads/"))
    return str(response.headers.get("Location", ""))


def _push(client: httpx.Client, repo: str, data: bytes, digest: str | None = None) -> None:
    """POST then PUT with the body: the upload every registry supports."""
    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    response = client.put(_with(location, digest=digest or sha256(data)), content=data)
    assert response.status_code == 201, response.text


def _with(location: str, **params: str) -> str:
    """Add query parameters to a Location, keeping the ones it has (httpx's params= would drop them)."""
    return location + ("&" if "?" in location else "?") + urlencode(params)


def _link_query(response: httpx.Response) -> dict[str, str] | None:
    link = response.headers.get("Link")
    if link is None:
        return None
    query = parse_qs(urlparse(link.split(";", 1)[0].strip("<>")).query)
    return {key: query[key][0] for key in sorted(query)}


# Blob Range forms (RFC 9110), against a blob of 5,500 bytes.
RANGES = {
    "suffix": "bytes=-5",
    "open": "bytes=5490-",
    "past-end": "bytes=5495-9999",
    "end-before-start": "bytes=500-0",
    "unsatisfiable": "bytes=9999-",
    "garbage": "bytes=abc",
    "several": "bytes=0-1,5-6",
}


def _script(run: Run) -> None:
    c = run.client
    repo = run.name("app")
    run.record("base", c.get("/v2/"))

    # Uploads: POST + PATCH + PUT.
    data = b"first blob " * 500
    location = _session(run, repo, "upload.post")
    run.record("upload.status.empty", c.get(location))
    patched = c.patch(location, content=data, headers={"Content-Type": "application/octet-stream"})
    run.record("upload.patch", patched, patched.headers.get("Range"))
    # Distribution keeps the session state in the Location's query: always follow the newest Location.
    location = patched.headers["Location"]
    status = c.get(location)
    run.record("upload.status", status, status.headers.get("Range"))
    run.record("upload.put", c.put(_with(location, digest=sha256(data))))
    run.record("upload.after-put", c.get(location))

    # Chunks with Content-Range, then one out of order.
    location = _session(run, repo, "chunked.post")
    first, second = b"A" * 1000, b"B" * 500
    ranged = {"Content-Type": "application/octet-stream"}
    one = c.patch(location, content=first, headers={**ranged, "Content-Range": "0-999"})
    run.record("chunked.1", one, one.headers.get("Range"))
    location = one.headers.get("Location", location)
    two = c.patch(location, content=second, headers={**ranged, "Content-Range": "1000-1499"})
    run.record("chunked.2", two, two.headers.get("Range"))
    location = two.headers.get("Location", location)
    run.record("chunked.put", c.put(_with(location, digest=sha256(first + second))))
    get = c.get(f"/v2/{repo}/blobs/{sha256(first + second)}")
    run.record("chunked.get", get, get.content == first + second)
    # A chunk that does not start where the session ends, in a session of its own.
    location = _session(run, repo, "out-of-order.post")
    location = c.patch(location, content=first, headers={**ranged, "Content-Range": "0-999"}).headers[
        "Location"
    ]
    bad = c.patch(location, content=second, headers={**ranged, "Content-Range": "2000-2499"})
    run.record("chunked.out-of-order", bad, bad.headers.get("Range"))

    # POST then PUT with the body; monolithic POST; sha512.
    location = _session(run, repo, "put-body.post")
    body = b"put with body"
    run.record("put-body.put", c.put(_with(location, digest=sha256(body)), content=body, headers=ranged))
    mono = b"monolithic"
    run.record(
        "monolithic", c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(mono)}, content=mono)
    )
    long_digest = "sha512:" + hashlib.sha512(mono).hexdigest()
    location = _session(run, repo, "sha512.post")
    run.record("sha512", c.put(_with(location, digest=long_digest), content=mono))
    head = c.head(f"/v2/{repo}/blobs/{long_digest}")
    run.record("sha512.head", head, head.headers.get("Docker-Content-Digest"))

    # A wrong digest stores nothing.
    location = _session(run, repo, "bad-digest.post")
    location = c.patch(location, content=b"actual", headers=ranged).headers["Location"]
    run.record("bad-digest.put", c.put(_with(location, digest=sha256(b"claimed"))))
    run.record("bad-digest.head-claimed", c.head(f"/v2/{repo}/blobs/{sha256(b'claimed')}"))
    run.record("bad-digest.head-actual", c.head(f"/v2/{repo}/blobs/{sha256(b'actual')}"))
    run.record(
        "bad-digest.monolithic",
        c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(b"claimed")}, content=b"actual"),
    )
    run.record(
        "malformed-digest.put", c.put(_with(_session(run, repo, "malformed.post"), digest="sha256:abc"))
    )

    # Cancel; unknown uploads.
    location = _session(run, repo, "cancel.post")
    run.record("cancel.delete", c.delete(location))
    run.record("cancel.after", c.get(location))
    run.record("upload.unknown-uuid", c.get(f"/v2/{repo}/blobs/uploads/{uuid.uuid4()}"))
    run.record("upload.unknown-uuid.patch", c.patch(f"/v2/{repo}/blobs/uploads/{uuid.uuid4()}", content=b"x"))
    run.record(
        "upload.unknown-uuid.put",
        c.put(f"/v2/{repo}/blobs/uploads/{uuid.uuid4()}", params={"digest": sha256(b"")}),
    )

    # Blob reads.
    blob_url = f"/v2/{repo}/blobs/{sha256(data)}"
    head = c.head(blob_url)
    run.record(
        "blob.head", head, (head.headers.get("Content-Length"), head.headers.get("Docker-Content-Digest"))
    )
    get = c.get(blob_url)
    run.record(
        "blob.get",
        get,
        (get.content == data, get.headers.get("ETag"), get.headers.get("Docker-Content-Digest")),
    )
    partial = c.get(blob_url, headers={"Range": "bytes=10-19"})
    run.record("blob.range", partial, (partial.content, partial.headers.get("Content-Range")))
    for label, value in RANGES.items():
        with c.stream("GET", blob_url, headers={"Range": value}) as ranged_get:
            try:
                body: bytes | None = ranged_get.read()
            except httpx.RemoteProtocolError:
                # Distribution 2.8 declares the blob's length on its 416 and sends a short text instead.
                body = ranged_get._content = b""
            body = body if ranged_get.status_code == 206 else None
            run.record(f"blob.range.{label}", ranged_get, (body, ranged_get.headers.get("Content-Range")))
    run.record("blob.unknown.get", c.get(f"/v2/{repo}/blobs/{sha256(b'nothing')}"))
    run.record("blob.unknown.head", c.head(f"/v2/{repo}/blobs/{sha256(b'nothing')}"))
    run.record("blob.unknown-repo", c.get(f"/v2/{run.name('never')}/blobs/{sha256(data)}"))
    run.record("blob.invalid-digest", c.get(f"/v2/{repo}/blobs/sha256:{'A' * 64}"))

    # Mounts.
    other = run.name("other")
    run.record(
        "mount",
        c.post(f"/v2/{other}/blobs/uploads/", params={"mount": sha256(data), "from": repo}),
    )
    run.record("mount.get", c.head(f"/v2/{other}/blobs/{sha256(data)}"))
    unknown_mount = c.post(f"/v2/{other}/blobs/uploads/", params={"mount": sha256(b"nope"), "from": repo})
    run.record("mount.unknown", unknown_mount)

    # Manifests.
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer = b"layer content " * 20
    for blob in (config, layer):
        _push(c, repo, blob)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor(DOCKER_CONFIG, config),
            "layers": [descriptor(DOCKER_LAYER, layer)],
        },
        indent=3,
    ).encode()
    digest = sha256(manifest)
    manifest_headers = {"Content-Type": DOCKER_MANIFEST}
    put = c.put(f"/v2/{repo}/manifests/v1", content=manifest, headers=manifest_headers)
    run.record("manifest.put", put, put.headers.get("Docker-Content-Digest"))
    accept = {"Accept": DOCKER_MANIFEST}
    get = c.get(f"/v2/{repo}/manifests/v1", headers=accept)
    run.record("manifest.get.tag", get, (get.content == manifest, get.headers.get("Content-Type")))
    get = c.get(f"/v2/{repo}/manifests/{digest}", headers=accept)
    run.record("manifest.get.digest", get, get.content == manifest)
    head = c.head(f"/v2/{repo}/manifests/v1", headers=accept)
    run.record(
        "manifest.head", head, (head.headers.get("Docker-Content-Digest"), head.headers.get("Content-Length"))
    )
    for tag in ("v2", "v3", "a1"):
        c.put(f"/v2/{repo}/manifests/{tag}", content=manifest, headers=manifest_headers)
    oci = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
        }
    ).encode()
    run.record(
        "manifest.put.oci",
        c.put(f"/v2/{repo}/manifests/oci", content=oci, headers={"Content-Type": OCI_MANIFEST}),
    )
    get = c.get(f"/v2/{repo}/manifests/oci", headers=[("Accept", DOCKER_MANIFEST), ("Accept", OCI_MANIFEST)])
    run.record("manifest.get.accept-list", get, get.headers.get("Content-Type"))
    wrong = c.put(f"/v2/{repo}/manifests/{sha256(b'x')}", content=manifest, headers=manifest_headers)
    run.record("manifest.put.wrong-digest", wrong)

    missing = json.loads(manifest)
    missing["layers"].append(descriptor(DOCKER_LAYER, b"never pushed"))
    run.record(
        "manifest.put.missing-blob",
        c.put(f"/v2/{repo}/manifests/broken", content=json.dumps(missing).encode(), headers=manifest_headers),
    )
    run.record(
        "manifest.put.not-json",
        c.put(f"/v2/{repo}/manifests/bad", content=b"{nope", headers=manifest_headers),
    )
    run.record("manifest.unknown-tag", c.get(f"/v2/{repo}/manifests/nope", headers=accept))
    run.record("manifest.unknown-digest", c.get(f"/v2/{repo}/manifests/{sha256(b'nope')}", headers=accept))
    run.record("manifest.unknown-repo", c.get(f"/v2/{run.name('never')}/manifests/latest"))
    run.record(
        "manifest.invalid-tag",
        c.put(f"/v2/{repo}/manifests/-bad", content=manifest, headers=manifest_headers),
    )
    run.record("manifest.invalid-tag.get", c.get(f"/v2/{repo}/manifests/-bad", headers=accept))
    run.record("manifest.invalid-tag.head", c.head(f"/v2/{repo}/manifests/-bad", headers=accept))

    # An index, and deleting one of its children (in a repository of its own: the outcomes differ).
    multi = run.name("multi")
    for blob in (config, layer):
        _push(c, multi, blob)
    c.put(f"/v2/{multi}/manifests/{sha256(oci)}", content=oci, headers={"Content-Type": OCI_MANIFEST})
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, oci)]}
    ).encode()
    run.record(
        "index.put", c.put(f"/v2/{multi}/manifests/multi", content=index, headers={"Content-Type": OCI_INDEX})
    )
    run.record("index.delete-child", c.delete(f"/v2/{multi}/manifests/{sha256(oci)}"))
    run.record("index.get-after", c.get(f"/v2/{multi}/manifests/multi", headers={"Accept": OCI_INDEX}))
    run.record("referrers", c.get(f"/v2/{repo}/referrers/{digest}"))

    # Tags, paginated.
    tags = c.get(f"/v2/{repo}/tags/list")
    # Compared as sets: Distribution 2.8 lists tags in directory order (see tags.page1).
    run.record("tags", tags, sorted(tags.json().get("tags")) if tags.status_code == 200 else None)
    page = c.get(f"/v2/{repo}/tags/list", params={"n": "2"})
    run.record("tags.page1", page, (page.json().get("tags"), _link_query(page)))
    page = c.get(f"/v2/{repo}/tags/list", params={"n": "2", "last": "v1"})
    run.record("tags.after-v1", page, page.json().get("tags"))
    run.record("tags.unknown-repo", c.get(f"/v2/{run.name('never')}/tags/list"))
    run.record("tags.bad-n", c.get(f"/v2/{repo}/tags/list", params={"n": "abc"}))

    # Catalog, paginated from our prefix (the reference registry is shared by the session).
    _push(c, run.name("zzz"), mono)
    page = c.get("/v2/_catalog", params={"n": "2", "last": run.prefix})
    ours = [r for r in page.json().get("repositories", []) if r.startswith(run.prefix + "/")]
    link = _link_query(page)
    run.record("catalog.page1", page, (ours, link))
    if link:
        page = c.get("/v2/_catalog", params=link)
        ours = [r for r in page.json().get("repositories", []) if r.startswith(run.prefix + "/")]
        run.record("catalog.page2", page, ours)

    # Deletes.
    run.record("blob.delete", c.delete(f"/v2/{other}/blobs/{sha256(data)}"))
    run.record("blob.delete.after", c.head(f"/v2/{other}/blobs/{sha256(data)}"))
    run.record("blob.delete.unknown", c.delete(f"/v2/{other}/blobs/{sha256(b'nope')}"))
    run.record("manifest.delete.tag", c.delete(f"/v2/{repo}/manifests/a1"))
    run.record("manifest.delete.digest", c.delete(f"/v2/{repo}/manifests/{digest}"))
    run.record("manifest.delete.after", c.get(f"/v2/{repo}/manifests/{digest}", headers=accept))
    run.record("manifest.delete.tag-after", c.get(f"/v2/{repo}/manifests/v2", headers=accept))
    run.record("manifest.delete.again", c.delete(f"/v2/{repo}/manifests/{digest}"))
    tags = c.get(f"/v2/{repo}/tags/list")
    run.record(
        "tags.after-delete", tags, sorted(tags.json().get("tags")) if tags.status_code == 200 else None
    )

    # Names.
    run.record("name.upper", c.get("/v2/Upper/tags/list"))
    run.record("name.long", c.get(f"/v2/{'a' * 256}/tags/list"))


@pytest.fixture
def dockyard_url(tmp_path: Path) -> Iterator[str]:
    """A live `dockyard serve` on a free port, with the admin password set; stopped afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env["DOCKYARD_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(DOCKYARD), "serve", "--data-dir", str(tmp_path / "data"), "--listen", f"127.0.0.1:{port}",
             "--workers", "1", "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/_ping", proc, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def _drive(base_url: str, prefix: str, auth: tuple[str, str] | None) -> dict[str, Observation]:
    with httpx.Client(base_url=base_url, auth=auth, timeout=30) as client:
        run = Run(client, prefix)
        _script(run)
    return run.seen


def test_dockyard_agrees_with_distribution(dockyard_url: str, reference_registry: str) -> None:
    prefix = f"diff{uuid.uuid4().hex[:8]}"
    ours = _drive(dockyard_url, prefix, ("admin", ADMIN_PASSWORD))
    theirs = _drive(reference_registry, prefix, None)
    assert list(ours) == list(theirs), "both runs must take the same steps"
    unexpected = []
    for label in ours:
        mine, reference = ours[label], theirs[label]
        known = KNOWN_DIFFERENCES.get(label)
        if known is None and str(mine) != str(reference):
            unexpected.append(f"{label}: dockyard {mine} / distribution {reference}")
        elif known is not None and known[:2] != (mine.outcome, reference.outcome):
            unexpected.append(f"{label}: tabled {known[:2]}, saw dockyard {mine} / distribution {reference}")
    assert not unexpected, "\n".join(unexpected)


def test_script_steps_make_sense(dockyard_url: str) -> None:
    """The script itself is checked against Dockyard's documented answers, so agreement means something."""
    seen = _drive(dockyard_url, f"sane{uuid.uuid4().hex[:8]}", ("admin", ADMIN_PASSWORD))
    expectations: dict[str, Callable[[Observation], bool]] = {
        "upload.put": lambda o: o.status == 201,
        "chunked.get": lambda o: o.status == 200 and o.value is True,
        "bad-digest.put": lambda o: o.codes == ("DIGEST_INVALID",),
        "manifest.get.tag": lambda o: o.value == (True, DOCKER_MANIFEST),
        "manifest.put.missing-blob": lambda o: o.codes == ("MANIFEST_BLOB_UNKNOWN",),
        "tags": lambda o: o.value == ["a1", "oci", "v1", "v2", "v3"],
    }
    for label, check in expectations.items():
        assert check(seen[label]), (label, seen[label])
