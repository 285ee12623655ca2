"""Read an image's layers as tar streams and keep only the files detectors want, as the image shows them.

Each layer is read once, front to back, with `tarfile` over a forward-only stream (`tarstream`, which
bounds what every tar header may cost): nothing is unpacked to disk. Layers are gzip, zstd or plain tar
(told apart by magic bytes). Whiteouts (`.wh.<name>`, opaque `.wh..wh..opq`)
delete what lower layers put there; symlinks are recorded so `ImageFiles.read` resolves them inside the
image. For every wanted file the copies written by successive layers are kept (its history), so a package
can be credited to the earliest layer that installed it.

Untrusted input fails with a `ScanError` subclass: names escaping the root, oversized or malformed headers
and sparse maps, oversized files, decompression past the per-layer or per-image limit, too many members,
symlink loops, corrupt or truncated streams (see `limits.Limits` for every bound).
"""

from __future__ import annotations

import gzip
import io
import re
import stat
import tarfile
import zlib
from collections import deque
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, cast

import zstandard

from dockyard.scanning.errors import LayerFormatError, LimitExceededError, UnsafeLayerError
from dockyard.scanning.limits import Budget, Limits
from dockyard.scanning.tarstream import LayerStream, iter_members

__all__ = [
    "FileCopy",
    "ImageFiles",
    "Layer",
    "Limits",
    "Want",
    "compile_patterns",
    "normalize_member_name",
    "read_layers",
]

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Layer:
    """One layer blob: its digest, a binary stream of its (possibly compressed) tar bytes, and the media
    type the manifest gives it. The compression is told by magic bytes; the media type only informs error
    messages, since registries hold layers whose declared type and content disagree."""

    digest: str
    stream: IO[bytes]
    media_type: str = ""


@dataclass(frozen=True)
class Want:
    """Files a detector needs: `patterns` are absolute paths or globs (`*` within a name, `**` across
    directories). `max_bytes` caps one file's read below `Limits.max_file_bytes` (text databases need
    less). `extract(stream, size, cap)` turns a matching file's stream into the bytes kept (None: keep
    nothing), reading at most `cap` bytes; without it the whole content is kept, and a file over the cap is
    a `LimitExceededError`. `executables_only` limits it to regular files with an execute bit."""

    name: str
    patterns: tuple[str, ...]
    extract: Callable[[IO[bytes], int, int], bytes | None] | None = None
    executables_only: bool = False
    max_bytes: int | None = None

    def cap(self, limits: Limits) -> int:
        """The most bytes of one file this want may read under `limits`."""
        if self.max_bytes is None:
            return limits.max_file_bytes
        return min(self.max_bytes, limits.max_file_bytes)


@dataclass(frozen=True)
class FileCopy:
    """One layer's copy of a wanted file: the bytes kept for it and where it came from."""

    layer_digest: str
    layer_index: int
    data: bytes


def compile_patterns(patterns: Iterable[str]) -> re.Pattern[str]:
    """One regular expression matching any of the absolute path globs."""
    parts = []
    for pattern in patterns:
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:[^/]+/)*"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        parts.append(regex)
    return re.compile("|".join(f"(?:{p})" for p in parts) or "(?!)")


def normalize_member_name(name: str) -> str:
    """The absolute image path of a tar member name; raises `UnsafeLayerError` if it escapes the root."""
    if name.startswith("/"):
        raise UnsafeLayerError(f"absolute member name {name!r} is outside the image root")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayerError(f"member name {name!r} climbs out of the image root")
    return "/" + "/".join(parts)


class _Prefixed(io.RawIOBase):
    """The source stream with the bytes already read to sniff its magic put back in front."""

    def __init__(self, prefix: bytes, source: IO[bytes]) -> None:
        super().__init__()
        self._prefix = prefix
        self._source = source

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = _CHUNK
        if self._prefix:
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return self._source.read(size)

    def readable(self) -> bool:
        return True


def _decompressed(stream: IO[bytes], limits: Limits) -> tuple[Callable[[int], bytes], str]:
    """A read function over the layer's tar bytes and the compression found by magic bytes."""
    head = stream.read(4)
    source = _Prefixed(head, stream)
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=source, mode="rb").read, "gzip"
    if head.startswith(_ZSTD_MAGIC):
        # The window is memory the decompressor allocates as the frame asks: a hostile frame asks for GiBs.
        decompressor = zstandard.ZstdDecompressor(max_window_size=limits.max_zstd_window_bytes)
        reader = decompressor.stream_reader(cast(IO[bytes], source), read_across_frames=True)
        return reader.read, "zstd"
    return source.read, "uncompressed"


def _describe(layer: Layer, compression: str) -> str:
    declared = f", declared {layer.media_type}" if layer.media_type else ""
    return f"layer {layer.digest} ({compression} by its first bytes{declared})"


def _eligible(want: Want, member: tarfile.TarInfo) -> bool:
    return not want.executables_only or bool(member.mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))


def _keep(
    archive: tarfile.TarFile, member: tarfile.TarInfo, wants: list[Want], path: str, limits: Limits
) -> dict[str, bytes]:
    """What each of `wants` keeps of one member; a stream is read once, so several wants share a copy."""
    stream = archive.extractfile(member)
    if stream is None:
        return {}
    kept: dict[str, bytes] = {}
    if len(wants) > 1 and member.size > limits.max_file_bytes:
        # Too big to share one copy: only the most specific want (not an executables-only sweep) reads it.
        wants = sorted(wants, key=lambda w: w.executables_only)[:1]
    with stream:
        if len(wants) == 1:
            source: IO[bytes] = stream
        else:
            source = io.BytesIO(_read_capped(stream, member.size, limits.max_file_bytes, path))
        for want in wants:
            if len(wants) > 1:
                source.seek(0)
            if want.extract is None:
                data: bytes | None = _read_capped(source, member.size, want.cap(limits), path)
            else:
                data = want.extract(source, member.size, want.cap(limits))
            if data is not None:
                kept[want.name] = data
    return kept


def _read_capped(stream: IO[bytes], size: int, limit: int, path: str) -> bytes:
    if size > limit:
        raise LimitExceededError(f"{path}: {size} bytes, over the {limit}-byte limit for a file read")
    return stream.read()


@dataclass
class _Node:
    """A path in the merged view: a symlink target, or kept copies of a wanted file per want."""

    link: str | None = None
    copies: dict[str, list[FileCopy]] = field(default_factory=dict)


@dataclass(frozen=True)
class _LayerEntry:
    path: str
    link: str | None
    kept: dict[str, bytes]
    is_dir: bool


class ImageFiles:
    """The wanted files of the merged image: current content, per-layer history, symlinks resolved."""

    def __init__(self, nodes: dict[str, _Node], layers: Sequence[str], limits: Limits) -> None:
        self._nodes = nodes
        self.layer_digests = tuple(layers)
        self._limits = limits

    def paths(self, want: str) -> list[str]:
        """Image paths, sorted, of regular files kept for `want` (after whiteouts)."""
        return sorted(p for p, n in self._nodes.items() if n.link is None and n.copies.get(want))

    def history(self, want: str, path: str) -> tuple[FileCopy, ...]:
        """Copies of `path` kept for `want`, oldest first; the last is what the image shows. Symlinks in
        `path` are resolved first; empty if the file is absent."""
        node = self._nodes.get(self.resolve(path))
        if node is None or node.link is not None:
            return ()
        return tuple(node.copies.get(want, ()))

    def read(self, want: str, path: str) -> FileCopy | None:
        """The current copy of `path` (symlinks resolved) kept for `want`, or None."""
        copies = self.history(want, path)
        return copies[-1] if copies else None

    def resolve(self, path: str) -> str:
        """`path` with every symlink in it followed inside the image (`..` stops at the root).

        Raises `LimitExceededError` past `max_symlink_hops` hops, or when the path resolved so far
        grows longer than `max_name_bytes` (symlink targets of 4 KiB each could otherwise make it
        hundreds of kilobytes, and each step cost as much).
        """
        hops = 0
        limit = self._limits.max_name_bytes
        pending = deque(p for p in path.split("/") if p)
        current = ""  # the part resolved so far, "" for the root
        starts: list[int] = []  # where each component of `current` starts, to go back up on ".."
        while pending:
            part = pending.popleft()
            if part == ".":
                continue
            if part == "..":
                if starts:
                    current = current[: starts.pop()]
                continue
            candidate = f"{current}/{part}"
            node = self._nodes.get(candidate)
            if node is None or node.link is None:
                if len(candidate) > limit:
                    raise LimitExceededError(f"{path}: resolves to a path longer than {limit} bytes")
                starts.append(len(current))
                current = candidate
                continue
            hops += 1
            if hops > self._limits.max_symlink_hops:
                raise LimitExceededError(f"{path}: more than {self._limits.max_symlink_hops} symlink hops")
            target = node.link
            if target.startswith("/"):
                current, starts = "", []
            pending.extendleft(reversed([p for p in target.split("/") if p]))
        return current or "/"


def _dirname(path: str) -> str:
    return path.rpartition("/")[0] or "/"


class _Tree:
    """The merged view being built: its nodes by path, and each directory's children that hold nodes,
    so removing a subtree costs what it holds, whatever the rest of the image holds."""

    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}
        self._children: dict[str, set[str]] = {}

    def __contains__(self, path: object) -> bool:
        """Whether `path` is a node or a directory above one."""
        return path in self.nodes or path in self._children

    def add(self, path: str, node: _Node) -> None:
        """Put `node` at `path`, linking it under each directory above it."""
        self.nodes[path] = node
        child = path
        while child != "/":
            parent = _dirname(child)
            siblings = self._children.setdefault(parent, set())
            if child in siblings:
                break
            siblings.add(child)
            child = parent

    def remove(self, top: str, keep_top: bool = False) -> None:
        """Drop everything under `top`, and `top` itself unless `keep_top`."""
        pending = list(self._children.pop(top, ()))
        while pending:
            path = pending.pop()
            self.nodes.pop(path, None)
            pending.extend(self._children.pop(path, ()))
        if not keep_top:
            self.nodes.pop(top, None)
        # Unlink what no longer holds a node from the directories above it.
        path = top
        while path != "/" and path not in self:
            parent = _dirname(path)
            siblings = self._children.get(parent)
            if siblings is None:
                break
            siblings.discard(path)
            if siblings:
                break
            del self._children[parent]
            path = parent


def _read_layer(
    layer: Layer,
    wants: Sequence[tuple[Want, re.Pattern[str]]],
    budget: Budget,
    relevant: Container[str],
) -> tuple[list[_LayerEntry], list[str], list[str]]:
    """The layer's entries that matter, whiteouts and opaque directories, in archive order.

    An entry matters if it is a symlink, a kept file, or replaces a path in `relevant` (the merged view's
    paths and their parent directories); other files are not remembered, so memory follows what is kept.
    """
    entries: list[_LayerEntry] = []
    whiteouts: list[str] = []
    opaque: list[str] = []
    read, compression = _decompressed(layer.stream, budget.limits)
    stream = LayerStream(read, layer.digest, budget)
    try:
        _walk(stream, wants, budget, relevant, entries, whiteouts, opaque)
    except (tarfile.TarError, EOFError, OSError, zlib.error, zstandard.ZstdError) as exc:
        raise LayerFormatError(f"{_describe(layer, compression)}: not a readable tar stream ({exc})") from exc
    except UnicodeError as exc:
        raise LayerFormatError(f"{_describe(layer, compression)}: undecodable member name ({exc})") from exc
    except (ValueError, OverflowError, IndexError) as exc:
        # tarfile's own parsing of numbers and sparse maps in malformed headers.
        raise LayerFormatError(f"{_describe(layer, compression)}: malformed tar header ({exc})") from exc
    return entries, whiteouts, opaque


def _walk(
    stream: LayerStream,
    wants: Sequence[tuple[Want, re.Pattern[str]]],
    budget: Budget,
    relevant: Container[str],
    entries: list[_LayerEntry],
    whiteouts: list[str],
    opaque: list[str],
) -> None:
    """Append the layer's entries that matter, whiteouts and opaque directories to the lists given."""
    limits = budget.limits
    kept_here: dict[str, dict[str, bytes]] = {}
    for archive, member in iter_members(stream):
        path = normalize_member_name(member.name)
        parent, _, base = path.rpartition("/")
        if base == _OPAQUE:
            budget.record(path)
            opaque.append(parent or "/")
            continue
        if base.startswith(_WHITEOUT):
            budget.record(path)
            whiteouts.append(f"{parent}/{base[len(_WHITEOUT) :]}")
            continue
        if member.issym():
            budget.record(path)
            entries.append(_LayerEntry(path, member.linkname, {}, False))
            continue
        if member.isdir():
            if path in relevant:
                budget.record(path)
                entries.append(_LayerEntry(path, None, {}, True))
            continue
        kept: dict[str, bytes] = {}
        if member.islnk():
            # A hard link shares an earlier member's content in this layer, if that was kept.
            kept = dict(kept_here.get(normalize_member_name(member.linkname), {}))
        elif member.isreg():
            matching = [w for w, pattern in wants if pattern.fullmatch(path) and _eligible(w, member)]
            if matching:
                kept = _keep(archive, member, matching, path, limits)
        if kept:
            budget.keep(kept, path)
            kept_here[path] = kept
        if kept or path in relevant:
            if not kept:
                budget.record(path)
            entries.append(_LayerEntry(path, None, kept, False))


def _apply(
    tree: _Tree,
    index: int,
    digest: str,
    entries: list[_LayerEntry],
    whiteouts: list[str],
    opaque: list[str],
) -> None:
    # Whiteouts and opaque markers hide lower layers only; this layer's own entries are added after.
    for top in opaque:
        tree.remove(top, keep_top=True)
    for gone in whiteouts:
        tree.remove(gone)
    for entry in entries:
        node = tree.nodes.get(entry.path)
        if entry.is_dir:
            if node is not None and (node.link is not None or node.copies):
                tree.remove(entry.path)
            continue
        # A file or symlink replaces whatever a lower layer had at this path, including a directory.
        tree.remove(entry.path, keep_top=True)
        if entry.link is not None:
            tree.add(entry.path, _Node(link=entry.link))
            continue
        if not entry.kept:
            tree.remove(entry.path)
            continue
        if node is None or node.link is not None:
            node = _Node()
            tree.add(entry.path, node)
        for want in list(node.copies):
            if want not in entry.kept:
                del node.copies[want]
        for want, data in entry.kept.items():
            node.copies.setdefault(want, []).append(FileCopy(digest, index, data))


def read_layers(layers: Iterable[Layer], wants: Sequence[Want], limits: Limits | None = None) -> ImageFiles:
    """Read `layers` (bottom first) and return the wanted files of the merged image."""
    limits = limits or Limits()
    compiled = [(want, compile_patterns(want.patterns)) for want in wants]
    budget = Budget(limits)
    tree = _Tree()
    digests: list[str] = []
    for index, layer in enumerate(layers):
        entries, whiteouts, opaque = _read_layer(layer, compiled, budget, tree)
        _apply(tree, index, layer.digest, entries, whiteouts, opaque)
        digests.append(layer.digest)
    return ImageFiles(tree.nodes, digests, limits)
