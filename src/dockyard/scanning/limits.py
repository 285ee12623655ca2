"""The bounds on what one scan may read, and the running totals checked against them."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.scanning.errors import LimitExceededError

__all__ = ["Budget", "Limits"]

_KIB = 1024
_MIB = 1024 * _KIB
_GIB = 1024 * _MIB


@dataclass(frozen=True)
class Limits:
    """Bounds on what one scan may read; passing one raises `LimitExceededError`, which fails the image's
    scan with a message naming the layer and the limit.

    Bytes are counted decompressed. `max_kept_bytes` and `max_entries` bound the scan's memory over the
    whole image: what is kept of wanted files (every layer's copy), and the entries recorded besides
    (symlinks, whiteouts, files replacing earlier ones).

    Tar metadata (what Python's `tarfile` reads whole into memory before it returns a member) is bounded
    per member by `max_header_bytes` (every header block, pax record, GNU long name or link and sparse map
    in front of one member's data) and `max_member_headers` (extension headers chained in front of it),
    and per layer by `max_layer_metadata_bytes` (extension headers beyond each member's own block).
    """

    max_file_bytes: int = 64 * _MIB
    max_layer_bytes: int = 8 * _GIB
    max_image_bytes: int = 32 * _GIB
    max_header_bytes: int = 1 * _MIB
    max_member_headers: int = 8
    max_layer_metadata_bytes: int = 256 * _MIB
    max_name_bytes: int = 4096
    max_layer_members: int = 1_000_000
    max_image_members: int = 4_000_000
    max_zstd_window_bytes: int = 128 * _MIB
    max_symlink_hops: int = 40
    max_kept_bytes: int = 512 * _MIB
    max_entries: int = 1_000_000


@dataclass
class Budget:
    """What one image's scan has used so far, checked against `limits` as it grows."""

    limits: Limits
    image_bytes: int = 0
    image_members: int = 0
    kept_bytes: int = 0
    entries: int = 0

    def keep(self, kept: dict[str, bytes], path: str) -> None:
        """Count the bytes kept of one file."""
        self.kept_bytes += sum(len(data) for data in kept.values())
        if self.kept_bytes > self.limits.max_kept_bytes:
            raise LimitExceededError(
                f"{path}: wanted files of the image hold more than {self.limits.max_kept_bytes} bytes"
            )

    def record(self, path: str) -> None:
        """Count one entry remembered besides kept files."""
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise LimitExceededError(
                f"{path}: more than {self.limits.max_entries} symlinks, whiteouts and replaced files"
            )

    def charge(self, n: int, layer_bytes: int, digest: str) -> None:
        """Count `n` decompressed bytes of layer `digest`, which has given `layer_bytes` in all."""
        self.image_bytes += n
        if layer_bytes > self.limits.max_layer_bytes:
            raise LimitExceededError(
                f"layer {digest}: more than {self.limits.max_layer_bytes} bytes once decompressed"
            )
        if self.image_bytes > self.limits.max_image_bytes:
            raise LimitExceededError(
                f"image: more than {self.limits.max_image_bytes} bytes once decompressed"
            )

    def member(self, layer_members: int, digest: str) -> None:
        """Count one tar member of layer `digest`, its `layer_members`th."""
        self.image_members += 1
        if layer_members > self.limits.max_layer_members:
            raise LimitExceededError(f"layer {digest}: more than {self.limits.max_layer_members} members")
        if self.image_members > self.limits.max_image_members:
            raise LimitExceededError(f"image: more than {self.limits.max_image_members} tar members")
