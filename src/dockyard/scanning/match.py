"""Decide which installed packages OSV advisories affect, with each ecosystem's rules.

`match_packages(packages, os, index)` looks every package up in an `AdvisoryLookup` by (OSV ecosystem,
name) and returns one `Finding` per (advisory, package). OS packages are looked up in the ecosystem of the
image's distribution release (`Debian:12`, `Ubuntu:22.04`, `Alpine:v3.19`); Debian, Ubuntu and Alpine
advisories name source packages, so those match by source name and source version.

Advisories are also keyed by every id they are known by (`ALIAS_ECOSYSTEM`), so a finding whose own
advisory has no severity takes it from another record of the same vulnerability: a GHSA record aliasing
a PYSEC one, or a distribution's record of the same CVE.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError

from dockyard.scanning.osv import Advisory, Affected, Range, Severity
from dockyard.scanning.packages import APK, DEB, RPM, OsIdentity, Package
from dockyard.scanning.versions import InvalidVersionError, Version, base_ecosystem, parse_version

__all__ = [
    "ALIAS_ECOSYSTEM",
    "SEVERITIES",
    "AdvisoryIndex",
    "AdvisoryLookup",
    "Finding",
    "affected_by",
    "index_keys",
    "match_packages",
    "normalize_name",
    "osv_ecosystems",
    "severity_of",
    "summary_of",
    "vulnerability_ids",
]

# Severity labels, most severe first.
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")

# Vendor words for severity in `database_specific.severity` and Ubuntu priorities, onto our labels.
_LABELS = {
    "critical": "CRITICAL",
    "high": "HIGH",
    "important": "HIGH",
    "medium": "MEDIUM",
    "moderate": "MEDIUM",
    "low": "LOW",
    "negligible": "LOW",
    "unimportant": "LOW",
}

# The pseudo-ecosystem under which advisories are keyed by each id they are known by. OSV requires a
# non-empty ecosystem, so no package key can collide with it.
ALIAS_ECOSYSTEM = ""
# Ids per advisory keyed and looked up that way; real records list a handful.
_MAX_IDS = 32
_MAX_ID_CHARS = 255
# Related records one finding's severity is looked for in.
_MAX_RELATED = 64
# Characters of a finding's summary; a longer text is cut, ending with an ellipsis.
SUMMARY_CHARS = 200
_ELLIPSIS = "\u2026"

# os-release IDs of RPM distributions whose OSV ecosystem is `<name>:<major version>`.
_RPM_DISTROS = {"rocky": "Rocky Linux", "almalinux": "AlmaLinux"}
# Red Hat publishes per repository stream, named like CPEs; these are the streams of RHEL 8 and later.
_RHEL_STREAMS = ("baseos", "appstream", "crb")


@dataclass(frozen=True)
class Finding:
    """One advisory affecting one installed package."""

    vuln_id: str
    aliases: tuple[str, ...]
    package: Package
    installed_version: str
    fixed_version: str | None
    severity: str
    summary: str
    layer_digest: str
    path: str
    score: float | None = None


class AdvisoryLookup(Protocol):
    """Where the matcher finds advisories; an in-memory `AdvisoryIndex` or a database-backed lookup."""

    def lookup(self, ecosystem: str, name: str) -> Sequence[Advisory]:
        """Advisories with an `affected` entry for `name` (already `normalize_name`d) in `ecosystem`."""
        ...


def normalize_name(ecosystem: str, name: str) -> str:
    """The form names are compared in: PEP 503 for PyPI, as written elsewhere."""
    if base_ecosystem(ecosystem) == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name


def vulnerability_ids(advisory: Advisory) -> tuple[str, ...]:
    """The ids `advisory` is known by: its own, its aliases and its upstream ones (at most 32, each of
    at most 255 characters, as advisory ids are stored)."""
    ids = (advisory.id, *advisory.aliases, *advisory.upstream)
    return tuple(dict.fromkeys(i for i in ids if 0 < len(i) <= _MAX_ID_CHARS))[:_MAX_IDS]


def index_keys(advisory: Advisory) -> set[tuple[str, str]]:
    """The keys `AdvisoryLookup.lookup` must find `advisory` under: (ecosystem, normalized name) of each
    package it affects, and (`ALIAS_ECOSYSTEM`, id) of each id it is known by. A stored index keys its
    rows by these."""
    keys = {
        (a.package.ecosystem, normalize_name(a.package.ecosystem, a.package.name)) for a in advisory.affected
    }
    keys.update((ALIAS_ECOSYSTEM, vuln_id) for vuln_id in vulnerability_ids(advisory))
    return keys


class AdvisoryIndex:
    """Advisories in memory, keyed by (ecosystem, normalized package name)."""

    def __init__(self, advisories: Iterable[Advisory] = ()) -> None:
        self._by_key: dict[tuple[str, str], list[Advisory]] = defaultdict(list)
        self._count = 0
        for advisory in advisories:
            self.add(advisory)

    def add(self, advisory: Advisory) -> None:
        """Index `advisory` under every package it names."""
        self._count += 1
        for key in index_keys(advisory):
            self._by_key[key].append(advisory)

    def lookup(self, ecosystem: str, name: str) -> Sequence[Advisory]:
        """Advisories naming `name` in `ecosystem`."""
        return tuple(self._by_key.get((ecosystem, name), ()))

    def __len__(self) -> int:
        return self._count


def osv_ecosystems(package: Package, os: OsIdentity | None) -> tuple[str, ...]:
    """The OSV ecosystem names advisories for `package` are published under, most specific first."""
    if package.ecosystem not in (DEB, APK, RPM):
        return (package.ecosystem,)
    if os is None or not os.version_id:
        return ()
    distro = os.id.lower()
    if package.ecosystem == DEB and distro == "debian":
        return (f"Debian:{os.version_id.split('.')[0]}",)
    if package.ecosystem == DEB and distro == "ubuntu":
        # OSV names Ubuntu releases with a support suffix (`Ubuntu:22.04:LTS`); accept both forms.
        return (f"Ubuntu:{os.version_id}", f"Ubuntu:{os.version_id}:LTS")
    if package.ecosystem == APK and distro == "alpine":
        major_minor = ".".join(os.version_id.split(".")[:2])
        return (f"Alpine:v{major_minor}",)
    if package.ecosystem == RPM:
        major = os.version_id.split(".")[0]
        if distro in _RPM_DISTROS:
            return (f"{_RPM_DISTROS[distro]}:{major}",)
        if distro == "rhel":
            return (*(f"Red Hat:enterprise_linux:{major}::{s}" for s in _RHEL_STREAMS), "Red Hat")
        if distro == "opensuse-leap":
            return (f"openSUSE:Leap {os.version_id}",)
    return ()


def _lookup_identity(package: Package) -> tuple[str, str]:
    """The (name, version) advisories key this package by."""
    if package.ecosystem in (DEB, APK):
        return package.source_name or package.name, package.source_version or package.version
    return package.name, package.version


def _range_rules(ecosystem: str, kind: str) -> str:
    # SEMVER ranges use semver rules, except Go's, which keep the `v` prefix handling of Go.
    if kind == "SEMVER" and base_ecosystem(ecosystem) != "Go":
        return "npm"
    return ecosystem


def _event_version(rules: str, value: str) -> Version | None:
    """The event's version; None for the `0` that means "since the beginning"."""
    if value == "0":
        return None
    return parse_version(rules, value)


def _in_range(installed: Version, rules: str, range_: Range) -> tuple[bool, list[Version]]:
    """Whether `installed` falls in the range (OSV's evaluation), and the range's fixed versions."""
    parsed: list[tuple[Version | None, str]] = []
    for event in range_.events:
        if event.kind == "limit":
            continue
        parsed.append((_event_version(rules, event.value), event.kind))
    fixed = [v for v, kind in parsed if kind == "fixed" and v is not None]
    # "0" sorts first; at equal versions, introduced before fixed so a zero-width range stays empty.
    order = {"introduced": 0, "last_affected": 1, "fixed": 2}
    parsed.sort(key=lambda item: (item[0] is not None, item[0] or installed, order[item[1]]))
    affected = False
    for version, kind in parsed:
        if version is not None and installed < version:
            break
        if kind == "introduced":
            affected = True
        elif kind == "fixed" or (kind == "last_affected" and version is not None and installed > version):
            affected = False
    return affected, fixed


def affected_by(entry: Affected, version: str) -> tuple[bool, str | None]:
    """Whether `version` is affected per `entry`, and the lowest fixed version above it (or None).

    Explicit `versions` lists count; GIT ranges are ignored (commits do not order installed versions);
    a range whose versions cannot be parsed is skipped rather than guessed.
    """
    ecosystem = entry.package.ecosystem
    affected = version in entry.versions
    fixes: list[Version] = []
    installed_by_rules: dict[str, Version] = {}
    for range_ in entry.ranges:
        if range_.type not in ("ECOSYSTEM", "SEMVER"):
            continue
        rules = _range_rules(ecosystem, range_.type)
        try:
            if rules not in installed_by_rules:
                installed_by_rules[rules] = parse_version(rules, version)
            installed = installed_by_rules[rules]
            hit, fixed = _in_range(installed, rules, range_)
        except InvalidVersionError:
            continue
        affected = affected or hit
        fixes.extend(f for f in fixed if f > installed)
    if not affected:
        return False, None
    return True, (str(min(fixes)) if fixes else None)


def _cvss_score(severity: Severity) -> float | None:
    try:
        if severity.type == "CVSS_V4":
            return float(CVSS4(severity.score).base_score)
        if severity.type == "CVSS_V3":
            return float(CVSS3(severity.score).scores()[0])
        if severity.type == "CVSS_V2":
            return float(CVSS2(severity.score).scores()[0])
    except (CVSSError, ValueError, KeyError, IndexError, TypeError):
        return None
    return None


def _label(score: float) -> str:
    if score >= 9.0:
        return "CRITICAL"
    if score >= 7.0:
        return "HIGH"
    if score >= 4.0:
        return "MEDIUM"
    return "LOW"


def severity_of(advisory: Advisory, entry: Affected | None = None) -> tuple[str, float | None]:
    """The label and CVSS base score: the highest score among CVSS vectors (record and entry), else the
    vendor's `database_specific.severity` or an Ubuntu priority, else UNKNOWN."""
    severities = advisory.severity + (entry.severity if entry else ())
    scores = [s for s in (_cvss_score(sev) for sev in severities) if s is not None and s > 0]
    if scores:
        best = max(scores)
        return _label(best), best
    words = [s.score for s in severities if s.type == "Ubuntu"]
    for specific in (entry.database_specific if entry else None, advisory.database_specific):
        if specific and isinstance(specific.get("severity"), str):
            words.append(specific["severity"])
    for word in words:
        label = _LABELS.get(word.strip().lower())
        if label:
            return label, None
    return "UNKNOWN", None


def _related_severity(advisory: Advisory, index: AdvisoryLookup) -> tuple[str, float | None]:
    """The severity other records of the same vulnerability give: the highest CVSS score among them,
    else the most severe vendor label, else UNKNOWN."""
    seen = {advisory.id}
    found: list[tuple[str, float | None]] = []
    for vuln_id in vulnerability_ids(advisory):
        for other in index.lookup(ALIAS_ECOSYSTEM, vuln_id):
            if other.id in seen or len(seen) > _MAX_RELATED:
                continue
            seen.add(other.id)
            found.append(severity_of(other))
            found.extend(severity_of(other, entry) for entry in other.affected)
    scores = [score for _, score in found if score is not None]
    if scores:
        best = max(scores)
        return _label(best), best
    labels = sorted((label for label, _ in found), key=SEVERITIES.index)
    return (labels[0] if labels else "UNKNOWN"), None


def summary_of(advisory: Advisory) -> str:
    """A one-line summary: the advisory's own, else the first paragraph of its details, with
    whitespace collapsed; cut to `SUMMARY_CHARS` with an ellipsis when anything was left out."""
    summary = advisory.summary.strip()
    source = summary or advisory.details.strip()
    paragraph = " ".join(re.split(r"\n\s*\n", source, maxsplit=1)[0].split())
    whole = " ".join(source.split())
    if len(paragraph) <= SUMMARY_CHARS and paragraph == whole:
        return paragraph
    cut = paragraph[: SUMMARY_CHARS - 1]
    if len(paragraph) > SUMMARY_CHARS and " " in cut[SUMMARY_CHARS // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.") + _ELLIPSIS


def match_packages(
    packages: Iterable[Package], os: OsIdentity | None, index: AdvisoryLookup
) -> list[Finding]:
    """Findings for every package an advisory in `index` affects, sorted by severity, then id and name."""
    findings: dict[tuple[str, str, str, str, str], Finding] = {}
    # Per advisory: one lookup of its related records however many packages it affects.
    related: dict[str, tuple[str, float | None]] = {}
    for package in packages:
        name, version = _lookup_identity(package)
        for ecosystem in osv_ecosystems(package, os):
            key_name = normalize_name(ecosystem, name)
            for advisory in index.lookup(ecosystem, key_name):
                for entry in advisory.affected:
                    if entry.package.ecosystem != ecosystem:
                        continue
                    if normalize_name(ecosystem, entry.package.name) != key_name:
                        continue
                    hit, fixed = affected_by(entry, version)
                    if not hit:
                        continue
                    key = (advisory.id, package.ecosystem, package.name, package.version, package.path)
                    if key in findings:
                        continue
                    label, score = severity_of(advisory, entry)
                    if label == "UNKNOWN":
                        if advisory.id not in related:
                            related[advisory.id] = _related_severity(advisory, index)
                        label, score = related[advisory.id]
                    findings[key] = Finding(
                        vuln_id=advisory.id,
                        aliases=advisory.aliases,
                        package=package,
                        installed_version=version,
                        fixed_version=fixed,
                        severity=label,
                        summary=summary_of(advisory),
                        layer_digest=package.layer_digest,
                        path=package.path,
                        score=score,
                    )
    return sorted(
        findings.values(), key=lambda f: (SEVERITIES.index(f.severity), f.vuln_id, f.package.name, f.path)
    )
