"""A small keep-alive registry client for pushes, pulls and seeding (stdlib only, so it costs little CPU)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from bench.credentials import Credentials

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_IO_CHUNK = 1 << 20


class RegistryError(Exception):
    """A registry answered something other than what the protocol promises."""


_SERIAL_BYTES = 8


@dataclass(frozen=True)
class BlobFile:
    """Test data: the first `size` bytes of a data file, with their digest computed once up front.

    `variant(n)` is a blob of the same size whose last 8 bytes are the number n: new content for
    every push (a registry may skip work for bytes it already holds), digested in microseconds from
    the sha256 state kept at `size - 8`.
    """

    path: Path
    size: int
    digest: str
    label: str
    stem: hashlib._Hash = field(repr=False, compare=False)
    suffix: bytes = b""

    def variant(self, serial: int) -> BlobFile:
        """The blob with its last 8 bytes replaced by `serial`."""
        suffix = serial.to_bytes(_SERIAL_BYTES, "big")
        hasher = self.stem.copy()
        hasher.update(suffix)
        return replace(self, digest="sha256:" + hasher.hexdigest(), suffix=suffix)


def make_blob_files(directory: Path, sizes: dict[str, int]) -> dict[str, BlobFile]:
    """One file of random bytes as long as the largest size; smaller blobs are its prefixes.

    A single pass writes it and hashes every prefix, so no upload has to hash on the client side.
    """
    path = directory / "data.bin"
    ordered = sorted(sizes.items(), key=lambda item: item[1])
    hasher = hashlib.sha256()
    files: dict[str, BlobFile] = {}
    written = 0
    with open(path, "wb") as out:
        for label, size in ordered:
            stem = None
            for mark in (size - _SERIAL_BYTES, size):
                while written < mark:
                    piece = os.urandom(min(16 << 20, mark - written))
                    out.write(piece)
                    hasher.update(piece)
                    written += len(piece)
                if stem is None:
                    stem = hasher.copy()
            assert stem is not None
            files[label] = BlobFile(path, size, "sha256:" + hasher.copy().hexdigest(), label, stem)
    return files


def file_chunks(blob: BlobFile, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Stream bytes [start, end) of a blob from disk (the page cache, after the first read)."""
    end = blob.size if end is None else end
    from_file = min(end, blob.size - len(blob.suffix)) - start
    with open(blob.path, "rb") as handle:
        handle.seek(start)
        while from_file > 0:
            piece = handle.read(min(_IO_CHUNK, from_file))
            if not piece:
                raise RegistryError("data file is shorter than expected")
            from_file -= len(piece)
            yield piece
    if blob.suffix and end > blob.size - len(blob.suffix):
        body = blob.size - len(blob.suffix)
        yield blob.suffix[max(start, body) - body : end - body]


def _path_of(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _with_param(path: str, key: str, value: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}{key}={value}"


class Connection:
    """One keep-alive HTTP connection to a registry."""

    def __init__(self, base: str, credentials: Credentials | None) -> None:
        parts = urlsplit(base)
        self._base = base
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._credentials = credentials
        self._conn: http.client.HTTPConnection | None = None
        self._buffer = bytearray(_IO_CHUNK)

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=600)
            conn.connect()
            assert conn.sock is not None
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _auth(self, path: str) -> dict[str, str]:
        header = self._credentials.header(self._base, path) if self._credentials else None
        return {"Authorization": header} if header else {}

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> tuple[http.client.HTTPResponse, int]:
        """Send a request and drain the response; returns it (already read) and the body's length."""
        conn = self._connection()
        try:
            conn.request(method, path, body=body, headers={**self._auth(path), **(headers or {})})
            response = conn.getresponse()
            received = 0
            view = memoryview(self._buffer)
            while count := response.readinto(view):
                received += count
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.will_close:
            self.close()
        if response.status not in expect:
            raise RegistryError(f"{method} {path}: HTTP {response.status}")
        return response, received

    def get_body(self, path: str, headers: dict[str, str] | None = None) -> tuple[bytes, str | None]:
        """A GET's body and its Link header."""
        conn = self._connection()
        try:
            conn.request("GET", path, headers={**self._auth(path), **(headers or {})})
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.status != 200:
            raise RegistryError(f"GET {path}: HTTP {response.status}")
        return body, response.getheader("Link")

    def _start_upload(self, repo: str) -> str:
        response, _ = self.request(
            "POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"}, expect=(202,)
        )
        location = response.getheader("Location")
        if not location:
            raise RegistryError("upload started without a Location")
        return _path_of(location)

    def push_monolithic(self, repo: str, blob: BlobFile) -> None:
        """POST a session, then PUT the whole blob with its digest."""
        location = self._start_upload(repo)
        headers = {"Content-Length": str(blob.size), "Content-Type": "application/octet-stream"}
        self.request(
            "PUT", _with_param(location, "digest", blob.digest), file_chunks(blob), headers, expect=(201,)
        )

    def push_chunked(self, repo: str, blob: BlobFile, chunk_size: int) -> None:
        """POST a session, PATCH the blob in Content-Range chunks, then PUT the digest."""
        location = self._start_upload(repo)
        for start in range(0, blob.size, chunk_size):
            end = min(start + chunk_size, blob.size)
            headers = {
                "Content-Length": str(end - start),
                "Content-Range": f"{start}-{end - 1}",
                "Content-Type": "application/octet-stream",
            }
            response, _ = self.request(
                "PATCH", location, file_chunks(blob, start, end), headers, expect=(202,)
            )
            location = _path_of(response.getheader("Location") or location)
        self.request(
            "PUT",
            _with_param(location, "digest", blob.digest),
            headers={"Content-Length": "0"},
            expect=(201,),
        )

    def push_bytes(self, repo: str, data: bytes) -> str:
        """A small blob in one PUT; returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        location = self._start_upload(repo)
        self.request(
            "PUT",
            _with_param(location, "digest", digest),
            data,
            {"Content-Type": "application/octet-stream"},
            expect=(201,),
        )
        return digest

    def mount(self, repo: str, digest: str, source: str) -> None:
        """Link a blob from another repository without sending it."""
        self.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}",
            headers={"Content-Length": "0"},
            expect=(201,),
        )

    def pull(self, repo: str, digest: str) -> int:
        """GET a blob, discarding its bytes; returns how many arrived."""
        _, received = self.request("GET", f"/v2/{repo}/blobs/{digest}")
        return received

    def put_manifest(self, repo: str, reference: str, manifest: bytes) -> str:
        response, _ = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            manifest,
            {"Content-Type": OCI_MANIFEST},
            expect=(201,),
        )
        return response.getheader("Docker-Content-Digest") or ""


class ConnectionPool:
    """One connection per thread, so a thread pool reuses keep-alive connections."""

    def __init__(self, base: str, credentials: Credentials | None) -> None:
        self._base = base
        self._auth = credentials
        self._local = threading.local()
        self._all: list[Connection] = []
        self._lock = threading.Lock()

    def get(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = Connection(self._base, self._auth)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


def small_image(conn: Connection, repo: str, salt: str) -> tuple[bytes, str, str]:
    """Push a tiny config and layer; returns the manifest referencing them and the two digests."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "bench": salt}).encode()
    layer = f"bench layer {salt}".encode()
    config_digest = conn.push_bytes(repo, config)
    layer_digest = conn.push_bytes(repo, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
        },
        separators=(",", ":"),
    ).encode()
    return manifest, config_digest, layer_digest
