"""Caches near users, end to end: a main registry, `dockyard cache serve` nodes, real clients, two users.

alice's profile names the cache "asia"; bob's names none. Both pull the same image through the main
registry's URL; alice's blobs come from the cache, bob's from the main registry.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cache_support import (
    USER_PASSWORD,
    CacheFactory,
    Main,
    choose_cache,
    pull,
    push_image,
    register_cache,
    serve_alice_from_asia,
)

from support.images import BuiltImages
from support.tools import ContainerTools

pytestmark = pytest.mark.e2e

REPO = "admin/app"


def _redirect(main: Main, user: str, digest: str) -> httpx.Response:
    return httpx.get(
        f"{main.url}/v2/{REPO}/blobs/{digest}", auth=(user, USER_PASSWORD), follow_redirects=False, timeout=30
    )


def _wait_redirect(main: Main, user: str, digest: str, cache_url: str, timeout: float = 20) -> None:
    """Until the registry sends this user's pulls to the cache again (it checks caches every second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _redirect(main, user, digest).headers.get("location", "").startswith(cache_url):
            return
        time.sleep(0.3)
    raise AssertionError(f"the registry does not redirect {user} to {cache_url}")


def _blob_files(dest: Path) -> dict[str, bytes]:
    return {f"sha256:{p.name}": p.read_bytes() for p in dest.iterdir() if len(p.name) == 64}


def test_alice_pulls_through_her_cache_and_bob_from_the_registry(
    main: Main, cache_node: CacheFactory, container_tools: ContainerTools, images: BuiltImages, tmp_path: Path
) -> None:
    blobs = push_image(main, container_tools, images, REPO)
    asia = serve_alice_from_asia(main, cache_node)

    pull(main, container_tools, "alice", REPO, tmp_path / "alice1")
    first = asia.ping()
    assert first["misses"] == len(blobs), "the first pull fills the cache"
    assert first["hits"] == 0
    assert sorted(f"sha256:{p.name}" for p in asia.stored_files()) == sorted(blobs)
    pulled = _blob_files(tmp_path / "alice1")
    for digest in blobs:
        assert f"sha256:{hashlib.sha256(pulled[digest]).hexdigest()}" == digest

    pull(main, container_tools, "alice", REPO, tmp_path / "alice2")
    second = asia.ping()
    assert second["hits"] == len(blobs), "the second pull is all hits"
    assert second["misses"] == len(blobs) and second["bytes_fetched"] == first["bytes_fetched"]

    pull(main, container_tools, "bob", REPO, tmp_path / "bob")
    assert asia.ping() == second, "bob's blobs come from the main registry, not the cache"
    assert _blob_files(tmp_path / "bob") == pulled

    # Manifests are always the main registry's; blob GETs of alice are redirected, of bob answered.
    manifest = httpx.get(
        f"{main.url}/v2/{REPO}/manifests/1", auth=("alice", USER_PASSWORD), follow_redirects=False, timeout=30
    )
    assert manifest.status_code == 200
    redirect = _redirect(main, "alice", blobs[0])
    assert redirect.status_code == 307
    assert redirect.headers["location"].startswith(f"{asia.url}/v2/{REPO}/blobs/")
    assert _redirect(main, "bob", blobs[0]).status_code == 200

    listed = {c["name"]: c for c in main.api("GET", "/caches").json()}
    assert listed["asia"]["healthy"] is True

    # A second user of the same cache is served from what the first one's pull left there.
    choose_cache(main, "bob", "asia")
    pull(main, container_tools, "bob", REPO, tmp_path / "bob-cached")
    third = asia.ping()
    assert third["hits"] == 2 * len(blobs) and third["misses"] == len(blobs)
    assert _blob_files(tmp_path / "bob-cached") == pulled


def test_grants_open_one_blob_only_and_expire_with_access(
    main: Main, cache_node: CacheFactory, container_tools: ContainerTools, images: BuiltImages
) -> None:
    blobs = push_image(main, container_tools, images, REPO)
    asia = serve_alice_from_asia(main, cache_node)
    location = _redirect(main, "alice", blobs[1]).headers["location"]
    grant = parse_qs(urlsplit(location).query)["dyg"][0]

    assert httpx.get(location, timeout=30).status_code == 200
    other = f"{asia.url}/v2/{REPO}/blobs/{blobs[2]}?dyg={grant}"
    assert httpx.get(other, timeout=30).status_code == 403, "a grant for one blob does not open another"
    assert httpx.get(f"{main.url}/v2/{REPO}/blobs/{blobs[2]}?dyg={grant}", timeout=30).status_code == 403
    header, payload, signature = grant.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    for bad in (tampered, f"{header}.{payload[:-2]}xx.{signature}", "not-a-grant", ""):
        answer = httpx.get(f"{asia.url}/v2/{REPO}/blobs/{blobs[1]}?dyg={bad}", timeout=30)
        assert answer.status_code in {401, 403}, bad
        assert answer.json()["errors"][0]["code"] in {"DENIED", "UNAUTHORIZED"}
    assert httpx.get(f"{asia.url}/v2/{REPO}/blobs/{blobs[1]}", timeout=30).status_code == 401
    # A registry token is not a grant (another audience).
    token = httpx.get(
        f"{main.url}/auth/token",
        params={"service": "dockyard", "scope": f"repository:{REPO}:pull"},
        auth=("alice", USER_PASSWORD),
        timeout=30,
    ).json()["token"]
    assert httpx.get(f"{asia.url}/v2/{REPO}/blobs/{blobs[1]}?dyg={token}", timeout=30).status_code == 403

    # alice loses access: no new grant, no redirect.
    assert main.api("PATCH", f"/repositories/{REPO}", json={"visibility": "private"}).status_code == 200
    assert _redirect(main, "alice", blobs[1]).status_code in {401, 403}


def test_many_clients_missing_one_blob_cause_one_fetch(
    main: Main, cache_node: CacheFactory, container_tools: ContainerTools, images: BuiltImages
) -> None:
    blobs = push_image(main, container_tools, images, REPO)
    asia = serve_alice_from_asia(main, cache_node)
    biggest = max(blobs, key=lambda d: len(images.multilayer.blob(d)))
    location = _redirect(main, "alice", biggest).headers["location"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: httpx.get(location, timeout=60), range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    bodies = [r.content for r in responses]
    assert all(body == images.multilayer.blob(biggest) for body in bodies)
    stats = asia.ping()
    assert stats["misses"] == 1 and stats["bytes_fetched"] == len(bodies[0])
    ranged = httpx.get(location, headers={"Range": "bytes=10-19"}, timeout=30)
    assert ranged.status_code == 206 and ranged.content == bodies[0][10:20]


def test_chain_restart_eviction_and_corruption(
    main: Main, cache_node: CacheFactory, container_tools: ContainerTools, images: BuiltImages, tmp_path: Path
) -> None:
    blobs = push_image(main, container_tools, images, REPO)
    asia = cache_node("asia", main.url)
    china = cache_node("china", asia.url)
    register_cache(main, "asia", asia.url)
    register_cache(main, "china", china.url)
    choose_cache(main, "alice", "china")
    pull(main, container_tools, "alice", REPO, tmp_path / "chain")
    assert china.ping()["misses"] == len(blobs) and asia.ping()["misses"] == len(blobs), "stored at every hop"

    china.stop()
    china.start()
    _wait_redirect(main, "alice", blobs[0], china.url)
    pull(main, container_tools, "alice", REPO, tmp_path / "after-restart")
    assert china.ping()["hits"] == len(blobs), "a restarted cache keeps its content"

    sizes = sorted(len(images.multilayer.blob(d)) for d in blobs)
    small = cache_node("small", main.url, "--max-size", str(sizes[-1] + sizes[0]))
    register_cache(main, "small", small.url)
    choose_cache(main, "bob", "small")
    pull(main, container_tools, "bob", REPO, tmp_path / "small")
    assert small.ping()["stored_bytes"] <= sizes[-1] + sizes[0], "the size limit holds"
    assert len(small.stored_files()) < len(blobs)

    # A blob corrupted on the main registry's disk: the cache keeps nothing and the transfer fails.
    fresh = cache_node("fresh", main.url)
    register_cache(main, "fresh", fresh.url)
    choose_cache(main, "alice", "fresh")
    victim = blobs[-1]
    path = main.data_dir / "storage" / "blobs" / "sha256" / victim[7:9] / victim[7:]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    location = _redirect(main, "alice", victim).headers["location"]
    with pytest.raises(httpx.HTTPError):
        httpx.get(location, timeout=30).raise_for_status()
    assert not [p for p in fresh.stored_files() if p.name == victim[7:]]


def test_cache_down_means_the_registry_serves(
    main: Main, cache_node: CacheFactory, container_tools: ContainerTools, images: BuiltImages, tmp_path: Path
) -> None:
    blobs = push_image(main, container_tools, images, REPO)
    asia = serve_alice_from_asia(main, cache_node)
    asia.stop()
    main.wait_cache_state("asia", healthy=False)
    assert _redirect(main, "alice", blobs[0]).status_code == 200
    pull(main, container_tools, "alice", REPO, tmp_path / "while-down")
    asia.start()
    _wait_redirect(main, "alice", blobs[0], asia.url)
