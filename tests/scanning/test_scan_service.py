"""The scan service on the registry's real services: scan on push as a job, results per image and platform,
re-evaluation without reading layers, hiding findings, the access policy, and clean-up after deletes.
Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from advisories import GLIBC, REQUESTS, ZLIB
from registry_images import (
    OS_DEBIAN,
    REPO,
    SITE,
    TAR_GZIP,
    Pushed,
    descriptor,
    push_image,
    push_manifest,
    push_multiarch,
    size_of,
)
from scan_support import tar_bytes

from dockyard.app import Services, build_services
from dockyard.auth.errors import Forbidden, InvalidInput, NotFound
from dockyard.auth.identity import Identity
from dockyard.config import load_settings
from dockyard.content.digests import parse_digest
from dockyard.content.manifest_format import OCI_INDEX
from dockyard.jobs.queue import Job
from dockyard.scanning.results import FindingFilter
from dockyard.scanning.service import SCAN_JOB
from support import PostgresServer
from support.pushing import push_blob

ADMIN = Identity(user_id=0, name="root", is_admin=True)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def services(request: pytest.FixtureRequest, tmp_path: Path, cheap_hashes: None) -> Iterator[Services]:
    """The registry's services with scanning, on a fresh database."""
    url = None
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database()
    built = build_services(load_settings(data_dir=tmp_path / "data", database_url=url))
    try:
        yield built
    finally:
        built.db.close()


def advisories(services: Services, tmp_path: Path, *records: dict[str, object]) -> None:
    """Import OSV records into the vulnerability database."""
    path = tmp_path / f"advisories-{len(list(tmp_path.glob('advisories-*')))}.json"
    path.write_text(json.dumps(list(records)))
    services.scans.vulndb.import_path(path, "test")


def test_push_queues_a_scan_and_the_job_finds_each_platforms_vulnerabilities(
    services: Services, tmp_path: Path
) -> None:
    advisories(services, tmp_path, GLIBC, REQUESTS)
    pushed = push_multiarch(services)
    assert services.jobs.state(SCAN_JOB, [pushed.index])[pushed.index][0] == "queued"
    assert services.scans.report(ADMIN, REPO, pushed.index).status == "queued"
    # The index's job, and the jobs of the two platform images and the artifacts pushed before it.
    assert services.scans.run_pending() >= 1

    report = services.scans.report(ADMIN, REPO, pushed.index)
    assert report.status == "done"
    assert [(i.digest, i.platform, i.status) for i in report.images] == [
        (pushed.amd64, "linux/amd64", "done"),
        (pushed.arm64, "linux/arm64/v8", "done"),
    ]
    assert {i.os for i in report.images} == {"Debian GNU/Linux 12 (bookworm)"}
    assert [i.counts["CRITICAL"] for i in report.images] == [1, 1]
    assert report.counts["CRITICAL"] == 2 and report.counts["UNKNOWN"] == 1
    assert any("signature" in s or "attestation" in s for s in report.skipped)

    findings = services.scans.findings(ADMIN, REPO, pushed.index, FindingFilter())
    found = {(f.platform, f.vuln_id, f.package, f.fixed_version, f.layer_digest, f.path) for f in findings}
    status = "/var/lib/dpkg/status"
    assert found == {
        ("linux/amd64", "DSA-0001-1", "libc6", "2.36-9+deb12u7", pushed.amd64_layers[0], status),
        ("linux/arm64/v8", "DSA-0001-1", "libc6", "2.36-9+deb12u7", pushed.arm64_layers[0], status),
        (
            "linux/arm64/v8",
            "PYSEC-2099-1",
            "requests",
            "2.31.0",
            pushed.arm64_layers[1],
            f"{SITE}/requests-2.25.0.dist-info/METADATA",
        ),
    }
    glibc = findings[0]
    assert (glibc.severity, glibc.score, glibc.aliases) == ("CRITICAL", 9.8, ("CVE-2099-0001",))
    assert (glibc.source_package, glibc.installed_version) == ("glibc", "2.36-9+deb12u4")

    by_platform = services.scans.findings(ADMIN, REPO, pushed.arm64, FindingFilter())
    assert [f.vuln_id for f in by_platform] == ["DSA-0001-1", "PYSEC-2099-1"]
    only_unknown = FindingFilter(severities=frozenset({"UNKNOWN"}))
    unknown = services.scans.findings(ADMIN, REPO, pushed.index, only_unknown)
    assert [f.package for f in unknown] == ["requests"]
    by_source = FindingFilter(package="glibc")
    assert len(services.scans.findings(ADMIN, REPO, pushed.index, by_source)) == 2
    by_layer = FindingFilter(layer=pushed.arm64_layers[1])
    in_layer = services.scans.findings(ADMIN, REPO, pushed.index, by_layer)
    assert [f.vuln_id for f in in_layer] == ["PYSEC-2099-1"]


def test_a_digest_already_scanned_is_not_queued_again(services: Services, tmp_path: Path) -> None:
    pushed = push_multiarch(services)
    services.scans.run_pending()
    # The same index pushed into another repository shares the stored results.
    other = "team/copy"
    push_multiarch(services, other)
    report = services.scans.report(ADMIN, other, pushed.amd64)
    assert report.status == "done"
    assert services.jobs.state(SCAN_JOB, [pushed.amd64])[pushed.amd64][0] == "done"


def test_hostile_layer_fails_its_image_only(services: Services) -> None:
    good, _, _ = push_image(
        services, REPO, "amd64", [(tar_bytes([("file", "/etc/os-release", OS_DEBIAN)]), TAR_GZIP)]
    )
    bad, _, _ = push_image(services, REPO, "arm64", [(b"\x1f\x8b\x08\x00 this is not gzip" * 10, TAR_GZIP)])
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            descriptor(
                "application/vnd.oci.image.manifest.v1+json",
                digest,
                size_of(services, digest),
                platform={"os": "linux", "architecture": arch},
            )
            for digest, arch in ((good, "amd64"), (bad, "arm64"))
        ],
    }
    digest = push_manifest(services, REPO, index, tag="mixed")
    services.scans.run_pending()
    report = services.scans.report(ADMIN, REPO, "mixed")
    assert report.digest == digest
    assert report.status == "partial"
    states = {i.platform: (i.status, i.error) for i in report.images}
    assert states["linux/amd64"] == ("done", None)
    status, error = states["linux/arm64"]
    assert status == "failed" and error and "Traceback" not in error


def test_scan_on_push_off_queues_nothing_until_asked(services: Services) -> None:
    push_blob(services, REPO, b"creates the repository")
    services.auth.repositories.update(ADMIN, REPO, scan_on_push=False)
    digest, _, _ = push_image(
        services, REPO, "amd64", [(tar_bytes([("file", "/etc/os-release", OS_DEBIAN)]), TAR_GZIP)]
    )
    assert services.jobs.state(SCAN_JOB, [digest]) == {}
    assert services.scans.report(ADMIN, REPO, digest).status == "not_scanned"
    assert services.scans.request_scan(ADMIN, REPO, digest).status == "queued"
    assert services.scans.run_pending() == 1
    assert services.scans.report(ADMIN, REPO, digest).status == "done"


def test_new_advisories_are_matched_without_reading_layers(services: Services, tmp_path: Path) -> None:
    advisories(services, tmp_path, GLIBC)
    pushed = push_multiarch(services)
    services.scans.run_pending()
    assert services.scans.report(ADMIN, REPO, pushed.amd64).counts["HIGH"] == 0
    # With the layers gone, only the stored inventory can produce the new finding.
    for layer in (*pushed.amd64_layers, *pushed.arm64_layers):
        services.store.delete(layer)
    assert services.scans.schedule_reevaluation() is False
    advisories(services, tmp_path, ZLIB)
    assert services.scans.schedule_reevaluation() is True
    assert services.scans.schedule_reevaluation() is False  # once per import, across replicas
    assert services.scans.run_pending() == 1
    findings = services.scans.findings(ADMIN, REPO, pushed.amd64, FindingFilter())
    assert [(f.vuln_id, f.package, f.fixed_version) for f in findings] == [
        ("DSA-0001-1", "libc6", "2.36-9+deb12u7"),
        ("DSA-0002-1", "zlib1g", "1:1.2.13.dfsg-2"),
    ]
    report = services.scans.report(ADMIN, REPO, pushed.amd64)
    assert report.images[0].evaluated_at is not None and report.images[0].scanned_at is not None
    assert report.images[0].evaluated_at >= report.images[0].scanned_at


def _team_member(services: Services, level: str) -> Identity:
    """A user of organization `team` whose team has `level` on team/app."""
    accounts = services.auth.accounts
    user = f"user-{level}"
    row = accounts.create_user(None, user, "correct horse battery")
    services.auth.organizations.create_team(ADMIN, "team", level)
    services.auth.organizations.set_member(ADMIN, "team", level, user, True)
    services.auth.grants.set_repository_grant(ADMIN, REPO, level, level)
    return Identity(user_id=row.id, name=user)


def test_policy_scan_needs_read_write_and_hiding_needs_admin(services: Services, tmp_path: Path) -> None:
    advisories(services, tmp_path, GLIBC)
    services.auth.accounts.create_user(None, "owner", "correct horse battery")
    services.auth.organizations.create_organization(ADMIN, "team", ["owner"])
    pushed: Pushed = push_multiarch(services)
    services.scans.run_pending()
    reader, writer, admin = (_team_member(services, level) for level in ("read-only", "read-write", "admin"))
    outsider_row = services.auth.accounts.create_user(None, "outsider", "correct horse battery")
    outsider = Identity(user_id=outsider_row.id, name="outsider")

    with pytest.raises(NotFound):
        services.scans.report(outsider, REPO, pushed.index)
    assert services.scans.report(reader, REPO, pushed.index).status == "done"
    with pytest.raises(Forbidden):
        services.scans.request_scan(reader, REPO, pushed.index)
    assert services.scans.request_scan(writer, REPO, pushed.index).status == "queued"

    with pytest.raises(Forbidden):
        services.scans.hide(writer, REPO, pushed.amd64, "DSA-0001-1", "libc6", "not reachable")
    with pytest.raises(InvalidInput):
        services.scans.hide(admin, REPO, pushed.amd64, "DSA-0001-1", "libc6", "  ")
    with pytest.raises(NotFound):
        services.scans.hide(admin, REPO, pushed.amd64, "DSA-0001-1", "zlib1g", "no such finding")
    hiding = services.scans.hide(admin, REPO, pushed.amd64, "DSA-0001-1", "libc6", "not reachable")
    assert (hiding.by, hiding.reason) == ("user-admin", "not reachable")

    report = services.scans.report(reader, REPO, pushed.index)
    assert [i.counts["CRITICAL"] for i in report.images] == [0, 1]
    visible = services.scans.findings(reader, REPO, pushed.index, FindingFilter())
    assert [f.platform for f in visible] == ["linux/arm64/v8"]
    everything = services.scans.findings(reader, REPO, pushed.index, FindingFilter(include_hidden=True))
    hidden = [f for f in everything if f.hidden is not None]
    assert [(f.platform, f.hidden.reason if f.hidden else None) for f in hidden] == [
        ("linux/amd64", "not reachable")
    ]
    services.scans.unhide(admin, REPO, pushed.amd64, "DSA-0001-1", "libc6")
    assert services.scans.report(reader, REPO, pushed.index).counts["CRITICAL"] == 2
    with pytest.raises(NotFound):
        services.scans.unhide(admin, REPO, pushed.amd64, "DSA-0001-1", "libc6")


def test_tag_summaries_and_sbom(services: Services, tmp_path: Path) -> None:
    advisories(services, tmp_path, GLIBC)
    pushed = push_multiarch(services)
    content = services.manifests.get(REPO, parse_digest(pushed.amd64))
    services.manifests.put(REPO, "v1", content.content, content.media_type)
    services.scans.run_pending()
    summaries = services.scans.tag_summaries(ADMIN, REPO)
    assert [(s.tag, s.digest, s.report.status, s.report.counts["CRITICAL"]) for s in summaries] == [
        ("latest", pushed.index, "done", 2),
        ("v1", pushed.amd64, "done", 1),
    ]
    document = services.scans.sbom(ADMIN, REPO, "v1")
    assert document["bomFormat"] == "CycloneDX"
    assert {c["name"] for c in document["components"]} >= {"libc6", "zlib1g", "requests"}
    assert [v["id"] for v in document["vulnerabilities"]] == ["DSA-0001-1"]
    with pytest.raises(InvalidInput):
        services.scans.sbom(ADMIN, REPO, pushed.index)
    arm = services.scans.sbom(ADMIN, REPO, pushed.index, platform="linux/arm64/v8")
    assert arm["metadata"]["component"]["name"] == f"{REPO}@{pushed.arm64}"


def test_deleting_manifests_forgets_their_scans(services: Services) -> None:
    digest, _, _ = push_image(
        services, REPO, "amd64", [(tar_bytes([("file", "/etc/os-release", OS_DEBIAN)]), TAR_GZIP)]
    )
    services.scans.run_pending()
    assert services.scans.report(ADMIN, REPO, digest).status == "done"
    services.manifests.delete(REPO, parse_digest(digest))
    services.scans.maintain(job_retention_days=7)
    push_image(services, REPO, "amd64", [(tar_bytes([("file", "/etc/os-release", OS_DEBIAN)]), TAR_GZIP)])
    # Pushed again after the clean-up, the digest has no result any more, so it is scanned anew.
    assert services.jobs.state(SCAN_JOB, [digest])[digest][0] == "queued"
    assert services.scans.report(ADMIN, REPO, digest).status == "queued"


def test_an_index_job_leaves_children_to_their_own_queued_jobs(services: Services) -> None:
    pushed = push_multiarch(services)
    # The index's job runs while its children's jobs are still queued (another worker took it first).
    index_job = Job(0, SCAN_JOB, pushed.index, {"repository": REPO}, 1, "other-worker")
    services.scans.handlers()[SCAN_JOB](index_job)
    (child,) = services.scans.report(ADMIN, REPO, pushed.amd64).images
    assert (child.status, child.scanned_at, child.packages) == ("queued", None, 0)  # not read twice
    assert services.jobs.state(SCAN_JOB, [pushed.amd64])[pushed.amd64][0] == "queued"
    services.scans.run_pending()
    report = services.scans.report(ADMIN, REPO, pushed.index)
    assert [i.status for i in report.images] == ["done", "done"]
