"""Blobs pushed through the real upload service, as a client's upload would (for tests that need content)."""

from __future__ import annotations

from dockyard.app import Services
from dockyard.content.digests import digest_of, parse_digest


def push_blob(services: Services, name: str, data: bytes) -> str:
    """Upload `data` in one append of an upload session and commit it; its digest."""
    status = services.uploads.start(name)
    appender = services.uploads.append(name, status.id, 0)
    appender.write(data)
    appender.finish()
    digest = digest_of(data)
    services.uploads.complete(name, status.id, parse_digest(digest))
    return digest
