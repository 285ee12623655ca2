"""Go build info: the inline (Go 1.18+) layout, module lines and `=>` replacements, stdlib versions."""

from __future__ import annotations

import io

import pytest

from dockyard.scanning.detect.golang import (
    GoBinaryDetector,
    extract_buildinfo,
    parse_buildinfo,
    stdlib_version,
)

SENTINEL = b"0123456789abcdef"


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
    data = extract_buildinfo(io.BytesIO(_binary("go1.21.3", MODINFO)), 0)
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
        io.BytesIO(_binary("go1.22.0", "path\tx\nmod\tx\t(devel)\t\n", padding=3_000_000)), 0
    )
    assert data is not None
    assert [p.name for p in GoBinaryDetector().parse("/x", data, "sha256:l", None)] == ["stdlib"]
    assert extract_buildinfo(io.BytesIO(b"\x7fELF" + b"\0" * 10_000), 0) is None
    assert extract_buildinfo(io.BytesIO(b"#!/bin/sh\n"), 0) is None
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
