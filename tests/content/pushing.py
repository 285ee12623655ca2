"""Helpers for the content tests: blobs pushed through the upload service, as a client's upload would."""

from __future__ import annotations

import hashlib

from dockyard.app import Services
from dockyard.content.digests import parse_digest


def digest_of(data: bytes) -> str:
    """The sha256 digest of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(services: Services, name: str, data: bytes) -> str:
    """Upload `data` in one append and commit it; its digest."""
    status = services.uploads.start(name)
    appender = services.uploads.append(name, status.id, 0)
    appender.write(data)
    appender.finish()
    digest = digest_of(data)
    services.uploads.complete(name, status.id, parse_digest(digest))
    return digest
