"""The bounded tar reader on legitimate archives (GNU tar's sparse formats, long names, global headers)
and each of its limits with small values; the hostile corpus is in test_hostile_layers.py."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard
from hostile_layers import end, header, member, pax, record
from scan_support import layer, tar_bytes

from dockyard.scanning.errors import LayerFormatError, LimitExceededError
from dockyard.scanning.layers import Layer, Limits, Want, read_layers
from dockyard.scanning.tarstream import check_pax_records

SPARSE = "/srv/data/sparse.bin"
LONG = "/srv/" + "/".join(["a-rather-long-directory-name"] * 12) + "/METADATA"
WANTS = [Want("files", (SPARSE, LONG, "/etc/os-release"))]


def _sparse_tree(root: Path) -> bytes:
    """A tree with a file with holes, a file under a path past 100 characters and a symlink to it;
    returns the sparse file's content."""
    (root / "srv" / "data").mkdir(parents=True)
    with (root / SPARSE.lstrip("/")).open("wb") as out:
        out.write(b"head")
        out.seek(1 << 20)
        out.write(b"middle")
        out.truncate(3 << 20)
    long = root / LONG.lstrip("/")
    long.parent.mkdir(parents=True)
    long.write_text("Name: deep\n")
    (root / "etc").mkdir()
    os.symlink("../" + LONG.lstrip("/"), root / "etc" / "os-release")
    return (root / SPARSE.lstrip("/")).read_bytes()


@pytest.mark.parametrize(
    "options",
    [
        ["--format=gnu", "--sparse"],
        ["--format=posix", "--sparse", "--sparse-version=0.0"],
        ["--format=posix", "--sparse", "--sparse-version=0.1"],
        ["--format=posix", "--sparse", "--sparse-version=1.0"],
        ["--format=posix"],
        ["--format=gnu"],
    ],
    ids=["old-gnu-sparse", "pax-sparse-0.0", "pax-sparse-0.1", "pax-sparse-1.0", "pax", "gnu"],
)
def test_gnu_tar_archives_read_as_written(options: list[str], tmp_path: Path) -> None:
    root = tmp_path / "root"
    expected = _sparse_tree(root)
    archive = tmp_path / "layer.tar"
    command = ["tar", *options, "--numeric-owner", "-C", str(root), "-cf", str(archive), "."]
    subprocess.run(command, check=True, timeout=60)
    blob = archive.read_bytes()
    with tarfile.open(archive) as reader:
        sparse = [m for m in reader.getmembers() if m.name.endswith("sparse.bin")]
    # The sparse formats really hold a sparse map, so the checks on it are exercised.
    assert sparse[0].issparse() == ("--sparse" in options)
    files = read_layers([Layer("sha256:gnu", io.BytesIO(gzip.compress(blob, mtime=0)))], WANTS)
    copy = files.read("files", SPARSE)
    assert copy is not None and copy.data == expected
    deep = files.read("files", "/etc/os-release")
    assert deep is not None and deep.data == b"Name: deep\n"


def test_global_pax_headers_are_ignored_as_runtimes_do() -> None:
    # Docker and containerd ignore global headers; tarfile would rename every member after this one.
    rename = pax(record("path", b"elsewhere") + record("comment", b"c"), b"g")
    tar = rename + member(b"etc/os-release", b"ID=x")
    files = read_layers([Layer("sha256:g", io.BytesIO(tar + end()))], WANTS)
    copy = files.read("files", "/etc/os-release")
    assert copy is not None and copy.data == b"ID=x"


def test_members_per_layer_and_per_image() -> None:
    entries: list[tuple[str, ...] | tuple[str, str, bytes]] = [("file", f"/f{i}", b"") for i in range(4)]
    read_layers([layer(entries)], WANTS, Limits(max_layer_members=4))
    with pytest.raises(LimitExceededError, match="more than 3 members"):
        read_layers([layer(entries)], WANTS, Limits(max_layer_members=3))
    with pytest.raises(LimitExceededError, match="more than 6 tar members"):
        read_layers([layer(entries), layer(entries)], WANTS, Limits(max_image_members=6))


def test_extension_header_bytes_per_layer() -> None:
    # Names past 100 characters each take a pax header: 1 KiB of extension headers per member.
    entries: list[tuple[str, ...] | tuple[str, str, bytes]] = [
        ("file", f"/{'d' * 120}/{i}", b"") for i in range(20)
    ]
    read_layers([layer(entries)], WANTS, Limits(max_layer_metadata_bytes=20 * 1024))
    with pytest.raises(LimitExceededError, match="extension headers"):
        read_layers([layer(entries)], WANTS, Limits(max_layer_metadata_bytes=10 * 1024))


def test_header_bytes_and_chain_per_member() -> None:
    tar = pax(record("comment", b"x" * 3000)) + member(b"etc/os-release", b"ID=x") + end()
    read_layers([Layer("sha256:a", io.BytesIO(tar))], WANTS, Limits(max_header_bytes=5000))
    with pytest.raises(LimitExceededError, match="headers of the member"):
        read_layers([Layer("sha256:a", io.BytesIO(tar))], WANTS, Limits(max_header_bytes=4000))
    chain = pax(record("comment", b"x")) * 3 + member(b"etc/os-release", b"ID=x") + end()
    read_layers([Layer("sha256:b", io.BytesIO(chain))], WANTS, Limits(max_member_headers=3))
    with pytest.raises(LimitExceededError, match="more than 2 extension headers"):
        read_layers([Layer("sha256:b", io.BytesIO(chain))], WANTS, Limits(max_member_headers=2))


def test_names_past_the_limit() -> None:
    entries: list[tuple[str, ...] | tuple[str, str, bytes]] = [("file", "/" + "n" * 300, b"")]
    read_layers([layer(entries)], WANTS, Limits(max_name_bytes=301))
    with pytest.raises(LimitExceededError, match="name is longer than 200 bytes"):
        read_layers([layer(entries)], WANTS, Limits(max_name_bytes=200))
    links: list[tuple[str, ...] | tuple[str, str, bytes]] = [("symlink", "/l", "t" * 300)]
    with pytest.raises(LimitExceededError, match="link name is longer"):
        read_layers([layer(links)], WANTS, Limits(max_name_bytes=200))


def test_zstd_window_past_the_limit() -> None:
    raw = tar_bytes([("file", "/etc/os-release", b"ID=x")], "plain")
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=24, write_content_size=False)
    # Streamed, so the size is unknown and the frame keeps the 16 MiB window it was given.
    compressor = zstandard.ZstdCompressor(compression_params=params).compressobj()
    blob = compressor.compress(raw) + compressor.flush()
    limits = Limits(max_zstd_window_bytes=1 << 24)
    assert read_layers([Layer("sha256:z", io.BytesIO(blob))], WANTS, limits).read("files", "/etc/os-release")
    with pytest.raises(LayerFormatError, match="memory"):
        read_layers([Layer("sha256:z", io.BytesIO(blob))], WANTS, Limits(max_zstd_window_bytes=1 << 20))


def test_a_stream_ending_inside_a_member_is_an_error() -> None:
    tar = header(b"srv/big", 100_000) + b"x" * 2048
    with pytest.raises(LayerFormatError, match="ends inside"):
        read_layers([Layer("sha256:t", io.BytesIO(tar))], WANTS)


@pytest.mark.parametrize(
    "data",
    [
        record("path", b"a") + record("mtime", b"1700000000.123456789"),
        record("SCHILY.xattr.user.x", b"\x00\xff=\n") + b"\x00" * 40,
        b"",
    ],
)
def test_well_formed_pax_records_pass(data: bytes) -> None:
    check_pax_records(data, "here")


@pytest.mark.parametrize(
    "data",
    [
        b"x path=a\n",
        b"-5 path=a\n",
        b"\xd9\xa1\xd9\xa2 path=a\n",  # Arabic-Indic digits are not a length
        b"12 path=abc",
        b"9 =abcde\n",
        b"8 path=a\n",
        record("path", b"a") + b"junk",
        b"1" * 30 + b" path=a\n",
        record("comment", b"1" * 5000),
        b"".join(record(f"k{i}", b"4" * 60) for i in range(6000)),
    ],
)
def test_malformed_or_quadratic_pax_records_are_refused(data: bytes) -> None:
    with pytest.raises(LayerFormatError):
        check_pax_records(data, "here")


def test_many_whiteouts_over_a_large_merged_view_remove_exactly_their_subtrees() -> None:
    # Each removal walks only the subtree it removes (it used to scan the whole view for each one).
    lower: list[tuple[str, ...] | tuple[str, str, bytes]] = [
        *(("symlink", f"/b/{i}", "t") for i in range(5000)),
        *(("symlink", f"/a/x{j}/s", "t") for j in range(500)),
        ("file", "/etc/os-release", b"ID=old"),
    ]
    upper: list[tuple[str, ...] | tuple[str, str, bytes]] = [
        *(("whiteout", f"/a/x{j}") for j in range(0, 500, 2)),
        ("opaque", "/etc"),
        ("file", "/etc/os-release", b"ID=new"),
        ("symlink", "/a/x0/s", "again"),
    ]
    files = read_layers([layer(lower), layer(upper)], WANTS)
    assert files.resolve("/a/x2/s") == "/a/x2/s"  # gone: nothing to follow
    assert files.resolve("/a/x1/s") == "/a/x1/t"
    assert files.resolve("/a/x0/s") == "/a/x0/again"
    assert all(files.resolve(f"/b/{i}") == "/b/t" for i in range(0, 5000, 499))
    copy = files.read("files", "/etc/os-release")
    assert copy is not None and copy.data == b"ID=new"
    assert len(files.history("files", "/etc/os-release")) == 1


def test_symlinks_resolve_up_to_the_path_limit() -> None:
    deep = "/".join(["d"] * 1000)
    files = read_layers(
        [layer([("symlink", "/etc/os-release", f"/{deep}/../../x"), ("symlink", "/x", "y/./z")])], WANTS
    )
    assert files.resolve("/etc/os-release") == f"/{'/'.join(['d'] * 998)}/x"
    assert files.resolve("/x/..") == "/y"
    assert files.resolve("/") == "/"
    # Each target is within the limit; followed one into the other, the path is not.
    chain = [("symlink", "/etc/os-release", "/a/" + "d/" * 300), ("symlink", "/a", "/b/" + "e/" * 300)]
    files = read_layers([layer(chain)], WANTS, Limits(max_name_bytes=1000))
    with pytest.raises(LimitExceededError, match="resolves to a path longer than 1000 bytes"):
        files.resolve("/etc/os-release")
