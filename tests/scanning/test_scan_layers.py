"""Reading layers as tar streams: compression, whiteouts, symlinks, history, and hostile input."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import tracemalloc
from typing import IO

import pytest
import zstandard
from scan_support import layer, tar_bytes

from dockyard.scanning.errors import LayerFormatError, LimitExceededError, ScanError, UnsafeLayerError
from dockyard.scanning.layers import Layer, Limits, Want, compile_patterns, read_layers

STATUS = "/var/lib/dpkg/status"
WANTS = [
    Want(
        "db", (STATUS, "/etc/os-release", "/usr/lib/os-release", "/usr/**/site-packages/*.dist-info/METADATA")
    ),
]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "plain"])
def test_each_compression_reads_the_same(compression: str) -> None:
    files = read_layers(
        [layer([("dir", "/var"), ("file", STATUS, b"hello"), ("file", "/x", b"no")], compression)], WANTS
    )
    copy = files.read("db", STATUS)
    assert copy is not None and copy.data == b"hello"
    assert files.paths("db") == [STATUS]


def test_whiteout_deletes_lower_file_and_history_restarts() -> None:
    base = layer([("file", STATUS, b"v1")])
    upgrade = layer([("file", STATUS, b"v2")], "zstd")
    deleted = layer([("whiteout", STATUS)], "plain")
    files = read_layers([base, upgrade], WANTS)
    assert [c.data for c in files.history("db", STATUS)] == [b"v1", b"v2"]
    assert [c.layer_digest for c in files.history("db", STATUS)] == [base.digest, upgrade.digest]
    assert read_layers([layer([("file", STATUS, b"v1")]), deleted], WANTS).read("db", STATUS) is None
    again = layer([("file", STATUS, b"v3")])
    files = read_layers([layer([("file", STATUS, b"v1")]), layer([("whiteout", STATUS)]), again], WANTS)
    assert [c.layer_digest for c in files.history("db", STATUS)] == [again.digest]


def test_opaque_directory_hides_lower_content_but_not_its_own() -> None:
    meta = "/usr/lib/python3/site-packages/a-1.dist-info/METADATA"
    other = "/usr/lib/python3/site-packages/b-1.dist-info/METADATA"
    lower = layer([("file", meta, b"a"), ("file", STATUS, b"s")])
    upper = layer([("opaque", "/usr/lib/python3/site-packages"), ("file", other, b"b")])
    files = read_layers([lower, upper], WANTS)
    assert files.paths("db") == [other, STATUS]


def test_whiteout_of_a_directory_removes_everything_below() -> None:
    meta = "/usr/lib/python3/site-packages/a-1.dist-info/METADATA"
    files = read_layers([layer([("file", meta, b"a")]), layer([("whiteout", "/usr/lib/python3")])], WANTS)
    assert files.paths("db") == []


def test_file_replaced_by_unwanted_content_or_symlink_is_gone() -> None:
    files = read_layers(
        [layer([("file", "/etc/os-release", b"ID=a")]), layer([("symlink", "/etc/os-release", "nowhere")])],
        WANTS,
    )
    assert files.read("db", "/etc/os-release") is None


def test_symlinks_resolve_inside_the_image() -> None:
    files = read_layers(
        [
            layer([("file", "/usr/lib/os-release", b"ID=debian\n")]),
            layer([("symlink", "/etc/os-release", "../usr/lib/os-release"), ("symlink", "/abs", "/usr/lib")]),
        ],
        WANTS,
    )
    copy = files.read("db", "/etc/os-release")
    assert copy is not None and copy.data == b"ID=debian\n"
    assert files.resolve("/abs/os-release") == "/usr/lib/os-release"
    assert files.resolve("/abs/../../../../etc") == "/etc"


def test_hard_links_share_kept_content() -> None:
    files = read_layers(
        [
            layer(
                [
                    ("file", "/usr/lib/os-release", b"ID=x"),
                    ("hardlink", "/etc/os-release", "/usr/lib/os-release"),
                ]
            )
        ],
        WANTS,
    )
    copy = files.read("db", "/etc/os-release")
    assert copy is not None and copy.data == b"ID=x"


def test_executables_only_and_extractors() -> None:
    caps: list[int] = []

    def head(stream: IO[bytes], size: int, cap: int) -> bytes:
        caps.append(cap)
        return stream.read(2)

    want = Want("bin", ("/**",), extract=head, executables_only=True, max_bytes=1000)
    files = read_layers(
        [layer([("file", "/bin/tool", b"ELFxx", "755"), ("file", "/etc/data", b"ELFyy")])],
        [want],
        Limits(max_file_bytes=5000),
    )
    assert files.paths("bin") == ["/bin/tool"]
    copy = files.read("bin", "/bin/tool")
    assert copy is not None and copy.data == b"EL"
    # The extractor is told the smaller of the want's own cap and the scan's file cap.
    assert caps == [1000]
    assert want.cap(Limits(max_file_bytes=10)) == 10


def test_text_database_cap_is_smaller_than_the_file_cap() -> None:
    db = Want("db", ("/var/lib/db",), max_bytes=100)
    assert read_layers([layer([("file", "/var/lib/db", b"x" * 100)])], [db]).paths("db") == ["/var/lib/db"]
    with pytest.raises(LimitExceededError, match="/var/lib/db: 101 bytes, over the 100-byte limit"):
        read_layers([layer([("file", "/var/lib/db", b"x" * 101)])], [db])


def test_glob_patterns() -> None:
    pattern = compile_patterns(["/a/**/node_modules/*/package.json", "/etc/x"])
    assert pattern.fullmatch("/a/node_modules/left-pad/package.json")
    assert pattern.fullmatch("/a/b/c/node_modules/left-pad/package.json")
    assert not pattern.fullmatch("/a/node_modules/left-pad/lib/package.json")
    assert pattern.fullmatch("/etc/x") and not pattern.fullmatch("/etc/xy")


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("../../etc/passwd", UnsafeLayerError),
        ("/etc/passwd", UnsafeLayerError),
        ("a/../../b", UnsafeLayerError),
    ],
)
def test_hostile_names(name: str, error: type[ScanError]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(error, match="root"):
        read_layers([Layer("sha256:bad", io.BytesIO(buffer.getvalue()))], WANTS)


def test_huge_pax_header_is_refused_before_it_is_read() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("f")
        info.pax_headers = {"comment": "x" * 3_000_000}
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(LimitExceededError, match="extended header"):
        read_layers([Layer("sha256:pax", io.BytesIO(gzip.compress(buffer.getvalue())))], WANTS)


def test_decompression_bomb_is_cut_off_per_layer_and_per_image() -> None:
    bomb = tar_bytes([("file", "/zeros", b"\0" * 5_000_000)], "zstd")
    assert len(bomb) < 10_000
    with pytest.raises(LimitExceededError, match="layer sha256:bomb"):
        read_layers([Layer("sha256:bomb", io.BytesIO(bomb))], WANTS, Limits(max_layer_bytes=1_000_000))
    small = tar_bytes([("file", "/zeros", b"\0" * 600_000)])
    limits = Limits(max_layer_bytes=1_000_000, max_image_bytes=1_000_000)
    with pytest.raises(LimitExceededError, match="image"):
        read_layers(
            [Layer("sha256:a", io.BytesIO(small)), Layer("sha256:b", io.BytesIO(small))], WANTS, limits
        )


def test_wanted_file_over_the_cap() -> None:
    with pytest.raises(LimitExceededError, match="limit for a file"):
        read_layers([layer([("file", STATUS, b"x" * 2000)])], WANTS, Limits(max_file_bytes=1000))


def test_symlink_loop() -> None:
    files = read_layers(
        [layer([("symlink", "/etc/os-release", "/etc/loop"), ("symlink", "/etc/loop", "os-release")])], WANTS
    )
    with pytest.raises(LimitExceededError, match="symlink hops"):
        files.read("db", "/etc/os-release")


@pytest.mark.parametrize(
    "blob",
    [
        tar_bytes([("file", STATUS, b"x" * 5000)], "plain")[:3000],
        tar_bytes([("file", STATUS, b"x" * 5000)], "gzip")[:-30],
        tar_bytes([("file", STATUS, b"x" * 5000)], "zstd")[:-10],
        b"\x1f\x8b" + b"garbage" * 50,
        b"\x28\xb5\x2f\xfd" + b"garbage" * 50,
        b"this is not a tar archive at all" * 40,
        b"",
    ],
    ids=[
        "plain-truncated",
        "gzip-truncated",
        "zstd-truncated",
        "gzip-corrupt",
        "zstd-corrupt",
        "text",
        "empty",
    ],
)
def test_truncated_and_corrupt_streams(blob: bytes) -> None:
    with pytest.raises(LayerFormatError, match="sha256:broken"):
        read_layers([Layer("sha256:broken", io.BytesIO(blob))], WANTS)


def test_zstd_multi_frame() -> None:
    raw = tar_bytes([("file", STATUS, b"two frames")], "plain")
    compressor = zstandard.ZstdCompressor()
    blob = compressor.compress(raw[:1024]) + compressor.compress(raw[1024:])
    copy = read_layers([Layer("sha256:mf", io.BytesIO(blob))], WANTS).read("db", STATUS)
    assert copy is not None and copy.data == b"two frames"


def test_hard_link_escaping_the_root() -> None:
    with pytest.raises(UnsafeLayerError):
        read_layers([layer([("file", "/a", b"x"), ("hardlink", "/b", "../../etc/shadow")])], WANTS)


def test_empty_layer_is_valid() -> None:
    files = read_layers([layer([]), layer([("file", STATUS, b"s")], "plain"), layer([], "zstd")], WANTS)
    assert files.paths("db") == [STATUS]
    assert len(files.layer_digests) == 3


def test_many_symlinks_rewritten_then_whited_out() -> None:
    links = [("symlink", f"/usr/lib/x86_64-linux-gnu/lib{i}.so", f"lib{i}.so.1") for i in range(20_000)]
    files = read_layers([layer(links), layer(links, "plain")], WANTS)
    assert files.resolve("/usr/lib/x86_64-linux-gnu/lib7.so") == "/usr/lib/x86_64-linux-gnu/lib7.so.1"
    gone = read_layers([layer(links), layer([("whiteout", "/usr/lib/x86_64-linux-gnu")])], WANTS)
    assert gone.resolve("/usr/lib/x86_64-linux-gnu/lib7.so") == "/usr/lib/x86_64-linux-gnu/lib7.so"


def test_magic_bytes_decide_the_compression_not_the_media_type() -> None:
    blob = tar_bytes([("file", STATUS, b"zstd inside")], "zstd")
    mislabelled = Layer("sha256:z", io.BytesIO(blob), "application/vnd.oci.image.layer.v1.tar+gzip")
    copy = read_layers([mislabelled], WANTS).read("db", STATUS)
    assert copy is not None and copy.data == b"zstd inside"
    garbage = Layer("sha256:g", io.BytesIO(b"not a tar" * 100), "application/vnd.oci.image.layer.v1.tar+gzip")
    declared = re.escape(
        "(uncompressed by its first bytes, declared application/vnd.oci.image.layer.v1.tar+gzip)"
    )
    with pytest.raises(LayerFormatError, match="sha256:g " + declared):
        read_layers([garbage], WANTS)


def test_memory_follows_what_is_kept_not_the_member_count() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for i in range(20_000):
            info = tarfile.TarInfo(f"usr/share/doc/pkg{i}/copyright")
            info.size = 3
            archive.addfile(info, io.BytesIO(b"abc"))
    blob = gzip.compress(buffer.getvalue(), 1)
    tracemalloc.start()
    try:
        files = read_layers([Layer("sha256:many", io.BytesIO(blob))], WANTS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert files.paths("db") == []
    # 20,000 remembered TarInfo objects alone would take well over 10 MB.
    assert peak < 3_000_000


def test_kept_bytes_and_recorded_entries_are_bounded_per_image() -> None:
    statuses = [layer([("file", STATUS, b"x" * 600)]) for _ in range(3)]
    with pytest.raises(LimitExceededError, match="wanted files of the image hold more than 1500 bytes"):
        read_layers(statuses, WANTS, Limits(max_kept_bytes=1500))
    links = layer([("symlink", f"/l{i}", "/x") for i in range(30)] + [("whiteout", "/gone")])
    assert len(read_layers([links], WANTS, Limits(max_entries=31)).layer_digests) == 1
    links.stream.seek(0)
    with pytest.raises(LimitExceededError, match="more than 30 symlinks, whiteouts and replaced files"):
        read_layers([links], WANTS, Limits(max_entries=30))
