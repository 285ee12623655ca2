"""Upload sessions at the service level: two requests appending to one session at once."""

from __future__ import annotations

import hashlib

import pytest

from dockyard.app import Services
from dockyard.content.digests import parse_digest
from dockyard.content.errors import BlobUploadInvalid


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_concurrent_appends_to_one_session_cannot_mix_bytes(services: Services) -> None:
    """A client retrying a PATCH that is still streaming must not interleave its bytes with the first
    request's: the second is refused while the first writes, and the blob holds exactly what was sent."""
    name = "sessions/repo"
    status = services.uploads.start(name)
    first = services.uploads.append(name, status.id, 0)
    first.write(b"A" * 1000)
    with pytest.raises(BlobUploadInvalid):
        services.uploads.append(name, status.id, 0)
    first.write(b"B" * 1000)
    assert first.finish() == 2000
    data = b"A" * 1000 + b"B" * 1000
    # Once the first request is done, the session accepts appends again.
    more = services.uploads.append(name, status.id, 2000)
    more.write(b"C")
    assert more.finish() == 2001
    services.uploads.complete(name, status.id, parse_digest(_digest(data + b"C")))
    assert b"".join(services.store.read(_digest(data + b"C"))) == data + b"C"


def test_completion_waits_for_no_one(services: Services) -> None:
    """Completing while a request still appends is refused rather than committing a moving file."""
    name = "sessions/repo"
    status = services.uploads.start(name)
    done = services.uploads.append(name, status.id, 0)
    done.write(b"kept")
    done.finish()
    streaming = services.uploads.append(name, status.id, 4)
    streaming.write(b"more")
    with pytest.raises(BlobUploadInvalid):
        services.uploads.complete(name, status.id, parse_digest(_digest(b"kept")))
    streaming.abort()
    services.uploads.complete(name, status.id, parse_digest(_digest(b"kept")))
    assert b"".join(services.store.read(_digest(b"kept"))) == b"kept"
