"""Server time of the web UI's heaviest pages as data grows: `python -m bench.ui_pages`.

Seeds a fresh data directory with REPOSITORIES repositories over 20 organizations (half public) and one
repository with TAGS tags, then renders, in-process through the whole ASGI app (routing, session, services,
queries, templates; no network), the repository list for a signed-in member of two teams and the first,
a middle and the last page of tags, ROUNDS times each. Prints p50 and p99 in milliseconds (goal: p99 under
100 ms) and the CPU time per request (the figure a loaded machine does not inflate); --json writes them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from starlette.testclient import TestClient

from dockyard.app import create_app
from dockyard.auth.identity import Identity
from dockyard.config import Settings
from dockyard.db import content as cq
from dockyard.db.schema import repositories, tags

PASSWORD = "bench-password-1"  # noqa: S105 (a throwaway data directory's account)
SYSTEM = Identity(user_id=0, name="bench", is_admin=True)
ORGS = 20


def _seed(app: Any, repository_count: int, tag_count: int) -> str:
    services = app.state.services
    accounts = services.auth.accounts
    accounts.create_user(None, "viewer", PASSWORD)
    for index in range(ORGS):
        services.auth.organizations.create_organization(SYSTEM, f"org{index:02d}", [])
    now = time.time()
    rows = [
        {
            "name": f"org{i % ORGS:02d}/repo-{i:06d}",
            "visibility": "public" if i % 2 else "private",
            "description": f"repository number {i}",
            "created_at": now,
        }
        for i in range(repository_count)
    ]
    with services.db.write() as conn:
        conn.execute(insert(repositories), rows)
    for org in ("org00", "org01"):
        services.auth.organizations.create_team(SYSTEM, org, "devs")
        services.auth.organizations.set_member(SYSTEM, org, "devs", "viewer", True)
        services.auth.grants.set_namespace_grant(SYSTEM, org, "devs", "read-write")
    big = "org00/big"
    services.auth.repositories.create(SYSTEM, big, "private")
    with services.db.write() as conn:
        repo_id = cq.repository_id(conn, big)
        assert repo_id is not None
        manifest_ids = []
        for index in range(100):
            layer = f"sha256:{hashlib.sha256(str(index).encode()).hexdigest()}"
            content = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": layer,
                        "size": 100,
                    },
                    "layers": [
                        {
                            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": layer,
                            "size": 1000,
                        }
                    ],
                }
            ).encode()
            manifest_ids.append(
                cq.insert_manifest(
                    conn,
                    repo_id,
                    digest=f"sha256:{hashlib.sha256(content).hexdigest()}",
                    media_type="application/vnd.oci.image.manifest.v1+json",
                    content=content,
                    artifact_type="application/vnd.oci.image.config.v1+json",
                    subject=None,
                    blob_refs=[],
                    manifest_refs=[],
                )
            )
        conn.execute(
            insert(tags),
            [
                {
                    "repository_id": repo_id,
                    "name": f"v{i:07d}",
                    "manifest_id": manifest_ids[i % 100],
                    "updated_at": now,
                }
                for i in range(tag_count)
            ],
        )
    return big


def _timed(client: TestClient, path: str, rounds: int) -> dict[str, float]:
    client.get(path)  # warm caches and connections
    samples = []
    cpu = time.process_time()
    for _ in range(rounds):
        start = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    cpu_ms = (time.process_time() - cpu) * 1000 / rounds
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
        # CPU per request (this process does all the work): what a busy, shared machine cannot inflate.
        "cpu_ms": round(cpu_ms, 2),
    }


def run(repository_count: int, tag_count: int, rounds: int) -> dict[str, dict[str, float]]:
    """Seed, then time the pages; returns {page: {p50_ms, p99_ms}}."""
    with tempfile.TemporaryDirectory(prefix="dy-ui-bench-") as data:
        app = create_app(Settings(data_dir=Path(data), admin_password=PASSWORD, scan_workers=0))
        with TestClient(app) as client:
            big = _seed(app, repository_count, tag_count)
            page = client.get("/sign-in").text
            token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            client.post("/sign-in", data={"username": "viewer", "password": PASSWORD, "csrf_token": token})
            middle = f"v{tag_count // 2:07d}"
            last = f"v{max(0, tag_count - 51):07d}"
            return {
                f"repositories/{repository_count}": _timed(client, "/", rounds),
                f"repositories/{repository_count}/search": _timed(client, "/?q=repo-0001", rounds),
                f"tags/{tag_count}/first": _timed(client, f"/repositories/{big}", rounds),
                f"tags/{tag_count}/middle": _timed(client, f"/repositories/{big}?after={middle}", rounds),
                f"tags/{tag_count}/last": _timed(client, f"/repositories/{big}?after={last}", rounds),
            }


def main() -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=10_000)
    parser.add_argument("--tags", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = run(args.repositories, args.tags, args.rounds)
    for name, figures in results.items():
        print(
            f"{name:32} p50 {figures['p50_ms']:8.2f} ms   p99 {figures['p99_ms']:8.2f} ms"
            f"   CPU {figures['cpu_ms']:7.2f} ms"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
