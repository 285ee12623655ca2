"""Audit events carry the real outcome: the services record what happened, after it happened."""

from __future__ import annotations

import json
from typing import Any

from auth_support import OCI_MANIFEST, PASSWORD, SYSTEM, World, image_bytes, push_image

from dockyard.db.audit import AuditRow


def _events(world: World, action: str) -> list[AuditRow]:
    return world.auth.audit.events(SYSTEM, action=action, limit=1000)


def _detail(row: AuditRow) -> dict[str, Any]:
    detail: dict[str, Any] = json.loads(row.detail)
    return detail


def test_a_push_missing_a_blob_is_a_failure_and_never_a_success(world: World) -> None:
    rejected = [
        # The layer was never uploaded.
        image_bytes(world, "alice/private", "alice", "gap", push_layer=False),
        # Not a manifest at all.
        b'{"schemaVersion": 2, "layers": "no"}',
    ]
    for tag, manifest in zip(("v1", "v2"), rejected, strict=True):
        response = world.client.put(
            f"/v2/alice/private/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
            auth=("alice", PASSWORD),
        )
        assert response.status_code == 400, response.text
    events = _events(world, "registry.push")
    assert [(e.target, e.outcome, e.actor) for e in events] == [
        ("alice/private:v2", "failure", "alice"),
        ("alice/private:v1", "failure", "alice"),
    ]
    assert "is not in repository" in _detail(events[1])["reason"]
    assert all(e.address == "testclient" for e in events)
    # Nothing was stored, so the dashboard counts no push.
    assert world.client.get("/v2/alice/private/tags/list", auth=("alice", PASSWORD)).json()["tags"] in (
        None,
        [],
    )


def test_a_push_is_recorded_once_it_is_stored_and_an_overwrite_names_both_digests(world: World) -> None:
    first = push_image(world, "alice/private", "latest", "alice", seed="one")
    second = push_image(world, "alice/private", "latest", "alice", seed="two")
    # The same image again moves nothing: no previous digest to name.
    push_image(world, "alice/private", "latest", "alice", seed="two")
    events = _events(world, "registry.push")
    assert [e.outcome for e in events] == ["success"] * 3
    again, overwrite, created = (_detail(e) for e in events)
    assert created == {"repository": "alice/private", "tag": "latest", "digest": first}
    assert overwrite == {
        "repository": "alice/private",
        "tag": "latest",
        "digest": second,
        "previous_digest": first,
    }
    assert again == {"repository": "alice/private", "tag": "latest", "digest": second}
    # Uploading blobs is not audited, chunk by chunk or at all.
    assert not [e for e in world.auth.audit.events(SYSTEM, limit=1000) if "blob" in e.action]


def test_deletes_are_recorded_with_the_digest_they_removed(world: World) -> None:
    digest = push_image(world, "alice/private", "v1", "alice")
    for tag in ("v2", "v3"):
        world.client.put(
            f"/v2/alice/private/manifests/{tag}",
            content=image_bytes(world, "alice/private", "alice", "a"),
            headers={"Content-Type": OCI_MANIFEST},
            auth=("alice", PASSWORD),
        )
    auth = ("alice", PASSWORD)
    # A tag over /v2/, a tag over the API, then the manifest by digest over /v2/.
    assert world.client.delete("/v2/alice/private/manifests/v1", auth=auth).status_code == 202
    assert world.client.delete("/api/v1/repositories/alice/private/tags/v2", auth=auth).status_code == 204
    assert world.client.delete(f"/v2/alice/private/manifests/{digest}", auth=auth).status_code == 202
    # Deleting what is gone fails, and says so.
    assert world.client.delete(f"/v2/alice/private/manifests/{digest}", auth=auth).status_code == 404
    deletes = _events(world, "registry.delete")
    assert [(e.target, e.outcome, _detail(e).get("digest")) for e in deletes] == [
        (f"alice/private@{digest}", "failure", None),
        (f"alice/private@{digest}", "success", digest),
        ("alice/private:v1", "success", digest),
    ]
    (untag,) = _events(world, "tag.delete")
    assert (untag.target, untag.actor, _detail(untag)["digest"]) == ("alice/private:v2", "alice", digest)


def test_a_denied_push_is_recorded_by_the_access_hook_and_runs_nothing(world: World) -> None:
    manifest = image_bytes(world, "alice/private", "alice", "a")
    response = world.client.put(
        "/v2/alice/private/manifests/v1",
        content=manifest,
        headers={"Content-Type": OCI_MANIFEST},
        auth=("outsider", PASSWORD),
    )
    assert response.status_code in (401, 403)
    events = _events(world, "registry.push")
    assert [(e.actor, e.outcome) for e in events] == [("outsider", "denied")]


def test_a_repository_created_by_a_push_is_recorded_once(world: World) -> None:
    push_image(world, "alice/by-push", "v1", "alice")
    push_image(world, "alice/by-push", "v2", "alice")
    created = [e for e in _events(world, "repository.create") if e.target == "alice/by-push"]
    assert [(e.actor, e.address, _detail(e)) for e in created] == [
        ("alice", "testclient", {"visibility": "private", "via": "push"})
    ]
