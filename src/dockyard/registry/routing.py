"""Which resource a /v2/ path names. Repository names contain slashes, so the tail is matched first."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ROUTES = [
    ("upload", re.compile(r"(?P<name>.+)/blobs/uploads/(?P<arg>[^/]+)", re.DOTALL)),
    ("uploads", re.compile(r"(?P<name>.+)/blobs/uploads/?", re.DOTALL)),
    ("blob", re.compile(r"(?P<name>.+)/blobs/(?P<arg>[^/]+)", re.DOTALL)),
    ("manifest", re.compile(r"(?P<name>.+)/manifests/(?P<arg>[^/]+)", re.DOTALL)),
    ("tags", re.compile(r"(?P<name>.+)/tags/list", re.DOTALL)),
    ("referrers", re.compile(r"(?P<name>.+)/referrers/(?P<arg>[^/]+)", re.DOTALL)),
]


@dataclass(frozen=True)
class Target:
    """A parsed /v2/ path: the resource kind, the repository name and the last path segment."""

    kind: str
    name: str
    arg: str


def resolve(path: str) -> Target | None:
    """Parse the part of the path after /v2/."""
    if path in {"_catalog", "_catalog/"}:
        return Target("catalog", "", "")
    for kind, pattern in _ROUTES:
        # fullmatch and DOTALL: a control character in the path reaches name validation (400),
        # and `$` cannot match before a trailing newline.
        match = pattern.fullmatch(path)
        if match:
            return Target(kind, match["name"], match.groupdict().get("arg") or "")
    return None
