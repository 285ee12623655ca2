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
