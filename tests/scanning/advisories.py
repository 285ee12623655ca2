"""Hand-written OSV advisories for the packages the scanning tests' images install."""

from __future__ import annotations

# Debian 12's glibc and requests, as dpkg_status() and push_multiarch() install them: libc6 2.36-9+deb12u4
# (source glibc) on both platforms, requests 2.31.0 on amd64 and 2.25.0 on arm64.
GLIBC = {
    "id": "DSA-0001-1",
    "aliases": ["CVE-2099-0001"],
    "summary": "glibc: buffer overflow",
    "affected": [
        {
            "package": {"ecosystem": "Debian:12", "name": "glibc"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u7"}]}],
        }
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
}
REQUESTS = {
    "id": "PYSEC-2099-1",
    "aliases": ["CVE-2099-0002"],
    "summary": "requests leaks credentials",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "requests"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.31.0"}]}],
        }
    ],
}
ZLIB = {
    "id": "DSA-0002-1",
    "aliases": ["CVE-2099-0003"],
    "summary": "zlib: heap overflow",
    "affected": [
        {
            "package": {"ecosystem": "Debian:12", "name": "zlib"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:1.2.13.dfsg-2"}]}],
        }
    ],
}

# Records of one vulnerability from several databases, shaped as each publishes them. The PYSEC record of
# CVE-2021-33503 (urllib3, ReDoS in the authority parser) in PyPI.zip has no severity; GitHub's record of
# the same vulnerability aliases it and carries the CVSS vector.
URLLIB3_GHSA = {
    "id": "GHSA-q2q7-5pp4-w6pg",
    "aliases": ["CVE-2021-33503"],
    "summary": (
        "Catastrophic backtracking in URL authority parser when passed URL containing many @ characters"
    ),
    "modified": "2023-09-13T17:50:40Z",
    "published": "2021-06-01T21:18:56Z",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "urllib3", "purl": "pkg:pypi/urllib3"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.25.4"}, {"fixed": "1.26.5"}]}],
        }
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
    "database_specific": {"severity": "MODERATE", "github_reviewed": True, "cwe_ids": ["CWE-400"]},
}
URLLIB3_PYSEC_ID = "PYSEC-2021-108"

# Debian's advisory of a CVE names no severity; Ubuntu's record of the same CVE (an `upstream` link, as
# Ubuntu publishes) carries its priority, and NVD's record of the CVE its CVSS vector.
OPENSSL_DSA = {
    "id": "DSA-0003-1",
    "aliases": ["CVE-2099-0004"],
    "summary": "openssl - security update",
    "details": "Several vulnerabilities were discovered in OpenSSL.\n\nFor the stable distribution this "
    "problem has been fixed in version 3.0.99-1~deb12u1.",
    "affected": [
        {
            "package": {"ecosystem": "Debian:12", "name": "openssl"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.99-1~deb12u1"}]}],
        }
    ],
}
OPENSSL_UBUNTU = {
    "id": "UBUNTU-CVE-2099-0004",
    "upstream": ["CVE-2099-0004"],
    "details": "Issue summary: processing a crafted certificate may exhaust memory.",
    "affected": [
        {
            "package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "openssl"},
            "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.2-0ubuntu1.99"}]}
            ],
        }
    ],
    "severity": [{"type": "Ubuntu", "score": "high"}],
}
OPENSSL_NVD = {
    "id": "CVE-2099-0004",
    "details": "Issue summary: processing a crafted certificate may exhaust memory.",
    "affected": [],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"}],
}
