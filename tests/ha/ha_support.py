"""A tiny registry client for the HA tests (token auth, monolithic blob uploads, manifest PUT/GET), and the
cluster handle."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import httpx

ADMIN = ("admin", "ha-admin-password")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Cluster:
    """What `scripts/ha-cluster up` printed, and the command to drive it."""

    info: dict[str, Any]
    command: list[str]

    @property
    def url(self) -> str:
        """HAProxy: the registry's one URL."""
        return str(self.info["url"])

    def node(self, action: str, index: int) -> None:
        """kill-node or start-node."""
        done = subprocess.run(
            [*self.command, action, str(index)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]

    def status(self) -> dict[str, Any]:
        """scripts/ha-cluster status."""
        done = subprocess.run([*self.command, "status"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-3000:]
        return dict(json.loads(done.stdout))

    def wait_whole(self, timeout: float = 180) -> None:
        """Wait until every database member is back and every replica answers its /_ping."""

        last: dict[str, Any] = {}

        def whole() -> bool:
            last.update(self.status())
            return len(last["database"]) == len(last["nodes"]) and all(
                node["ping"] == 200 for node in last["nodes"]
            )

        try:
            wait_until("every node up", whole, timeout)
        except AssertionError as exc:
            # What was missing, for whoever reads the failure.
            pings = {node["name"]: node["ping"] for node in last.get("nodes", [])}
            raise AssertionError(f"{exc}: pings {pings}, database {last.get('database')}") from None

    def replica_url(self, index: int) -> str:
        """Node `index`'s own Dockyard replica, not through HAProxy."""
        return str(self.info["nodes"][index]["dockyard"])

    def database_url(self) -> str:
        """The replicas' database URL (every member, the writable one chosen at connect time)."""
        hosts = "&".join(f"host=127.0.0.1:{node['postgres_port']}" for node in self.info["nodes"])
        return (
            f"postgresql+psycopg://dockyard:ha-dockyard@/dockyard?{hosts}"
            "&target_session_attrs=read-write&connect_timeout=3"
        )

    def leader(self) -> int:
        """The index of the node whose PostgreSQL is the leader."""
        for member in self.status()["database"]:
            if member.get("role") == "leader":
                return int(str(member["name"]).removeprefix("node"))
        raise AssertionError("no leader")


def sha256(data: bytes) -> str:
    """The digest string."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class Client:
    """Pushes and pulls through one base URL with a bearer token for one repository."""

    def __init__(self, base: str, repository: str) -> None:
        self.base = base
        self.repository = repository
        self.http = httpx.Client(base_url=base, timeout=15)
        self.token = ""

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def _auth(self) -> dict[str, str]:
        if not self.token:
            answer = self.http.get(
                "/auth/token",
                params={"service": "dockyard", "scope": f"repository:{self.repository}:pull,push"},
                auth=ADMIN,
            )
            answer.raise_for_status()
            self.token = answer.json()["token"]
        return {"Authorization": f"Bearer {self.token}"}

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        answer = self.http.request(method, path, headers={**headers, **self._auth()}, **kwargs)
        if answer.status_code == 401:
            self.token = ""
            answer = self.http.request(method, path, headers={**headers, **self._auth()}, **kwargs)
        return answer

    def push(self, tag: str, layer: bytes) -> tuple[str, dict[str, bytes]]:
        """Push a one-layer image; returns (manifest digest, blobs by digest). Raises on any failure."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
        blobs = {sha256(config): config, sha256(layer): layer}
        for digest, data in blobs.items():
            answer = self._request(
                "POST",
                f"/v2/{self.repository}/blobs/uploads/",
                params={"digest": digest},
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            if answer.status_code != 201:
                raise RuntimeError(f"blob upload: {answer.status_code} {answer.text[:300]}")
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                           "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer),
                            "size": len(layer)}],
            }
        ).encode()  # fmt: skip
        answer = self._request(
            "PUT",
            f"/v2/{self.repository}/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        if answer.status_code != 201:
            raise RuntimeError(f"manifest: {answer.status_code} {answer.text[:300]}")
        return sha256(manifest), blobs

    def pull(self, tag: str) -> tuple[str, dict[str, bytes]]:
        """The manifest digest a tag names, and its blobs' bytes."""
        answer = self._request(
            "GET", f"/v2/{self.repository}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}
        )
        answer.raise_for_status()
        manifest = answer.json()
        blobs = {}
        for descriptor in [manifest["config"], *manifest["layers"]]:
            blob = self._request(
                "GET", f"/v2/{self.repository}/blobs/{descriptor['digest']}", follow_redirects=True
            )
            blob.raise_for_status()
            blobs[descriptor["digest"]] = blob.content
        return sha256(answer.content), blobs


def wait_until(what: str, check: Any, timeout: float) -> float:
    """Seconds until check() held; fails after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except (httpx.HTTPError, RuntimeError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout:g} s")
