"""The issue's "done when", as a new user would do it: a live `dockyard serve`, advisories imported with
`dockyard vulndb import`, a real Debian 12 image (debootstrap) with pip-installed packages pushed by skopeo,
scanned on push; the vulnerabilities read through the API and `dockyard scan show`.

The advisory file below was written for the packages debootstrap installs in bookworm, checked by hand with
`dpkg-query --admindir ROOTFS/var/lib/dpkg -W -f '${Package} ${Version} ${source:Package} ${source:Version}'`:
util-linux 2.38.1-5+deb12u3 is the source of bsdutils, libblkid1, libmount1, libsmartcols1, libuuid1, mount,
util-linux and util-linux-extra; zlib1g is 1:1.2.13.dfsg-1 (source zlib); tar is 1.34+dfsg-1.2+deb12u1.
Fixed versions are chosen so that bookworm point releases keep the same answer: util-linux is fixed in
2.39.1-1 (above every bookworm version: affected), zlib in 1.3-1 without an epoch (below 1:1.2.13 because of
the epoch: not affected), tar's last affected version is 1.34+dfsg-1.2+deb12u99 (affected, no fix).
urllib3 1.24.1 is matched against the real PyPI feed; PYSEC-2019-133 (CVE-2019-11324) is fixed in 1.24.2.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from oci_layouts import tar_layer, write_layout

from support import DockyardFactory, DockyardServer, dockyard_executable

PASSWORD = "e2e-admin-password"
REPO = "team/debian"
UTIL_LINUX = {
    "id": "DEBIAN-E2E-0001",
    "aliases": ["CVE-2099-1001"],
    "summary": "util-linux: wall escape sequences",
    "affected": [
        {
            "package": {"ecosystem": "Debian:12", "name": "util-linux"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.39.1-1"}]}],
        }
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
}
ZLIB_BELOW_EPOCH = {
    "id": "DEBIAN-E2E-0002",
    "summary": "zlib: fixed long ago",
    "affected": [
        {
            "package": {"ecosystem": "Debian:12", "name": "zlib"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.3-1"}]}],
        }
    ],
}
TAR_UNFIXED = {
    "id": "DEBIAN-E2E-0003",
    "summary": "tar: no fix yet",
    "affected": [
        {
            "package": {"ecosystem": "Debian:12", "name": "tar"},
            "ranges": [
                {
                    "type": "ECOSYSTEM",
                    "events": [{"introduced": "0"}, {"last_affected": "1.34+dfsg-1.2+deb12u99"}],
                }
            ],
            "database_specific": {"severity": "low"},
        }
    ],
}
SITE = "usr/local/lib/python3.11/site-packages"


def _cli(server: DockyardServer, *args: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [dockyard_executable(), *[str(a) for a in args], "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _installed(rootfs: Path) -> list[tuple[str, str, str]]:
    """(package, version, source package) of every installed package, as dpkg itself reports them."""
    output = subprocess.run(
        [
            "dpkg-query",
            "--admindir",
            str(rootfs / "var/lib/dpkg"),
            "-W",
            "-f",
            "${Package} ${Version} ${source:Package} ${db:Status-Abbrev}\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [(w[0], w[1], w[2]) for w in (line.split() for line in output.splitlines()) if w[3:] == ["ii"]]


def _wait_for_scan(api: httpx.Client, path: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        report: dict[str, Any] = api.get(path).json()
        if report["status"] not in ("queued", "running", "not_scanned") or time.monotonic() > deadline:
            return report
        time.sleep(0.5)


def test_push_a_debian_image_and_read_its_vulnerabilities(
    dockyard_server: DockyardFactory,
    debian_rootfs: Path,
    pip_tree: Path,
    osv_dir: Path,
    skopeo: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    server = dockyard_server(env={"DOCKYARD_ADMIN_PASSWORD": PASSWORD})
    feed = tmp_path / "debian-advisories.json"
    feed.write_text(json.dumps([UTIL_LINUX, ZLIB_BELOW_EPOCH, TAR_UNFIXED]))
    _cli(server, "vulndb", "import", feed, "--source", "Debian")
    _cli(server, "vulndb", "import", osv_dir / "PyPI.zip")

    layout = tmp_path / "layout"
    base, python = write_layout(layout, [tar_layer(debian_rootfs), tar_layer(pip_tree, SITE)], "12")
    skopeo(
        "copy",
        f"oci:{layout}:12",
        f"docker://{server.address}/{REPO}:12",
        "--dest-creds",
        f"admin:{PASSWORD}",
    )

    api = httpx.Client(base_url=f"{server.url}/api/v1", auth=("admin", PASSWORD), timeout=60)
    report = _wait_for_scan(api, f"/repositories/{REPO}/manifests/12/scan")
    assert report["status"] == "done", report
    (image,) = report["images"]
    installed = _installed(debian_rootfs)
    assert image["os"] == "Debian GNU/Linux 12 (bookworm)"
    assert image["packages"] == len(installed) + 1  # and urllib3

    findings = api.get(f"/repositories/{REPO}/manifests/{report['digest']}/vulnerabilities").json()
    debian = {(f["vuln_id"], f["package"]): f for f in findings if f["vuln_id"].startswith("DEBIAN-")}
    from_util_linux = {name for name, _, source in installed if source == "util-linux"}
    assert len(from_util_linux) >= 8
    assert set(debian) == {("DEBIAN-E2E-0001", name) for name in from_util_linux} | {
        ("DEBIAN-E2E-0003", "tar")
    }
    versions = {name: version for name, version, _ in installed}
    for (vuln_id, name), finding in debian.items():
        assert finding["installed_version"] == versions[name]
        assert finding["layer_digest"] == base
        assert finding["path"] == "/var/lib/dpkg/status"
        if vuln_id == "DEBIAN-E2E-0001":
            assert (finding["fixed_version"], finding["severity"]) == ("2.39.1-1", "HIGH")
            assert (finding["source_package"], finding["aliases"]) == ("util-linux", ["CVE-2099-1001"])
        else:
            assert (finding["fixed_version"], finding["severity"]) == (None, "LOW")
    urllib3 = {f["vuln_id"]: f for f in findings if f["package"] == "urllib3"}
    assert urllib3["PYSEC-2019-133"]["fixed_version"] == "1.24.2"
    assert {f["layer_digest"] for f in urllib3.values()} == {python}
    assert urllib3["PYSEC-2019-133"]["path"] == f"/{SITE}/urllib3-1.24.1.dist-info/METADATA"

    high = api.get(f"/repositories/{REPO}/manifests/12/vulnerabilities", params={"severity": "HIGH"}).json()
    assert {f["vuln_id"] for f in high} >= {"DEBIAN-E2E-0001"}
    assert all(f["severity"] == "HIGH" for f in high)
    (summary,) = api.get(f"/repositories/{REPO}/scan-summary").json()
    by_severity: dict[str, int] = {}
    for finding in findings:
        by_severity[finding["severity"]] = by_severity.get(finding["severity"], 0) + 1
    assert summary["tag"] == "12" and {k: v for k, v in summary["counts"].items() if v} == by_severity

    sbom = api.get(f"/repositories/{REPO}/manifests/12/sbom").json()
    assert {name for name, _, _ in installed} | {"urllib3"} <= {c["name"] for c in sbom["components"]}

    shown = _cli(server, "scan", "show", f"{REPO}:12").stdout
    rows = [line.split() for line in shown.splitlines()]
    mount = next(row for row in rows if row[:1] == ["DEBIAN-E2E-0001"] and "mount" in row)
    assert mount[1:] == [
        "(CVE-2099-1001)",
        "HIGH",
        "mount",
        versions["mount"],
        "2.39.1-1",
        f"sha256:{base[7:19]}",
        "/var/lib/dpkg/status",
    ]
