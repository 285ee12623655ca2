"""Go binaries: the toolchain version and modules recorded in the build info (`\\xff Go buildinf:`).

Go 1.18+ puts the version and module strings inline after the 32-byte header (flag bit 2). Older
binaries store pointers to Go string headers instead; those are followed through the ELF program headers
when the binary is small enough to hold whole (the file cap), and rewritten to the inline layout, so
the kept bytes always have one form.
"""

from __future__ import annotations

import re
import struct
from typing import IO

from dockyard.scanning.layers import Want
from dockyard.scanning.packages import OsIdentity, Package

MAGIC = b"\xff Go buildinf:"
_HEADER = 32
_INLINE = 0x2
# Enough for the version and a large module list; kept per binary instead of the binary.
_KEEP = 1 << 20
_CHUNK = 1 << 20
_GO_VERSION = re.compile(r"go(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(rc|beta)(\d+))?")


def _aligned_magic(data: bytearray, start: int, base: int) -> int:
    at = data.find(MAGIC, start)
    while at >= 0 and (base + at) % 16:
        at = data.find(MAGIC, at + 1)
    return at


def extract_buildinfo(stream: IO[bytes], size: int, cap: int) -> bytes | None:
    """The build info of an ELF executable in the inline layout (at most 1 MiB), else None.

    Go 1.18+ build info is found by streaming through binaries of any size. Older binaries need the whole
    file to follow pointers, so they are read only up to `cap` bytes.

    Like Go's own reader, only a 16-byte aligned magic counts: the string also occurs unaligned as a
    constant in binaries that link the build-info reader (the `go` command itself).
    """
    head = stream.read(4)
    if head != b"\x7fELF":
        return None
    retain = size <= cap
    data, base, searched = bytearray(head), 0, 0
    while chunk := stream.read(_CHUNK):
        data += chunk
        at = _aligned_magic(data, max(searched - len(MAGIC) + 1, 0), base)
        if at < 0:
            if not retain:
                keep = len(MAGIC) - 1
                base += len(data) - keep
                del data[:-keep]
            searched = len(data)
            continue
        while len(data) < at + _HEADER and (more := stream.read(_CHUNK)):
            data += more
        if len(data) >= at + _HEADER and data[at + 15] & _INLINE:
            while len(data) < at + _KEEP and (more := stream.read(_CHUNK)):
                data += more
            return bytes(data[at : at + _KEEP])
        if not retain:
            return None
        while more := stream.read(_CHUNK):
            data += more
        return _pointer_layout(bytes(data), at)
    return None


def _load_segments(elf: bytes) -> tuple[str, list[tuple[int, int, int]]]:
    """The byte order and (virtual address, file offset, size) of each PT_LOAD segment."""
    is64, order = elf[4] == 2, "<" if elf[5] == 1 else ">"
    if is64:
        phoff = struct.unpack_from(order + "Q", elf, 0x20)[0]
        entsize, count = struct.unpack_from(order + "HH", elf, 0x36)
    else:
        phoff = struct.unpack_from(order + "I", elf, 0x1C)[0]
        entsize, count = struct.unpack_from(order + "HH", elf, 0x2A)
    segments = []
    for i in range(min(count, 256)):
        at = phoff + i * entsize
        if is64:
            kind, _, offset, vaddr, _, filesz = struct.unpack_from(order + "IIQQQQ", elf, at)
        else:
            kind, offset, vaddr, _, filesz = struct.unpack_from(order + "IIIII", elf, at)
        if kind == 1:
            segments.append((vaddr, offset, filesz))
    return order, segments


def _pointer_layout(elf: bytes, at: int) -> bytes | None:
    """The pre-1.18 build info (pointers to Go strings) rewritten in the inline layout, or None."""
    try:
        order, segments = _load_segments(elf)
        ptr_size = elf[at + 14]
        if ptr_size not in (4, 8):
            return None
        pointer = order + ("Q" if ptr_size == 8 else "I")

        def read(vaddr: int, length: int) -> bytes:
            for start, offset, filesz in segments:
                if start <= vaddr and vaddr + length <= start + filesz:
                    return elf[offset + vaddr - start : offset + vaddr - start + length]
            raise ValueError(f"address {vaddr:#x} is not in a loaded segment")

        strings = []
        for slot in (at + 16, at + 16 + ptr_size):
            header = read(struct.unpack_from(pointer, elf, slot)[0], 2 * ptr_size)
            data_ptr, length = struct.unpack_from(order + ("QQ" if ptr_size == 8 else "II"), header)
            if length > _KEEP:
                return None
            strings.append(read(data_ptr, length) if length else b"")
    except (struct.error, ValueError, IndexError):
        return None
    body = b"".join(_uvarint(len(text)) + text for text in strings)
    return MAGIC + bytes([ptr_size, _INLINE]) + b"\0" * (_HEADER - len(MAGIC) - 2) + body


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _varint_string(data: bytes, offset: int) -> tuple[str, int] | None:
    length, shift = 0, 0
    while offset < len(data) and shift < 64:
        byte = data[offset]
        offset += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            end = offset + length
            if end > len(data):
                return None
            return data[offset:end].decode("utf-8", "replace"), end
    return None


def parse_buildinfo(data: bytes) -> tuple[str, str] | None:
    """(Go version, module info text) from bytes starting at the magic; None if not the inline layout."""
    if not data.startswith(MAGIC) or len(data) < _HEADER or not data[15] & _INLINE:
        return None
    version = _varint_string(data, _HEADER)
    if version is None:
        return None
    modinfo = _varint_string(data, version[1])
    if modinfo is None:
        return None
    text = modinfo[0]
    # The module text sits between two 16-byte sentinels.
    if len(text) >= 33 and text[-17] == "\n":
        text = text[16:-16]
    return version[0], text


def stdlib_version(go_version: str) -> str | None:
    """`go1.21.3` -> `1.21.3`, `go1.21` -> `1.21.0`, `go1.21rc2` -> `1.21.0-rc.2` (OSV's semver form)."""
    match = _GO_VERSION.match(go_version.strip())
    if match is None:
        return None
    major, minor, patch, pre, pre_number = match.groups()
    version = f"{major}.{minor or 0}.{patch or 0}"
    return f"{version}-{pre}.{pre_number}" if pre else version


class GoBinaryDetector:
    """The standard library, the main module and its dependencies (after `=>` replacements) of each Go
    executable."""

    want = Want("go-binary", ("/**",), extract=extract_buildinfo, executables_only=True)

    def parse(self, path: str, data: bytes, layer_digest: str, os: OsIdentity | None) -> list[Package]:
        """Go packages compiled into one executable."""
        info = parse_buildinfo(data)
        if info is None:
            return []
        go_version, modinfo = info
        packages = []
        stdlib = stdlib_version(go_version)
        if stdlib:
            packages.append(self._package("stdlib", stdlib, path, layer_digest))
        modules: list[tuple[str, str]] = []
        for line in modinfo.splitlines():
            fields = line.split("\t")
            if fields[0] in ("mod", "dep") and len(fields) >= 3:
                modules.append((fields[1], fields[2]))
            elif fields[0] == "=>" and modules:
                # A replacement with a version is another module; one without is a local directory.
                modules[-1] = (fields[1], fields[2]) if len(fields) >= 3 and fields[2] else ("", "")
        for module, version in modules:
            if module and version and version != "(devel)":
                packages.append(self._package(module, version, path, layer_digest))
        return packages

    @staticmethod
    def _package(name: str, version: str, path: str, layer_digest: str) -> Package:
        return Package("Go", name, version, name, version, path, layer_digest, f"pkg:golang/{name}@{version}")
