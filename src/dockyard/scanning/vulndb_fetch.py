"""Fetching an advisory file from a URL into a temporary file: streamed, bounded, never left half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlparse

from dockyard.scanning.errors import ScanError

__all__ = ["FetchError", "default_source", "fetched", "is_url"]

_SCHEMES = ("http", "https", "file")
_CHUNK = 1 << 20


class FetchError(ScanError):
    """The advisory file could not be downloaded: unreachable, an HTTP error, too big or cut short."""


def is_url(text: str) -> bool:
    """Whether `text` names a URL (scheme://...) rather than a local path."""
    return urlparse(text).scheme in _SCHEMES and "://" in text


def default_source(location: str) -> str:
    """The name advisories from `location` are stored under: the file name without extension; for
    osv.dev's `<Ecosystem>/all.zip`, the ecosystem."""
    path = PurePosixPath(urlparse(location).path if is_url(location) else str(Path(location).resolve()))
    if path.name == "all.zip" and path.parent.name:
        return path.parent.name
    return path.stem or "advisories"


@contextmanager
def fetched(
    url: str,
    directory: Path,
    *,
    max_bytes: int,
    timeout: float = 60.0,
    on_start: Callable[[int | None], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Path]:
    """Download `url` into a temporary file under `directory`, yield its path, and delete it afterwards.

    `on_start(length)` gets the announced size (None if unknown), `progress(n)` each chunk's size. Raises
    `FetchError` for other schemes, HTTP errors, timeouts, bodies over `max_bytes` or shorter than announced.
    """
    scheme = urlparse(url).scheme
    if scheme not in _SCHEMES:
        raise FetchError(f"{url}: only http, https and file URLs can be fetched")
    directory.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="vulndb-", suffix=".download", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            _download(url, out, max_bytes, timeout, on_start, progress)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _download(
    url: str,
    out: BinaryIO,
    max_bytes: int,
    timeout: float,
    on_start: Callable[[int | None], None] | None,
    progress: Callable[[int], None] | None,
) -> None:
    # The scheme was checked by the caller: http, https or file only.
    request = urllib.request.Request(url, headers={"User-Agent": "dockyard-vulndb"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            announced = response.headers.get("Content-Length")
            # isascii: str.isdigit() also accepts digits int() refuses, such as "²".
            length = int(announced) if announced and announced.isascii() and announced.isdigit() else None
            if length is not None and length > max_bytes:
                raise FetchError(f"{url}: {length} bytes is over the limit of {max_bytes}")
            if on_start is not None:
                on_start(length)
            received = 0
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                if received > max_bytes:
                    raise FetchError(f"{url}: more than the limit of {max_bytes} bytes")
                out.write(chunk)
                if progress is not None:
                    progress(len(chunk))
            if length is not None and received != length:
                raise FetchError(f"{url}: the download was cut short ({received} of {length} bytes)")
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url}: the server answered {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise FetchError(f"{url}: cannot fetch ({exc.reason})") from exc
    except (HTTPException, TimeoutError, OSError) as exc:
        raise FetchError(f"{url}: the download failed ({exc or type(exc).__name__})") from exc
