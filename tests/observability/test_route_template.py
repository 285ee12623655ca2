"""The route label of a /v2/ path is the kind the registry's own router finds for it, for every path shape."""

from __future__ import annotations

import itertools

import pytest

from dockyard.observability.requests import registry_kind
from dockyard.registry.routing import resolve

NAMES = ["a", "team/app", "a/b/c/d", "blobs", "manifests", "x/blobs", "uploads", "tags", ""]
TAILS = [
    "blobs/sha256:abc", "blobs/uploads/", "blobs/uploads", "blobs/uploads/id-1", "blobs/uploads/id/x",
    "manifests/latest", "manifests/", "manifests", "tags/list", "tags/list/", "tags/", "referrers/sha256:a",
    "referrers/", "blobs/", "blobs", "other", "", "_catalog", "_catalog/",
]  # fmt: skip


@pytest.mark.parametrize(("name", "tail"), list(itertools.product(NAMES, TAILS)))
def test_agrees_with_the_registry_router(name: str, tail: str) -> None:
    path = f"{name}/{tail}" if name else tail
    target = resolve(path)
    assert registry_kind(path) == (target.kind if target is not None else None), path


@pytest.mark.parametrize(
    "path", ["_catalog", "_catalog/", "/blobs/uploads/x", "//manifests/x", "a//tags/list"]
)
def test_odd_paths_agree_too(path: str) -> None:
    target = resolve(path)
    assert registry_kind(path) == (target.kind if target is not None else None)
