"""Version ordering per ecosystem; Debian cases are checked against the real `dpkg --compare-versions`."""

from __future__ import annotations

import subprocess

import pytest

from dockyard.scanning.versions import InvalidVersionError, compare_versions, parse_version

DEBIAN_PAIRS = [
    ("3.0.11-1~deb12u1", "3.0.11-1"),
    ("1.2.14-1", "1:1.2.13.dfsg-1"),
    ("1.0~rc1", "1.0"),
    ("1.0~~", "1.0~"),
    ("1.0-0", "1.0-1"),
    ("1.0-1", "1.0-1+b1"),
    ("2.36-9", "2.36-9+deb12u4"),
    ("1.0a", "1.0b"),
    ("1.9", "1.10"),
    ("0:1.0", "1.0-1"),
    ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12"),
    ("1.2.3.4", "1.2.3.a"),
]


def _dpkg_says_less(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0


@pytest.mark.parametrize(("lower", "higher"), DEBIAN_PAIRS)
def test_debian_order_agrees_with_dpkg(lower: str, higher: str) -> None:
    expected = -1 if _dpkg_says_less(lower, higher) else (1 if _dpkg_says_less(higher, lower) else 0)
    assert compare_versions("Debian:12", lower, higher) == expected
    assert compare_versions("Ubuntu:22.04", higher, lower) == -expected
    # The pairs are written lower-first; dpkg confirms it, so the table itself is right.
    assert expected == -1


@pytest.mark.parametrize(("a", "b"), [("1.0", "1.0-0"), ("0:2.1-3", "2.1-3"), ("1.01", "1.1")])
def test_debian_equal_agrees_with_dpkg(a: str, b: str) -> None:
    equal = subprocess.run(["dpkg", "--compare-versions", a, "eq", b], check=False).returncode == 0
    assert equal
    assert compare_versions("Debian:12", a, b) == 0


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0~rc1", "1.0"),
        ("1.0", "1.0^git1"),
        ("2.0-1", "1:1.0-1"),
        ("1.0a", "1.0.1"),
        ("1.0-1.el9", "1.0-2.el9"),
        ("1.9", "1.10"),
        ("1.0^", "1.0.1"),
    ],
)
def test_rpm_order(lower: str, higher: str) -> None:
    assert compare_versions("Rocky Linux:9", lower, higher) == -1
    assert compare_versions("Red Hat", higher, lower) == 1


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.2.3_alpha", "1.2.3_beta"),
        ("1.2.3_beta2", "1.2.3_pre"),
        ("1.2.3_pre", "1.2.3_rc1"),
        ("1.2.3_rc1", "1.2.3"),
        ("1.2.3", "1.2.3-r1"),
        ("1.2.3-r4", "1.2.3_p1-r0"),
        ("1.2.3_cvs", "1.2.3_svn"),
        ("1.2.3_git20240101", "1.2.3_hg"),
        ("1.2.3_hg", "1.2.3_p"),
        ("1.2.3_p1", "1.2.3a"),
        ("1.2.3a", "1.2.3b"),
        ("1.2.3z", "1.2.3.1"),
        ("1.2.9", "1.2.10"),
        ("3.0.11-r0", "3.0.11-r10"),
        ("1.36.1-r5", "1.36.1-r15"),
        ("1.2_rc1-r9", "1.2-r0"),
    ],
)
def test_alpine_order(lower: str, higher: str) -> None:
    assert compare_versions("Alpine:v3.19", lower, higher) == -1
    assert compare_versions("Alpine:v3.19", higher, lower) == 1


def test_alpine_equal_and_invalid() -> None:
    assert compare_versions("Alpine:v3.20", "1.2.3-r0", "1.2.3-r0") == 0
    assert parse_version("Alpine", "1.2.3~abc12-r1") == parse_version("Alpine", "1.2.3-r1")
    for bad in ("", "abc", "1.2.3_bogus", "1.2.3-r"):
        with pytest.raises(InvalidVersionError):
            parse_version("Alpine:v3.19", bad)


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0.dev1", "1.0a1"),
        ("1.0a1", "1.0rc1"),
        ("1.0rc1", "1.0"),
        ("1.0", "1.0.post1"),
        ("1.0", "1!0.1"),
        ("2.9", "2.10"),
    ],
)
def test_pep440_order(lower: str, higher: str) -> None:
    assert compare_versions("PyPI", lower, higher) == -1
    assert compare_versions("PyPI", "1.0", "1.0.0") == 0


@pytest.mark.parametrize(
    ("ecosystem", "lower", "higher"),
    [
        ("npm", "1.0.0-rc.1", "1.0.0"),
        ("npm", "1.0.0-alpha", "1.0.0-alpha.1"),
        ("npm", "1.9.0", "1.10.0"),
        ("Go", "v0.0.0-20200101000000-abcdef123456", "v0.1.0"),
        ("Go", "v1.2.3", "v1.2.4-0.20210101000000-abcdef123456"),
        ("Go", "1.21.0-0", "1.21.0"),
        ("Go", "v2.0.0+incompatible", "v2.0.1"),
        ("Maven", "1.0-alpha-1", "1.0"),
        ("Maven", "1.0-SNAPSHOT", "1.0"),
        ("Maven", "1.0", "1.0-sp1"),
        ("Maven", "2.9.10", "2.9.10.1"),
        ("Maven", "1.0-rc1", "1.0"),
    ],
)
def test_semver_go_maven_order(ecosystem: str, lower: str, higher: str) -> None:
    assert compare_versions(ecosystem, lower, higher) == -1
    assert compare_versions(ecosystem, higher, lower) == 1


def test_versions_of_different_rules_do_not_compare() -> None:
    with pytest.raises(TypeError):
        _ = parse_version("PyPI", "1.0") < parse_version("npm", "1.0.0")
    with pytest.raises(InvalidVersionError):
        parse_version("PyPI", "not a version")


def test_equal_versions_hash_alike() -> None:
    assert len({parse_version("PyPI", "1.0"), parse_version("PyPI", "1.0.0")}) == 1
    assert len({parse_version("Debian:12", "1.01"), parse_version("Debian:12", "1.1")}) == 1
    assert parse_version("PyPI", "1.0") != parse_version("npm", "1.0.0")
