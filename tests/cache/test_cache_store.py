"""The cache node's disk: content kept across restarts, least recently used out, time to live, no partials."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from dockyard.storage.cache_store import CacheStore


def _put(store: CacheStore, data: bytes) -> str:
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    temp = store.temp_file()
    temp.write_bytes(data)
    store.admit(temp, digest)
    return digest


def test_blobs_survive_a_restart_and_partials_do_not(tmp_path: Path) -> None:
    store = CacheStore(tmp_path, max_bytes=10_000)
    digest = _put(store, b"a" * 100)
    store.temp_file().write_bytes(b"half a blob")
    again = CacheStore(tmp_path, max_bytes=10_000)
    found = again.lookup(digest)
    assert found is not None and found.path.read_bytes() == b"a" * 100
    assert again.used_bytes == 100
    assert list((tmp_path / "tmp").iterdir()) == [], "a fetch cut by a restart leaves nothing behind"


def test_least_recently_used_blobs_leave_first(tmp_path: Path) -> None:
    store = CacheStore(tmp_path, max_bytes=300)
    first, second, third = (_put(store, bytes([n]) * 100) for n in range(3))
    past = time.time() - 100
    for age, digest in enumerate((first, second, third)):
        os.utime(store.path(digest), (past + age, past))
    assert store.lookup(first) is not None  # used now: the most recent
    fourth = _put(store, b"d" * 100)
    assert store.lookup(second) is None, "the least recently used goes"
    assert all(store.lookup(d) is not None for d in (first, third, fourth))
    assert store.used_bytes == 300
    big = _put(store, b"e" * 250)
    assert store.lookup(big) is not None, "the blob just admitted stays"
    assert store.used_bytes == 250
    assert [d for d in (first, third, fourth) if store.path(d).exists()] == [], "older ones went to make room"


def test_time_to_live_counts_from_the_fetch_not_the_last_use(tmp_path: Path) -> None:
    store = CacheStore(tmp_path, max_bytes=10_000, ttl_seconds=60)
    fresh, stale = _put(store, b"fresh"), _put(store, b"stale")
    fetched_long_ago = time.time() - 120
    os.utime(store.path(stale), (time.time(), fetched_long_ago))
    assert store.lookup(fresh) is not None
    assert store.lookup(stale) is None
    assert not store.path(stale).exists()
    assert store.used_bytes == len(b"fresh")


def test_files_are_for_the_owner_only(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "cache", max_bytes=10_000)
    _put(store, b"secret layer")
    for path in (tmp_path / "cache").rglob("*"):
        mode = path.stat().st_mode & 0o777
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
