"""The audit log: what is recorded (who, what, when, from where), who may read it, and retention."""

from __future__ import annotations

import time
from datetime import datetime

from auth_support import ADMIN_PASSWORD, PASSWORD, SYSTEM, World

ADMIN = ("admin", ADMIN_PASSWORD)


def _events(world: World, **params: str) -> list[dict[str, object]]:
    response = world.client.get("/api/v1/audit", params={"limit": "1000", **params}, auth=ADMIN)
    assert response.status_code == 200, response.text
    return list(response.json())


def test_security_events_are_recorded(world: World) -> None:
    client = world.client
    before = time.time()
    assert client.get("/auth/token", auth=("alice", "wrong")).status_code == 401
    assert client.get("/auth/token", auth=("alice", PASSWORD)).status_code == 200
    token = client.post("/api/v1/me/tokens", json={"name": "ci"}, auth=("alice", PASSWORD)).json()
    client.delete(f"/api/v1/me/tokens/{token['id']}", auth=("alice", PASSWORD))
    client.post("/api/v1/organizations", json={"name": "newco", "owners": ["alice"]}, auth=ADMIN)
    client.post("/api/v1/organizations/newco/teams", json={"name": "t"}, auth=("alice", PASSWORD))
    client.put("/api/v1/organizations/newco/teams/t/members/rw", auth=("alice", PASSWORD))
    client.post("/api/v1/repositories", json={"name": "newco/app"}, auth=("alice", PASSWORD))
    client.put(
        "/api/v1/organizations/newco/teams/t/repositories/newco/app",
        json={"level": "admin"},
        auth=("alice", PASSWORD),
    )
    client.delete("/api/v1/repositories/newco/app", auth=("alice", PASSWORD))
    # A push and a delete on /v2/ (allowed to try, but the manifest is invalid and does not exist: both
    # fail) and a denied push.
    client.put("/v2/alice/private/manifests/v1", content=b"{}", auth=("alice", PASSWORD))
    client.delete("/v2/alice/private/manifests/v1", auth=("alice", PASSWORD))
    client.put("/v2/alice/private/manifests/v1", content=b"{}", auth=("outsider", PASSWORD))
    client.post("/v2/alice/by-push/blobs/uploads/", auth=("alice", PASSWORD))

    events = _events(world)
    seen = {(e["action"], e["actor"], e["outcome"]) for e in events}
    # A wrong password is counted (metrics, the throttle), not written as an audit row each.
    assert ("login", "alice", "failure") not in seen
    assert world.auth.throttle.counters.failures == 1
    for expected in [
        ("login", "alice", "success"),
        ("token.create", "alice", "success"),
        ("token.revoke", "alice", "success"),
        ("org.create", "admin", "success"),
        ("team.create", "alice", "success"),
        ("team.member.add", "alice", "success"),
        ("repository.create", "alice", "success"),
        ("grant.repository.set", "alice", "success"),
        ("repository.delete", "alice", "success"),
        ("registry.push", "alice", "failure"),
        ("registry.delete", "alice", "failure"),
        ("registry.push", "outsider", "denied"),
        ("repository.create", "alice", "success"),
    ]:
        assert expected in seen, expected
    assert ("registry.push", "alice", "success") not in seen
    login = next(e for e in events if e["action"] == "login" and e["outcome"] == "success")
    assert login["address"] == "testclient"
    # The API's times are RFC 3339 in UTC.
    at = str(login["at"])
    assert at.endswith("Z") and datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() >= before - 1
    # Secrets never reach the log.
    text = str(events)
    assert PASSWORD not in text and "wrong" not in text and token["token"] not in text


def test_only_administrators_read_the_log(world: World) -> None:
    assert world.client.get("/api/v1/audit", auth=("alice", PASSWORD)).status_code == 403
    assert world.client.get("/api/v1/audit").status_code == 401


def test_filters_and_paging(world: World) -> None:
    for number in range(3):
        made = world.client.post("/api/v1/me/tokens", json={"name": f"t{number}"}, auth=("rw", PASSWORD))
        assert made.status_code == 201, made.text
    created = _events(world, action="token.create", actor="rw")
    assert len(created) == 3
    page = _events(world, action="token.create", actor="rw", before=str(created[0]["id"]))
    assert [e["id"] for e in page] == [e["id"] for e in created[1:]]


def test_retention_prunes_old_events(world: World) -> None:
    audit = world.auth.audit
    audit.record("test.old", actor="x")
    assert any(e.action == "test.old" for e in audit.events(SYSTEM))
    # Ninety days and a bit later, everything recorded so far is gone.
    removed = audit.prune(now=time.time() + world.settings.audit_retention_days * 86400 + 60)
    assert removed > 0
    assert audit.events(SYSTEM) == []
