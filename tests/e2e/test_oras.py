"""OCI 1.1 artifacts and referrers: oras-py pushes artifacts whose subject is a pushed image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    OCI_INDEX,
    OCI_MANIFEST,
    ClientEnv,
    DockyardServer,
    Layout,
    check_consistent,
    docker_ref,
    oras_client,
    sha256,
    skopeo_copy,
)

pytestmark = pytest.mark.e2e

SBOM_TYPE = "application/vnd.dockyard.e2e.sbom.v1+json"
SIGNATURE_TYPE = "application/vnd.dockyard.e2e.signature.v1"
EMPTY = "application/vnd.oci.empty.v1+json"


def referrers(server: DockyardServer, repo: str, digest: str, artifact_type: str | None = None) -> Any:
    """GET /v2/<repo>/referrers/<digest>[?artifactType=], checked to be an OCI index."""
    params = {"artifactType": artifact_type} if artifact_type else None
    with server.client() as http:
        response = http.get(f"/v2/{repo}/referrers/{digest}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(OCI_INDEX)
    if artifact_type:
        assert response.headers.get("oci-filters-applied") == "artifactType"
    index = response.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    return index


@pytest.fixture
def subject(client_env: ClientEnv, server: DockyardServer, images: dict[str, Layout]) -> Layout:
    """An image pushed to or/app:v1, for artifacts to refer to."""
    image = images["single"]
    skopeo_copy(client_env, server, image.ref, docker_ref(server, "or/app:v1"))
    return image


def test_oras_artifacts_with_subject_and_referrers(
    server: DockyardServer, subject: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import oras.oci

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.chdir(tmp_path)
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": "busybox"}))
    signature = tmp_path / "signature.bin"
    signature.write_bytes(b"not really a signature\n")
    config = tmp_path / "config.json"
    config.write_text("{}")
    target = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=subject.top.digest, size=subject.top.size)

    client = oras_client(server, "or/app")
    pushed: dict[str, str] = {}
    for tag, path, artifact_type in (("sbom", sbom, SBOM_TYPE), ("sig", signature, SIGNATURE_TYPE)):
        response = client.push(
            target=f"{server.address}/or/app:{tag}",
            files=[f"{path.name}:application/octet-stream"],
            manifest_config=f"{config.name}:{artifact_type}",
            manifest_annotations={"org.opencontainers.image.title": tag},
            subject=target,
            quiet=True,
        )
        assert response.status_code == 201, response.text
        assert response.headers["OCI-Subject"] == subject.top.digest
        pushed[artifact_type] = response.headers["Docker-Content-Digest"]

    index = referrers(server, "or/app", subject.top.digest)
    found = {m["artifactType"]: m for m in index["manifests"]}
    assert set(found) == {SBOM_TYPE, SIGNATURE_TYPE}
    for artifact_type, digest in pushed.items():
        assert found[artifact_type]["digest"] == digest
        assert found[artifact_type]["mediaType"] == OCI_MANIFEST
    assert found[SBOM_TYPE]["annotations"] == {"org.opencontainers.image.title": "sbom"}

    only_sbom = referrers(server, "or/app", subject.top.digest, SBOM_TYPE)
    assert [m["digest"] for m in only_sbom["manifests"]] == [pushed[SBOM_TYPE]]
    assert referrers(server, "or/app", subject.top.digest, "application/x-nothing")["manifests"] == []

    # Pulled back, the artifact's file is intact; the image itself is untouched.
    out = tmp_path / "out"
    files = client.pull(target=f"{server.address}/or/app:sbom", outdir=str(out))
    assert [Path(f).read_bytes() for f in files] == [sbom.read_bytes()]
    manifest = client.get_manifest(f"{server.address}/or/app:sbom")
    assert manifest["subject"]["digest"] == subject.top.digest
    assert (
        client.get_manifest(f"{server.address}/or/app:v1")["config"]
        == json.loads(subject.manifest_bytes())["config"]
    )
    check_consistent(server)


def test_raw_oci_1_1_artifact_pushed_by_digest(server: DockyardServer, subject: Layout) -> None:
    """The OCI 1.1 flow by hand: empty config, artifactType, subject, no tag."""
    payload = b'{"predicateType": "https://slsa.dev/provenance/v1"}'
    empty = b"{}"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.dockyard.e2e.provenance+json",
            "config": {"mediaType": EMPTY, "digest": sha256(empty), "size": len(empty), "data": "e30="},
            "layers": [
                {"mediaType": "application/vnd.in-toto+json", "digest": sha256(payload), "size": len(payload)}
            ],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.top.digest, "size": subject.top.size},
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        }
    ).encode()
    digest = sha256(manifest)
    with server.client() as http:
        for blob in (empty, payload):
            done = http.post("/v2/or/app/blobs/uploads/", params={"digest": sha256(blob)}, content=blob)
            assert done.status_code == 201, done.text
        put = http.put(
            f"/v2/or/app/manifests/{digest}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert put.status_code == 201, put.text
        assert put.headers["OCI-Subject"] == subject.top.digest
        assert put.headers["Docker-Content-Digest"] == digest

    index = referrers(server, "or/app", subject.top.digest, "application/vnd.dockyard.e2e.provenance+json")
    assert index["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(manifest),
            "artifactType": "application/vnd.dockyard.e2e.provenance+json",
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        }
    ]
    with server.client() as http:
        deleted = http.delete(f"/v2/or/app/manifests/{digest}")
        assert deleted.status_code == 202
    assert referrers(server, "or/app", subject.top.digest)["manifests"] == []

    # OCI 1.1: a manifest whose subject is not (yet) in the registry is accepted and listed.
    absent = sha256(b"a subject pushed later")
    orphan = json.loads(manifest)
    orphan["subject"] = {"mediaType": OCI_MANIFEST, "digest": absent, "size": 123}
    orphan_bytes = json.dumps(orphan).encode()
    with server.client() as http:
        put = http.put(
            "/v2/or/app/manifests/orphan", content=orphan_bytes, headers={"Content-Type": OCI_MANIFEST}
        )
        assert put.status_code == 201, put.text
        assert put.headers["OCI-Subject"] == absent
    assert [m["digest"] for m in referrers(server, "or/app", absent)["manifests"]] == [sha256(orphan_bytes)]
    check_consistent(server)
