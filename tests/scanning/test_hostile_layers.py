"""The hostile-layer corpus (`hostile_layers`) through the walker, each in a process of its own whose peak
memory is measured and whose address space is capped, and through a real scan job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from hostile_layers import Case, cases
from registry_images import OS_DEBIAN, REPO, TAR_GZIP, push_image
from scan_support import tar_bytes

from dockyard.app import Services, build_services
from dockyard.auth import passwords
from dockyard.auth.identity import Identity
from dockyard.config import load_settings

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
        assert "sha256:hostile" in str(outcome["message"]) or "limit for a file" in str(outcome["message"])
    growth = outcome["growth_kib"]
    assert isinstance(growth, int) and growth < MAX_GROWTH_KIB, outcome


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """The registry's services on a fresh SQLite database."""
    for name in list(os.environ):
        if name.startswith("DOCKYARD_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    built = build_services(load_settings(data_dir=tmp_path / "data"))
    try:
        yield built
    finally:
        built.db.close()


def test_scan_jobs_record_each_hostile_layer(services: Services) -> None:
    base = tar_bytes([("file", "/etc/os-release", OS_DEBIAN)])
    images = {}
    for number, case in enumerate(CORPUS):
        # A distinct architecture per image keeps their configs, and so their digests, apart.
        digest, _, _ = push_image(services, REPO, f"arch{number}", [(base, TAR_GZIP), (case.blob, TAR_GZIP)])
        images[case.name] = digest
    while services.scans.run_pending(limit=50):
        pass
    for case in CORPUS:
        report = services.scans.report(ADMIN, REPO, images[case.name])
        (image,) = report.images
        if case.error is None:
            assert (image.status, image.error) == ("done", None), case.name
        else:
            assert image.status == "failed", case.name
            assert image.error and case.expect and case.expect in image.error, (case.name, image.error)
            assert "Traceback" not in image.error
