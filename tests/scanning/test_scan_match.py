"""Matching packages against advisories: range rules, ecosystems per OS, severity, and the real feeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from advisories import OPENSSL_DSA, OPENSSL_NVD, OPENSSL_UBUNTU, URLLIB3_GHSA, URLLIB3_PYSEC_ID

from dockyard.scanning.match import (
    SUMMARY_CHARS,
    AdvisoryIndex,
    affected_by,
    index_keys,
    match_packages,
    osv_ecosystems,
    severity_of,
    summary_of,
)
from dockyard.scanning.osv import Advisory, iter_zip, parse_advisory
from dockyard.scanning.packages import APK, DEB, RPM, OsIdentity, Package
from dockyard.scanning.versions import InvalidVersionError, parse_version

DEBIAN_12 = OsIdentity("debian", "12")


def _pkg(ecosystem: str, name: str, version: str, source: str = "", source_version: str = "") -> Package:
    return Package(ecosystem, name, version, source or name, source_version or version, "/x", "sha256:aa")


def _advisory(
    vuln_id: str, ecosystem: str, name: str, events: list[dict[str, str]], **extra: Any
) -> Advisory:
    affected: dict[str, Any] = {
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": events}],
    }
    affected.update(extra.pop("affected_extra", {}))
    return parse_advisory({"id": vuln_id, "summary": f"{vuln_id} summary", "affected": [affected], **extra})


def test_ranges_versions_last_affected_and_lowest_fix() -> None:
    advisory = _advisory(
        "PYSEC-T-1",
        "PyPI",
        "Demo_Pkg",
        [{"introduced": "0"}, {"fixed": "1.5"}, {"introduced": "2.0"}, {"fixed": "2.3"}],
        affected_extra={
            "versions": ["3.0.weird"],
            "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "2.0"}, {"fixed": "2.2.1"}]},
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.5"}]},
                {"type": "ECOSYSTEM", "events": [{"introduced": "4.0"}, {"last_affected": "4.2"}]},
                {"type": "GIT", "repo": "https://x", "events": [{"introduced": "0"}, {"fixed": "abc123"}]},
            ],
        },
    )
    entry = advisory.affected[0]
    assert affected_by(entry, "1.4") == (True, "1.5")
    assert affected_by(entry, "1.5") == (False, None)
    assert affected_by(entry, "2.1") == (True, "2.2.1")
    assert affected_by(entry, "2.2.1") == (False, None)
    assert affected_by(entry, "3.0.weird") == (True, None)
    assert affected_by(entry, "4.2") == (True, None)
    assert affected_by(entry, "4.2.1") == (False, None)
    # Name comparison is PEP 503 on both sides.
    findings = match_packages([_pkg("PyPI", "demo-pkg", "2.0")], None, AdvisoryIndex([advisory]))
    assert [(f.vuln_id, f.fixed_version, f.severity) for f in findings] == [("PYSEC-T-1", "2.2.1", "UNKNOWN")]


def test_debian_matches_by_source_package_and_source_version() -> None:
    advisory = _advisory(
        "DSA-T-1", "Debian:12", "openssl", [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]
    )
    index = AdvisoryIndex([advisory])
    libssl = _pkg(DEB, "libssl3", "3.0.11-1~deb12u1+b1", "openssl", "3.0.11-1~deb12u1")
    findings = match_packages([libssl], DEBIAN_12, index)
    assert [(f.vuln_id, f.package.name, f.installed_version, f.fixed_version) for f in findings] == [
        ("DSA-T-1", "libssl3", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2")
    ]
    fixed = _pkg(DEB, "libssl3", "3.0.11-1~deb12u2", "openssl")
    assert match_packages([fixed], DEBIAN_12, index) == []
    # Another release's ecosystem, or no OS identity, finds nothing.
    assert match_packages([libssl], OsIdentity("debian", "11"), index) == []
    assert match_packages([libssl], None, index) == []


def test_os_ecosystem_names() -> None:
    assert osv_ecosystems(_pkg(DEB, "a", "1"), OsIdentity("ubuntu", "22.04")) == (
        "Ubuntu:22.04",
        "Ubuntu:22.04:LTS",
    )
    assert osv_ecosystems(_pkg(APK, "a", "1"), OsIdentity("alpine", "3.19.1")) == ("Alpine:v3.19",)
    assert osv_ecosystems(_pkg(DEB, "a", "1"), OsIdentity("debian", "12")) == ("Debian:12",)
    assert osv_ecosystems(_pkg(APK, "a", "1"), OsIdentity("debian", "12")) == ()
    assert osv_ecosystems(_pkg("npm", "a", "1"), None) == ("npm",)
    assert osv_ecosystems(_pkg(RPM, "a", "1-1"), OsIdentity("almalinux", "9.3")) == ("AlmaLinux:9",)
    assert osv_ecosystems(_pkg(RPM, "a", "1-1"), OsIdentity("rocky", "8.9")) == ("Rocky Linux:8",)
    assert "Red Hat:enterprise_linux:9::appstream" in osv_ecosystems(
        _pkg(RPM, "a", "1-1"), OsIdentity("rhel", "9.4")
    )
    assert osv_ecosystems(_pkg(RPM, "a", "1-1"), OsIdentity("opensuse-leap", "15.5")) == (
        "openSUSE:Leap 15.5",
    )
    # No OS identity, or one without a version (Debian sid): no OS ecosystem can be named.
    assert osv_ecosystems(_pkg(DEB, "a", "1"), None) == ()
    assert osv_ecosystems(_pkg(DEB, "a", "1"), OsIdentity("debian", "")) == ()


def test_alpine_matches_by_origin() -> None:
    advisory = _advisory(
        "ALPINE-T-1", "Alpine:v3.19", "openssl", [{"introduced": "0"}, {"fixed": "3.1.4-r5"}]
    )
    libcrypto = _pkg(APK, "libcrypto3", "3.1.4-r4", "openssl", "3.1.4-r4")
    findings = match_packages([libcrypto], OsIdentity("alpine", "3.19.1"), AdvisoryIndex([advisory]))
    assert [(f.vuln_id, f.fixed_version) for f in findings] == [("ALPINE-T-1", "3.1.4-r5")]


def test_severity_from_cvss_vectors_then_vendor_words() -> None:
    events = [{"introduced": "0"}]
    v3 = _advisory(
        "A",
        "npm",
        "x",
        events,
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    )
    assert severity_of(v3) == ("CRITICAL", 9.8)
    v2 = _advisory(
        "B", "npm", "x", events, severity=[{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:P/A:P"}]
    )
    assert severity_of(v2) == ("HIGH", 7.5)
    v4 = _advisory(
        "C",
        "npm",
        "x",
        events,
        severity=[
            {"type": "CVSS_V4", "score": "CVSS:4.0/AV:L/AC:H/AT:P/PR:H/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"}
        ],
    )
    label, score = severity_of(v4)
    assert score is not None and score < 4.0 and label == "LOW"
    vendor = _advisory("D", "npm", "x", events, database_specific={"severity": "Moderate"})
    assert severity_of(vendor) == ("MEDIUM", None)
    broken = _advisory("E", "npm", "x", events, severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/garbage"}])
    assert severity_of(broken) == ("UNKNOWN", None)


def _simple_range(advisory: Advisory) -> tuple[str, str, str] | None:
    """(name, introduced, fixed) of a record with one entry holding one introduced/fixed range."""
    if len(advisory.affected) != 1 or len(advisory.affected[0].ranges) != 1:
        return None
    events = advisory.affected[0].ranges[0].events
    if [e.kind for e in events] != ["introduced", "fixed"] or events[0].value == "0":
        return None
    return advisory.affected[0].package.name, events[0].value, events[1].value


def test_real_go_records_bound_their_ranges(osv_dir: Path) -> None:
    advisories = list(iter_zip(osv_dir / "Go.zip"))
    index = AdvisoryIndex(advisories)
    checked = 0
    for advisory in advisories:
        simple = _simple_range(advisory)
        if simple is None:
            continue
        name, introduced, fixed = simple
        ids_at = {
            version: {f.vuln_id for f in match_packages([_pkg("Go", name, version)], None, index)}
            for version in (introduced, fixed)
        }
        assert advisory.id in ids_at[introduced], (advisory.id, introduced)
        assert advisory.id not in ids_at[fixed], (advisory.id, fixed)
        checked += 1
    assert checked > 100


def test_real_pypi_versions_lists_are_affected(osv_dir: Path) -> None:
    advisories = list(iter_zip(osv_dir / "PyPI.zip"))
    checked = 0
    for advisory in advisories:
        for entry in advisory.affected:
            for version in entry.versions[:3]:
                hit, fixed = affected_by(entry, version)
                assert hit, (advisory.id, version)
                if fixed is not None:
                    assert parse_version("PyPI", fixed) > parse_version("PyPI", version)
                checked += 1
    assert checked > 1000


def test_unparseable_versions_do_not_crash() -> None:
    advisory = _advisory("X", "PyPI", "demo", [{"introduced": "0"}, {"fixed": "1.0"}])
    assert affected_by(advisory.affected[0], "not-a-version!") == (False, None)
    with pytest.raises(InvalidVersionError):
        parse_version("PyPI", "not-a-version!")


def test_index_keys_normalize_pypi_names_only() -> None:
    pypi = _advisory("PYSEC-T-K", "PyPI", "Zope.Interface", [{"introduced": "0"}])
    npm = _advisory("GHSA-T-K", "npm", "@Scope/Pkg", [{"introduced": "0"}])
    assert index_keys(pypi) == {("PyPI", "zope-interface"), ("", "PYSEC-T-K")}
    assert index_keys(npm) == {("npm", "@Scope/Pkg"), ("", "GHSA-T-K")}
    index = AdvisoryIndex([pypi, npm])
    assert [a.id for a in index.lookup("PyPI", "zope-interface")] == ["PYSEC-T-K"]
    assert index.lookup("PyPI", "Zope.Interface") == ()
    assert len(index) == 2


def _pysec(osv_dir: Path, vuln_id: str) -> Advisory:
    return next(a for a in iter_zip(osv_dir / "PyPI.zip") if a.id == vuln_id)


def test_severity_from_the_ghsa_record_aliasing_a_real_pysec_record(osv_dir: Path) -> None:
    pysec = _pysec(osv_dir, URLLIB3_PYSEC_ID)
    assert severity_of(pysec, pysec.affected[0]) == ("UNKNOWN", None)
    urllib3 = _pkg("PyPI", "urllib3", "1.26.4")
    alone = match_packages([urllib3], None, AdvisoryIndex([pysec]))
    assert [(f.vuln_id, f.severity) for f in alone] == [(URLLIB3_PYSEC_ID, "UNKNOWN")]
    ghsa = parse_advisory(URLLIB3_GHSA)
    found = match_packages([urllib3], None, AdvisoryIndex([pysec, ghsa]))
    # The PYSEC record lists the GHSA id among its aliases; the GHSA record lists only the CVE.
    assert {(f.vuln_id, f.severity, f.score) for f in found} == {
        (URLLIB3_PYSEC_ID, "MEDIUM", 5.9),
        ("GHSA-q2q7-5pp4-w6pg", "MEDIUM", 5.9),
    }


@pytest.mark.parametrize(
    ("related", "expected"),
    [
        ([], ("UNKNOWN", None)),
        ([OPENSSL_UBUNTU], ("HIGH", None)),  # Ubuntu's priority, through its upstream CVE
        ([OPENSSL_NVD], ("MEDIUM", 5.3)),  # the CVE's own record, named by the alias
        ([OPENSSL_UBUNTU, OPENSSL_NVD], ("MEDIUM", 5.3)),  # a CVSS score wins over a label
    ],
    ids=["none", "ubuntu-priority", "nvd-cvss", "score-over-label"],
)
def test_severity_from_another_distributions_record_of_the_same_cve(
    related: list[dict[str, Any]], expected: tuple[str, float | None]
) -> None:
    dsa = parse_advisory(OPENSSL_DSA)
    index = AdvisoryIndex([dsa, *(parse_advisory(r) for r in related)])
    openssl = _pkg(DEB, "libssl3", "3.0.11-1~deb12u2", "openssl")
    (finding,) = match_packages([openssl], DEBIAN_12, index)
    assert finding.vuln_id == "DSA-0003-1"
    assert (finding.severity, finding.score) == expected


def test_related_records_never_override_an_own_severity_nor_come_from_unrelated_ids() -> None:
    own = dict(OPENSSL_DSA, database_specific={"severity": "low"})
    unrelated = dict(OPENSSL_NVD, id="CVE-2099-9999")
    merely_related = dict(OPENSSL_NVD, id="CVE-2099-8888", related=["CVE-2099-0004"])
    openssl = _pkg(DEB, "libssl3", "3.0.11-1~deb12u2", "openssl")
    index = AdvisoryIndex(parse_advisory(r) for r in (own, OPENSSL_NVD))
    assert [f.severity for f in match_packages([openssl], DEBIAN_12, index)] == ["LOW"]
    index = AdvisoryIndex(parse_advisory(r) for r in (OPENSSL_DSA, unrelated, merely_related))
    assert [f.severity for f in match_packages([openssl], DEBIAN_12, index)] == ["UNKNOWN"]


def test_most_severe_label_when_no_record_has_a_score() -> None:
    low = dict(OPENSSL_UBUNTU, id="UBUNTU-CVE-2099-0004-A", severity=[{"type": "Ubuntu", "score": "low"}])
    critical = dict(
        OPENSSL_UBUNTU, id="DEBIAN-CVE-2099-0004", severity=[], database_specific={"severity": "critical"}
    )
    index = AdvisoryIndex(parse_advisory(r) for r in (OPENSSL_DSA, low, critical))
    openssl = _pkg(DEB, "libssl3", "3.0.11-1~deb12u2", "openssl")
    assert [(f.severity, f.score) for f in match_packages([openssl], DEBIAN_12, index)] == [
        ("CRITICAL", None)
    ]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"summary": "Short and whole"}, "Short and whole"),
        ({"summary": "  spaced\n out  ", "details": "ignored"}, "spaced out"),
        ({"details": "One paragraph,\nwrapped over lines."}, "One paragraph, wrapped over lines."),
        ({"details": "First paragraph.\n\nSecond one."}, "First paragraph\u2026"),
        ({"details": ""}, ""),
    ],
)
def test_summaries(record: dict[str, Any], expected: str) -> None:
    assert summary_of(parse_advisory({"id": "X-1", **record})) == expected


def test_long_summaries_are_cut_at_a_word_with_an_ellipsis(osv_dir: Path) -> None:
    long = "word " * 100
    for record in ({"summary": long}, {"details": long}):
        text = summary_of(parse_advisory({"id": "X-1", **record}))
        assert len(text) <= SUMMARY_CHARS and text.endswith("word\u2026")
    unbroken = summary_of(parse_advisory({"id": "X-1", "details": "x" * 500}))
    assert unbroken == "x" * (SUMMARY_CHARS - 1) + "\u2026"
    # Real PYSEC records have details only; a long first paragraph is cut, a short one kept whole.
    records = iter_zip(osv_dir / "PyPI.zip")
    cut = [summary_of(a) for a in records if not a.summary and len(a.details) > SUMMARY_CHARS]
    assert cut and all(len(s) <= SUMMARY_CHARS for s in cut)
    assert all(s.endswith("\u2026") for s in cut)
