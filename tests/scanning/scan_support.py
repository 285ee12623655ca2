"""Helpers of the scanning tests: layer blobs built in memory with `tarfile`, where the OSV snapshots are."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import zstandard

from dockyard.scanning.layers import Layer

# Beside the repository (`/work/main` → `/work/shared`), or further up for a worktree (`/work/wt/<name>`).
OSV_DIR = next(
    (
        p / "shared" / "data" / "osv"
        for p in Path(__file__).resolve().parents[3:]
        if (p / "shared" / "data" / "osv").is_dir()
    ),
    Path(__file__).resolve().parents[3] / "shared" / "data" / "osv",
)


def tar_bytes(entries: list[tuple[str, ...] | tuple[str, str, bytes]], compression: str = "gzip") -> bytes:
    """A layer blob built with `tarfile`: entries are ("file", path, data[, mode]), ("dir", path),
    ("symlink", path, target), ("hardlink", path, target), ("whiteout", path), ("opaque", dir)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            kind, path = str(entry[0]), str(entry[1])
            if kind == "whiteout":
                parent, _, base = path.rpartition("/")
                kind, path, entry = "file", f"{parent}/.wh.{base}".lstrip("/"), ("file", "", b"")
            elif kind == "opaque":
                kind, path, entry = "file", f"{path.strip('/')}/.wh..wh..opq", ("file", "", b"")
            info = tarfile.TarInfo(path.lstrip("/"))
            data = b""
            if kind == "file":
                data = entry[2] if isinstance(entry[2], bytes) else str(entry[2]).encode()
                info.size = len(data)
                info.mode = int(str(entry[3]), 8) if len(entry) > 3 else 0o644
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(entry[2])
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(entry[2]).lstrip("/")
            archive.addfile(info, io.BytesIO(data) if data else None)
    raw = buffer.getvalue()
    if compression == "gzip":
        return gzip.compress(raw, mtime=0)  # reproducible: the same entries give the same digest
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(raw)
    return raw


def layer(entries: list[tuple[str, ...] | tuple[str, str, bytes]], compression: str = "gzip") -> Layer:
    """A `Layer` over `tar_bytes(entries)`, its digest the sha256 of the blob."""
    blob = tar_bytes(entries, compression)
    return Layer("sha256:" + hashlib.sha256(blob).hexdigest(), io.BytesIO(blob))
