"""The hostile-layer corpus (`hostile_layers`) through the walker, each in a process of its own whose peak
memory is measured and whose address space is capped, and through a real scan job."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_layers import Case, cases
from registry_images import (
    OS_DEBIAN,
    REPO,
    TAR_GZIP,
    descriptor,
    push_image,
    push_manifest,
    size_of,
)
from scan_support import tar_bytes

from dockyard.app import Services, build_services
from dockyard.auth.identity import Identity
from dockyard.config import load_settings
from dockyard.content.manifest_format import OCI_INDEX, OCI_MANIFEST
from support import dockyard_executable
from support.pushing import push_blob

CORPUS = cases()
CHILD = Path(__file__).with_name("walk_child.py")
# Above the interpreter's resident memory when the walk starts. The largest metadata the default limits
# let through (a 1 MiB GNU sparse 0.1 map) costs about 25 MiB; the layers here made the walker of before
# use hundreds of MiB, loop for ever or crash.
MAX_GROWTH_KIB = 64 * 1024
# The child's address space above what it has mapped when the walk starts: a regression fails, not swaps.
ADDRESS_SPACE_MIB = 1024
ADMIN = Identity(user_id=0, name="root", is_admin=True)


def test_corpus_is_deterministic_and_small() -> None:
    again = cases()
    assert [(c.name, c.blob) for c in again] == [(c.name, c.blob) for c in CORPUS]
    assert len({c.name for c in CORPUS}) == len(CORPUS)
    # Compressed, every layer is small; what it would make a careless reader allocate is not.
    assert max(len(c.blob) for c in CORPUS) < 256 * 1024
    assert sum(1 for c in CORPUS if c.error is None) >= 4


def _walk_in_child(case: Case, tmp_path: Path) -> dict[str, object]:
    path = tmp_path / f"{case.name}.tar.gz"
    path.write_bytes(case.blob)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # The timeout is only a guard against a hang (a regression loops for ever), not a measurement.
    done = subprocess.run(
        [sys.executable, str(CHILD), str(path), str(ADDRESS_SPACE_MIB)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcome: dict[str, object] = json.loads(done.stdout)
    return outcome


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_walker_bounds_each_hostile_layer(case: Case, tmp_path: Path) -> None:
    outcome = _walk_in_child(case, tmp_path)
    assert outcome["error"] == case.error, outcome
    if case.expect is not None:
        assert case.expect in str(outcome["message"]), outcome
        # The message names the layer, or the image path whose reading passed a limit.
        message = str(outcome["message"])
        assert "sha256:hostile" in message or message.startswith("/"), outcome
    growth = outcome["growth_kib"]
    assert isinstance(growth, int) and growth < MAX_GROWTH_KIB, outcome


def _peak_rss_kib(command: list[str], log: Path) -> int:
    """Run `command` to its end and return its peak resident memory (KiB), as the kernel counted it."""
    # The address-space cap only keeps a regression from eating the machine; it is far above the bound.
    cap = 4 * 1024 * 1024 * 1024

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, preexec_fn=limit)
    deadline = time.monotonic() + 600  # a guard against a hang, not a measurement
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            pytest.fail(f"{command} did not finish")
        time.sleep(0.2)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, log.read_text()[-2000:]
    return usage.ru_maxrss


@pytest.fixture
def services(tmp_path: Path, cheap_hashes: None) -> Iterator[Services]:
    """The registry's services on a fresh SQLite database."""
    built = build_services(load_settings(data_dir=tmp_path / "data"))
    try:
        yield built
    finally:
        built.db.close()


def test_scan_jobs_record_each_hostile_layer_with_bounded_memory(services: Services, tmp_path: Path) -> None:
    """Every corpus layer in one image of a multi-platform index, scanned by `dockyard scan run` in a
    process of its own (the scan service's job, as a server runs it), whose peak memory is compared with
    the same command scanning a benign image."""
    push_blob(services, REPO, b"creates the repository")
    services.auth.repositories.update(ADMIN, REPO, scan_on_push=False)
    base = tar_bytes([("file", "/etc/os-release", OS_DEBIAN)])
    benign, _, _ = push_image(services, REPO, "amd64", [(base, TAR_GZIP)])
    images = {}
    for number, case in enumerate(CORPUS):
        # A distinct architecture per image keeps their configs, and so their digests, apart.
        digest, _, _ = push_image(services, REPO, f"arch{number}", [(base, TAR_GZIP), (case.blob, TAR_GZIP)])
        images[case.name] = digest
    entries = [
        descriptor(
            OCI_MANIFEST, digest, size_of(services, digest), platform={"os": "linux", "architecture": a}
        )
        for a, digest in ((f"arch{n}", images[c.name]) for n, c in enumerate(CORPUS))
    ]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    hostile = push_manifest(services, REPO, index, tag="hostile")
    data_dir = services.settings.data_dir
    command = [str(dockyard_executable()), "scan", "run", "--data-dir", str(data_dir), "--wait", "600"]
    baseline = _peak_rss_kib([*command, f"{REPO}@{benign}"], tmp_path / "benign.log")
    peak = _peak_rss_kib([*command, f"{REPO}@{hostile}"], tmp_path / "hostile.log")
    assert peak - baseline < MAX_GROWTH_KIB, (baseline, peak)

    report = services.scans.report(ADMIN, REPO, hostile)
    assert report.status == "partial"
    by_digest = {image.digest: image for image in report.images}
    for case in CORPUS:
        image = by_digest[images[case.name]]
        if case.error is None:
            assert (image.status, image.error) == ("done", None), case.name
        else:
            assert image.status == "failed", case.name
            assert image.error and case.expect and case.expect in image.error, (case.name, image.error)
            assert "Traceback" not in image.error
