"""Version ordering per package ecosystem, as advisories for that ecosystem define it.

`parse_version(ecosystem, text)` gives a `Version` that orders against versions of the same ecosystem;
`compare_versions` is the three-way form. Ecosystem names are OSV's (`Debian:12`, `Alpine:v3.19`, `PyPI`,
...); only the part before `:` decides the rules.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion as _PepInvalid
from packaging.version import Version as _PepVersion
from univers.debian import compare_version_objects as _deb_compare
from univers.versions import DebianVersion, MavenVersion, RpmVersion, SemverVersion
from univers.versions import InvalidVersion as _UniversInvalid

__all__ = ["InvalidVersionError", "Version", "base_ecosystem", "compare_versions", "parse_version"]


class InvalidVersionError(ValueError):
    """A version string that the ecosystem's rules cannot order."""


# Distributions whose packages are RPMs; OSV names them by vendor.
_RPM_ECOSYSTEMS = frozenset(
    {"Red Hat", "Rocky Linux", "AlmaLinux", "openSUSE", "SUSE", "Mageia", "Fedora", "Oracle Linux", "RPM"}
)


def base_ecosystem(ecosystem: str) -> str:
    """The ecosystem without its release suffix: `Debian:12` -> `Debian`, `Alpine:v3.19` -> `Alpine`."""
    return ecosystem.split(":", 1)[0]


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A parsed version; orders only against versions parsed with the same rules."""

    rules: str
    text: str
    key: Any = field(repr=False)

    def _check(self, other: object) -> Version:
        if not isinstance(other, Version):
            raise TypeError(f"cannot compare Version with {type(other).__name__}")
        if other.rules != self.rules:
            raise TypeError(f"cannot compare {self.rules} version with {other.rules} version")
        return other

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.rules == other.rules and bool(self.key == other.key)

    def __lt__(self, other: object) -> bool:
        return bool(self.key < self._check(other).key)

    def __hash__(self) -> int:
        # Equal versions may be spelt differently (`1.0` and `1.0.0` in PEP 440), so the text cannot count.
        return hash(self.rules)

    def __str__(self) -> str:
        return self.text


def _rules(ecosystem: str) -> str:
    base = base_ecosystem(ecosystem)
    if base in ("Debian", "Ubuntu"):
        return "deb"
    if base in _RPM_ECOSYSTEMS:
        return "rpm"
    if base in ("Alpine", "Wolfi", "Chainguard"):
        return "apk"
    if base == "PyPI":
        return "pep440"
    if base == "Go":
        return "go"
    if base == "Maven":
        return "maven"
    # npm, crates.io, and OSV's SEMVER range type.
    return "semver"


def parse_version(ecosystem: str, text: str) -> Version:
    """Parse `text` with the version rules of `ecosystem`; raises `InvalidVersionError` if it cannot."""
    version = _parse(_rules(ecosystem), text)
    if version is None:
        raise InvalidVersionError(f"not a valid {ecosystem} version: {text!r}")
    return version


# Matching parses the same few versions (installed ones, range events) over and over.
@functools.lru_cache(maxsize=1 << 16)
def _parse(rules: str, text: str) -> Version | None:
    try:
        return Version(rules, text, _PARSERS[rules](text.strip()))
    except (_UniversInvalid, _PepInvalid, ValueError, TypeError, AttributeError):
        return None


def compare_versions(ecosystem: str, a: str, b: str) -> int:
    """-1, 0 or 1 as `a` sorts before, equal to or after `b` in `ecosystem`."""
    va, vb = parse_version(ecosystem, a), parse_version(ecosystem, b)
    return (va > vb) - (va < vb)


_DEB_KEY = functools.cmp_to_key(_deb_compare)


def _deb(text: str) -> object:
    # univers' DebianVersion equality compares strings (`1.01` != `1.1`); its comparator does not.
    return _DEB_KEY(DebianVersion(text).value)


def _rpm(text: str) -> object:
    if not text:
        raise ValueError(text)
    return RpmVersion(text)


def _semver(text: str) -> object:
    return SemverVersion(text)


def _go(text: str) -> object:
    # Go module versions are semver with a `v`; `+incompatible` is build metadata and does not order.
    text = text.removeprefix("v").removesuffix("+incompatible")
    return SemverVersion(text)


def _maven(text: str) -> object:
    if not text:
        raise ValueError(text)
    return MavenVersion(text)


def _pep440(text: str) -> object:
    return _PepVersion(text)


# apk-tools token classes, in ascending order. At the first position where two versions differ in kind,
# a pre-release suffix sorts before the end of a version, the end before `-rN`, `-rN` before a
# post-release suffix, that before a letter, and a letter before more digits.
_PRE, _END, _REV, _POST, _LETTER, _DIGIT = range(6)
_APK_SUFFIXES = {
    "alpha": (_PRE, 0),
    "beta": (_PRE, 1),
    "pre": (_PRE, 2),
    "rc": (_PRE, 3),
    "cvs": (_POST, 0),
    "svn": (_POST, 1),
    "git": (_POST, 2),
    "hg": (_POST, 3),
    "p": (_POST, 4),
}
_APK_RE = re.compile(
    r"(?P<digits>\d+(?:\.\d+)*)(?P<letter>[a-z]?)(?P<suffixes>(?:_[a-z]+\d*)*)(?:~[0-9a-f]+)?(?:-r(?P<rev>\d+))?"
)
_APK_SUFFIX_RE = re.compile(r"_([a-z]+)(\d*)")


def _apk(text: str) -> tuple[tuple[int, ...], ...]:
    match = _APK_RE.fullmatch(text)
    if match is None:
        raise ValueError(text)
    tokens: list[tuple[int, ...]] = [(_DIGIT, int(part)) for part in match["digits"].split(".")]
    if match["letter"]:
        tokens.append((_LETTER, ord(match["letter"])))
    for name, number in _APK_SUFFIX_RE.findall(match["suffixes"]):
        if name not in _APK_SUFFIXES:
            raise ValueError(text)
        kind, rank = _APK_SUFFIXES[name]
        tokens.append((kind, rank, int(number or 0)))
    if match["rev"] is not None:
        tokens.append((_REV, int(match["rev"])))
    tokens.append((_END,))
    return tuple(tokens)


_PARSERS = {
    "deb": _deb,
    "rpm": _rpm,
    "apk": _apk,
    "pep440": _pep440,
    "go": _go,
    "maven": _maven,
    "semver": _semver,
}
