"""Go build info: the inline (Go 1.18+) layout, module lines and `=>` replacements, stdlib versions."""

from __future__ import annotations

import io
import struct

import pytest

from dockyard.scanning.detect.golang import (
    GoBinaryDetector,
    extract_buildinfo,
    parse_buildinfo,
    stdlib_version,
)

SENTINEL = b"0123456789abcdef"
CAP = 64 * 1024 * 1024


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _binary(go_version: str, modinfo: str, padding: int = 5000) -> bytes:
    """An ELF-looking file with an inline build-info blob at a 16-byte aligned offset."""
    header = b"\xff Go buildinf:" + bytes([8, 0x2]) + b"\0" * 16
    body = SENTINEL + modinfo.encode() + SENTINEL
    blob = header + _uvarint(len(go_version)) + go_version.encode() + _uvarint(len(body)) + body
    prefix = b"\x7fELF" + b"\0" * (padding - 4)
    # An unaligned copy of the magic first, as in binaries that embed the build-info reader.
    prefix = prefix[:101] + b"\xff Go buildinf:" + prefix[101 + 14 :]
    return prefix + b"\0" * (-len(prefix) % 16) + blob + b"\0" * 64


MODINFO = (
    "path\texample.com/app/cmd/app\n"
    "mod\texample.com/app\tv1.4.0\th1:abc=\n"
    "dep\tgolang.org/x/text\tv0.3.6\th1:def=\n"
    "dep\tgithub.com/old/lib\tv1.0.0\th1:ghi=\n"
    "=>\tgithub.com/fork/lib\tv1.0.1-0.20230101000000-abcdef123456\th1:jkl=\n"
    "dep\texample.com/local\tv0.0.0\n"
    "=>\t../local\t\n"
    "build\t-compiler=gc\n"
)


def test_modules_and_replacements() -> None:
    data = extract_buildinfo(io.BytesIO(_binary("go1.21.3", MODINFO)), 0, CAP)
    assert data is not None
    info = parse_buildinfo(data)
    assert info is not None and info[0] == "go1.21.3"
    packages = GoBinaryDetector().parse("/app", data, "sha256:l", None)
    assert [(p.name, p.version) for p in packages] == [
        ("stdlib", "1.21.3"),
        ("example.com/app", "v1.4.0"),
        ("golang.org/x/text", "v0.3.6"),
        ("github.com/fork/lib", "v1.0.1-0.20230101000000-abcdef123456"),
    ]
    assert packages[2].purl == "pkg:golang/golang.org/x/text@v0.3.6"


def test_devel_main_module_is_skipped_and_non_go_elf_ignored() -> None:
    data = extract_buildinfo(
        io.BytesIO(_binary("go1.22.0", "path\tx\nmod\tx\t(devel)\t\n", padding=3_000_000)), 0, CAP
    )
    assert data is not None
    assert [p.name for p in GoBinaryDetector().parse("/x", data, "sha256:l", None)] == ["stdlib"]
    assert extract_buildinfo(io.BytesIO(b"\x7fELF" + b"\0" * 10_000), 0, CAP) is None
    assert extract_buildinfo(io.BytesIO(b"#!/bin/sh\n"), 0, CAP) is None
    assert GoBinaryDetector().parse("/x", b"\xff Go buildinf:\x08\x00" + b"\0" * 40, "sha256:l", None) == []


@pytest.mark.parametrize(
    ("go", "semver"),
    [
        ("go1.21.3", "1.21.3"),
        ("go1.21", "1.21.0"),
        ("go1.21rc2", "1.21.0-rc.2"),
        ("go1.9beta1", "1.9.0-beta.1"),
    ],
)
def test_stdlib_versions(go: str, semver: str) -> None:
    assert stdlib_version(go) == semver
    assert stdlib_version("devel +abc") is None


def _elf_with_pointer_buildinfo(
    go_version: str, modinfo: str, *, is64: bool = True, big: bool = False
) -> bytes:
    """A minimal ELF with one PT_LOAD segment (file offset 0 at 0x400000) holding pre-1.18 build info:
    the header points at two Go string headers (pointer, length) which point at the strings."""
    order = ">" if big else "<"
    ptr = "Q" if is64 else "I"
    size = 8 if is64 else 4
    base = 0x400000
    image = bytearray(0x2000)
    image[:4] = b"\x7fELF"
    image[4], image[5] = (2 if is64 else 1), (2 if big else 1)
    if is64:
        struct.pack_into(order + "Q", image, 0x20, 0x40)
        struct.pack_into(order + "HH", image, 0x36, 56, 1)
        struct.pack_into(order + "IIQQQQ", image, 0x40, 1, 5, 0, base, base, len(image))
    else:
        struct.pack_into(order + "I", image, 0x1C, 0x34)
        struct.pack_into(order + "HH", image, 0x2A, 32, 1)
        struct.pack_into(order + "IIIII", image, 0x34, 1, 0, base, base, len(image))
    strings = [go_version.encode(), SENTINEL + modinfo.encode() + SENTINEL]
    headers_at, data_at = 0x200, 0x400
    for i, text in enumerate(strings):
        image[data_at : data_at + len(text)] = text
        struct.pack_into(order + ptr + ptr, image, headers_at + 2 * size * i, base + data_at, len(text))
        data_at += len(text) + 16
    magic_at = 0x1000
    image[magic_at : magic_at + 14] = b"\xff Go buildinf:"
    image[magic_at + 14], image[magic_at + 15] = size, (1 if big else 0)
    struct.pack_into(order + ptr, image, magic_at + 16, base + headers_at)
    struct.pack_into(order + ptr, image, magic_at + 16 + size, base + headers_at + 2 * size)
    return bytes(image)


@pytest.mark.parametrize(("is64", "big"), [(True, False), (False, False), (True, True)])
def test_pre_118_pointer_layout(is64: bool, big: bool) -> None:
    binary = _elf_with_pointer_buildinfo(
        "go1.16.15", "path\tx\nmod\tx\tv0.1.0\t\ndep\tgolang.org/x/net\tv0.0.1\t\n", is64=is64, big=big
    )
    data = extract_buildinfo(io.BytesIO(binary), len(binary), CAP)
    assert data is not None
    packages = GoBinaryDetector().parse("/old", data, "sha256:l", None)
    assert [(p.name, p.version) for p in packages] == [
        ("stdlib", "1.16.15"),
        ("x", "v0.1.0"),
        ("golang.org/x/net", "v0.0.1"),
    ]
    # Pointers can only be followed in a binary held whole; one over the cap yields nothing.
    assert extract_buildinfo(io.BytesIO(binary), len(binary), len(binary) - 1) is None


def test_pre_118_pointers_outside_the_file_are_ignored() -> None:
    binary = bytearray(_elf_with_pointer_buildinfo("go1.16.15", "path\tx\n"))
    struct.pack_into("<Q", binary, 0x1000 + 16, 0xDEADBEEF)
    assert extract_buildinfo(io.BytesIO(bytes(binary)), len(binary), CAP) is None
