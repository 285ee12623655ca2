"""The vulnerability database over the API: status for users, uploads for system administrators."""

from __future__ import annotations

import io
import json
import zipfile

import httpx
from auth_support import ADMIN_PASSWORD, PASSWORD, AppFactory, World

RECORDS = [
    {
        "id": f"GHSA-test-{n}",
        "summary": f"advisory {n}",
        "affected": [{"package": {"ecosystem": "npm", "name": "lodash"}, "versions": ["4.17.15"]}],
    }
    for n in range(3)
]


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for record in RECORDS:
            archive.writestr(f"{record['id']}.json", json.dumps(record))
    return buffer.getvalue()


def _upload(
    world: World, user: str | None, body: bytes, name: str = "all.zip", **form: str
) -> httpx.Response:
    auth = (user, ADMIN_PASSWORD if user == "admin" else PASSWORD) if user else None
    return world.client.post("/api/v1/vulndb/imports", files={"file": (name, body)}, data=form, auth=auth)


def test_administrators_import_and_everyone_logged_in_sees_the_status(world: World) -> None:
    empty = world.client.get("/api/v1/vulndb", auth=("ro", PASSWORD)).json()
    assert (empty["total"], empty["last_import_at"], empty["age_seconds"]) == (0, None, None)
    assert empty["sync"] == {
        "urls": [],
        "interval_seconds": 86400,
        "last_state": None,
        "last_error": None,
        "last_run_at": None,
    }

    response = _upload(world, "admin", _zip(), source="npm")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "source": "npm",
        "total": 3,
        "added": 3,
        "updated": 0,
        "unchanged": 0,
        "withdrawn_removed": 0,
    }
    again = _upload(world, "admin", _zip(), source="npm").json()
    assert (again["added"], again["unchanged"]) == (0, 3)

    status = world.client.get("/api/v1/vulndb", auth=("ro", PASSWORD)).json()
    assert status["sources"] == {"npm": 3} and status["total"] == 3
    assert status["last_import_at"] is not None and 0 <= status["age_seconds"] < 600
    events = world.client.get(
        "/api/v1/audit", params={"action": "vulndb.import"}, auth=("admin", ADMIN_PASSWORD)
    )
    event = events.json()[0]
    assert (event["actor"], event["target"], event["detail"]["records"]) == ("admin", "npm", 3)


def test_who_may_import(world: World) -> None:
    assert _upload(world, "adm", _zip()).status_code == 403
    assert _upload(world, None, _zip()).status_code == 401
    assert world.client.get("/api/v1/vulndb").status_code == 401


def test_bad_and_oversized_files(make_world: AppFactory) -> None:
    world = make_world(vulndb_max_upload_bytes=200)
    too_big = _upload(world, "admin", _zip())
    assert too_big.status_code == 413
    assert too_big.json()["error"]["field"] == "file"
    bad = _upload(world, "admin", b'{"id": 1}', name="x.json")
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["field"] == "file" and error["message"].startswith("not an OSV file")
    assert world.client.get("/api/v1/vulndb", auth=("admin", ADMIN_PASSWORD)).json()["total"] == 0
