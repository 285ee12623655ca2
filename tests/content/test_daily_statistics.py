"""The dashboard's statistics on SQLite and PostgreSQL: pushes counted in the push's transaction with who
pushed, pulls counted in memory and added up across processes, bounded while waiting, kept when a flush
fails; the vulnerability snapshot's statement; the scan-on-push default for repositories a push creates."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dockyard.app import Services
from dockyard.auth.identity import Identity
from dockyard.content import activity
from dockyard.content.activity import PullCounter, day_of, take_vulnerability_snapshot
from dockyard.db import activity as q
from dockyard.db.engine import Database
from support.pushing import push_blob

ADMIN = Identity(user_id=0, name="root", is_admin=True)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _push(services: Services, name: str, tag: str, seed: str, by: str | None = "alice") -> str:
    config = push_blob(services, name, json.dumps({"os": "linux", "seed": seed}).encode())
    layer = push_blob(services, name, f"layer {seed}".encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 1}],
    }
    actor = Identity(user_id=1, name=by) if by is not None else None
    return services.manifests.put(name, tag, json.dumps(manifest).encode(), OCI_MANIFEST, actor).digest


def _today(services: Services, names: list[str] | None) -> q.DayActivity:
    with services.db.read() as conn:
        found = q.activity_by_day(conn, names, day_of(time.time()))
    return found[-1] if found else q.DayActivity(0, 0, 0)


def test_pushes_and_pulls_add_up_per_repository(services: Services) -> None:
    _push(services, "team/one", "a", "1")
    _push(services, "team/one", "b", "2", by="bob")
    _push(services, "team/two", "a", "3")
    rows = services.browser.tags(ADMIN, "team/one").tags
    assert {t.name: t.pushed_by for t in rows} == {"a": "alice", "b": "bob"}
    first, second = PullCounter(), PullCounter()
    for _ in range(3):
        first.pulled("team/one")
    second.pulled("team/one")
    second.pulled("team/two")
    second.pulled("gone/away")  # no such repository: dropped at the flush
    assert first.flush(services.db) == 3 and second.flush(services.db) == 3
    assert _today(services, ["team/one"]) == q.DayActivity(day_of(time.time()), 2, 4)
    assert _today(services, None) == q.DayActivity(day_of(time.time()), 3, 5)
    assert _today(services, []) == q.DayActivity(0, 0, 0)
    # The pull path counts; the scanner's reads do not.
    services.manifests.pull("team/two", "a")
    services.manifests.get("team/two", "a")
    assert services.manifests.pulls.pending() == 1


def test_waiting_counts_are_bounded_and_survive_a_failed_flush(
    services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(activity, "MAX_PENDING_KEYS", 2)
    counter = PullCounter()
    for name in ("a/one", "a/two", "a/three", "a/one"):
        counter.pulled(name)
    assert counter.pending() == 3  # a third repository waits for the next flush, the others still count
    # A database without the tables (never migrated): the flush fails and the counts wait for the next one.
    bare = Database(f"sqlite:///{tmp_path}/bare.db")
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises for a missing table
            counter.flush(bare)
    finally:
        bare.close()
    assert counter.pending() == 3


def test_the_vulnerability_snapshot_runs_on_this_database(services: Services) -> None:
    _push(services, "team/one", "a", "1")
    # Nothing scanned yet: no repository has findings, and taking it twice a day replaces the day's rows.
    assert take_vulnerability_snapshot(services.db) == 0
    assert take_vulnerability_snapshot(services.db) == 0
    with services.db.read() as conn:
        assert q.snapshots_by_day(conn, None, 0) == {}
        q.current_severity_counts(conn)


def test_a_repository_made_by_a_push_follows_the_scan_on_push_default(services: Services) -> None:
    _push(services, "team/scanned", "a", "1")
    services.system_settings.update(ADMIN, scan_on_push_default=False)
    _push(services, "team/quiet", "a", "2")
    assert services.auth.repositories.repository(ADMIN, "team/scanned").scan_on_push is True
    assert services.auth.repositories.repository(ADMIN, "team/quiet").scan_on_push is False
    assert services.system_settings.get(ADMIN).updated_by == "root"
