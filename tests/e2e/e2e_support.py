"""Plain helpers for the end-to-end tests: the server process, real clients, OCI layouts, consistency checks.

Every client invocation goes through a helper that takes the server, so credentials (``server.creds``)
are passed to the client in one place once access control exists.
"""

from __future__ import annotations

import atexit
import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DOCKYARD = Path(sys.executable).with_name("dockyard")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
ACCEPT_ALL = ", ".join(MANIFEST_TYPES)

CLIENT_TIMEOUT = 180
# Debian's docker CLI matches the 20.10 engine, even when a newer `docker` comes first on PATH.
DOCKER_CLI = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"


def sha256(data: bytes) -> str:
    """The OCI digest of some bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any DOCKYARD_* variable of the developer's, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(extra)
    return env


def run(
    args: Sequence[str | Path],
    *,
    timeout: float = CLIENT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; on failure (with check) the assertion shows its output."""
    argv = [str(a) for a in args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited with {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


_STARTED_GROUPS: set[int] = set()


def _track(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Remember a daemon's process group so an interrupted session still kills it at exit."""
    _STARTED_GROUPS.add(proc.pid)
    return proc


@atexit.register
def _kill_leftovers() -> None:
    for pgid in _STARTED_GROUPS:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def live_group_members(pgid: int) -> list[int]:
    """PIDs in process group `pgid` that are not zombies (Linux /proc)."""
    members: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


# --- the server ------------------------------------------------------------------------------------------


@dataclass
class DockyardServer:
    """One `dockyard serve` process on 127.0.0.1 with its own data directory."""

    data_dir: Path
    port: int
    log_path: Path
    creds: tuple[str, str] | None = None
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=clean_env)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """host:port, as image references spell it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://{self.address}"

    @property
    def storage_dir(self) -> Path:
        """The filesystem blob store's root."""
        return self.data_dir / "storage"

    def start(self, timeout: float = 60) -> None:
        """Start and wait until GET /_ping answers 200."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with self.log_path.open("ab") as log:
            self.proc = _track(subprocess.Popen(
                [str(DOCKYARD), "serve", "--data-dir", str(self.data_dir), "--listen", self.address,
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
            ))  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dockyard serve exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/_ping", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"dockyard serve did not answer /_ping within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        """The server's output so far (tail)."""
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL if it lingers; no worker process outlives it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the server and every process it started (its own session): the crash."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(20)
        # Workers may take a moment to die; wait until none is left in the group (zombies do not count).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not live_group_members(self.proc.pid):
                return
            time.sleep(0.05)
        raise AssertionError(f"processes of dockyard serve (group {self.proc.pid}) survived SIGKILL")

    def restart(self) -> None:
        """Stop (gracefully if still running) and start again on the same data directory and port."""
        self.stop()
        self.start()

    def client(self, timeout: float = 60) -> httpx.Client:
        """An HTTP client for the raw API, authenticated when the server wants credentials."""
        return httpx.Client(base_url=self.url, timeout=timeout, auth=self.creds)


# --- OCI layouts built in Python (deterministic bytes, so digests are stable) -------------------------


def tar_layer(files: Mapping[str, bytes], mode: int = 0o755) -> bytes:
    """An uncompressed layer tarball with fixed metadata."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = sorted({str(Path(name).parent) for name in files} - {"."})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    """gzip with a fixed header, so the same input gives the same digest."""
    return gzip.compress(data, compresslevel=6, mtime=0)


@dataclass(frozen=True)
class Descriptor:
    """An OCI descriptor."""

    media_type: str
    digest: str
    size: int
    platform: dict[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        return out


class LayoutWriter:
    """Writes blobs into an OCI image layout directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def blob(self, data: bytes, media_type: str) -> Descriptor:
        """Store a blob; return its descriptor."""
        digest = sha256(data)
        (self.path / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
        return Descriptor(media_type, digest, len(data))

    def image(
        self, layers: Sequence[bytes], arch: str = "amd64", compress: bool = True, label: str = ""
    ) -> Descriptor:
        """An image manifest (with its config and layers); `layers` are uncompressed tarballs."""
        descriptors = [
            self.blob(gzip_bytes(tar) if compress else tar, OCI_LAYER_GZIP if compress else OCI_LAYER_TAR)
            for tar in layers
        ]
        config = {
            "created": "2024-01-01T00:00:00Z",
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/busybox", "sh"], "Labels": {"dockyard.e2e": label or arch}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar) for tar in layers]},
            "history": [
                {"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))
            ],
        }
        config_desc = self.blob(json.dumps(config, sort_keys=True).encode(), OCI_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_desc.as_json(),
            "layers": [d.as_json() for d in descriptors],
        }
        desc = self.blob(json.dumps(manifest, indent=2).encode(), OCI_MANIFEST)
        return Descriptor(desc.media_type, desc.digest, desc.size, {"architecture": arch, "os": "linux"})

    def index(self, manifests: Sequence[Descriptor]) -> Descriptor:
        """An image index of the given manifests."""
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [m.as_json() for m in manifests]}
        return self.blob(json.dumps(index, indent=2).encode(), OCI_INDEX)

    def tag(self, top: Descriptor, name: str = "latest") -> None:
        """Write index.json naming `top` as `name`."""
        entry = {
            "mediaType": top.media_type,
            "digest": top.digest,
            "size": top.size,
            "annotations": {"org.opencontainers.image.ref.name": name},
        }
        (self.path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))


@dataclass(frozen=True)
class Layout:
    """An OCI layout directory holding one tagged image or index."""

    path: Path
    tag: str
    top: Descriptor

    @property
    def ref(self) -> str:
        """The skopeo/podman reference: oci:PATH:TAG."""
        return f"oci:{self.path}:{self.tag}"

    def blob_bytes(self, digest: str) -> bytes:
        """A blob of the layout."""
        return (self.path / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    def manifest_bytes(self) -> bytes:
        """The exact bytes of the top manifest (or index)."""
        return self.blob_bytes(self.top.digest)

    def children(self) -> list[dict[str, Any]]:
        """The index's manifest descriptors (empty for a single image)."""
        return list(json.loads(self.manifest_bytes()).get("manifests", []))


def busybox_bytes() -> bytes:
    """A real static busybox binary when the machine has one, else stand-in bytes."""
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(candidate).is_file():
            return Path(candidate).read_bytes()
    return b"\x7fELF" + b"busybox stand-in\n" * 4096


def pseudo_random(seed: str, size: int) -> bytes:
    """Incompressible but reproducible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha512(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


# --- clients --------------------------------------------------------------------------------------------


@dataclass
class ClientEnv:
    """Isolated state for container tools: auth files, podman/buildah storage, docker config."""

    base: Path

    def __post_init__(self) -> None:
        for sub in ("root", "run", "tmp", "docker-config"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        assert len(str(self.base / "run")) <= 50, "podman --runroot must stay short"
        if not self.auth_file.exists():
            self.auth_file.write_text('{"auths": {}}')  # podman insists that a named auth file exists

    @property
    def auth_file(self) -> Path:
        """REGISTRY_AUTH_FILE for skopeo, podman and buildah."""
        return self.base / "auth.json"

    def env(self) -> dict[str, str]:
        """Environment for every client."""
        return clean_env(
            REGISTRY_AUTH_FILE=str(self.auth_file),
            DOCKER_CONFIG=str(self.base / "docker-config"),
            TMPDIR=str(self.base / "tmp"),
        )

    def storage_args(self) -> list[str]:
        """Isolated containers-storage for podman and buildah (vfs: works anywhere)."""
        return [
            "--root",
            str(self.base / "root"),
            "--runroot",
            str(self.base / "run"),
            "--storage-driver",
            "vfs",
        ]


def _creds(server: DockyardServer) -> str | None:
    return f"{server.creds[0]}:{server.creds[1]}" if server.creds else None


def _on(server: DockyardServer, ref: str) -> bool:
    return ref.startswith(f"docker://{server.address}/")


def docker_ref(server: DockyardServer, repo_and_ref: str) -> str:
    """docker://127.0.0.1:PORT/<repo>:<tag> (or @digest)."""
    return f"docker://{server.address}/{repo_and_ref}"


def skopeo_copy(
    cenv: ClientEnv,
    server: DockyardServer,
    src: str,
    dst: str,
    *options: str,
    check: bool = True,
    timeout: float = CLIENT_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """`skopeo copy` with TLS off and credentials for whichever side is this server."""
    args: list[str] = ["skopeo", "copy", "--retry-times", "0"]
    creds = _creds(server)
    if _on(server, src):
        args.append("--src-tls-verify=false")
        if creds:
            args += ["--src-creds", creds]
    if _on(server, dst):
        args.append("--dest-tls-verify=false")
        if creds:
            args += ["--dest-creds", creds]
    return run([*args, *options, src, dst], env=cenv.env(), check=check, timeout=timeout)


def skopeo_copy_process(
    cenv: ClientEnv, server: DockyardServer, src: str, dst: str, *options: str
) -> subprocess.Popen[str]:
    """Start `skopeo copy` in the background (pushing to this server)."""
    args: list[str] = ["skopeo", "copy", "--retry-times", "0", "--dest-tls-verify=false"]
    creds = _creds(server)
    if creds:
        args += ["--dest-creds", creds]
    return subprocess.Popen(
        [*args, *options, src, dst], env=cenv.env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def skopeo(
    cenv: ClientEnv,
    server: DockyardServer,
    command: str,
    *args: str,
    check: bool = True,
    global_options: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """`skopeo [GLOBAL_OPTIONS] inspect|list-tags|delete ...` against this server."""
    extra = ["--tls-verify=false"]
    creds = _creds(server)
    if creds:
        extra += ["--creds", creds]
    return run(["skopeo", *global_options, command, *extra, *args], env=cenv.env(), check=check)


def podman(
    cenv: ClientEnv, server: DockyardServer, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`podman ARGS` with isolated storage, logged in to this server when it wants credentials."""
    tool = ["podman", *cenv.storage_args(), "--events-backend", "file", "--cgroup-manager", "cgroupfs"]
    return _tool(tool, cenv, server, args, check)


def buildah(
    cenv: ClientEnv, server: DockyardServer, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`buildah ARGS` with isolated storage, logged in to this server when it wants credentials."""
    return _tool(["buildah", *cenv.storage_args()], cenv, server, args, check)


def _tool(
    tool: list[str], cenv: ClientEnv, server: DockyardServer, args: Sequence[str], check: bool
) -> subprocess.CompletedProcess[str]:
    if server.creds:
        assert server.creds is not None
        subprocess.run(
            [*tool, "login", "--tls-verify=false", "-u", server.creds[0], "--password-stdin", server.address],
            input=server.creds[1], capture_output=True, text=True, env=cenv.env(), timeout=60, check=True,
        )  # fmt: skip
    return run([*tool, *args], env=cenv.env(), check=check)


# --- the docker engine ----------------------------------------------------------------------------------


@dataclass
class DockerEngine:
    """A private dockerd (vfs storage, no networking setup) and its socket."""

    base: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        """The engine's API socket."""
        return self.base / "d.sock"

    def start(self, timeout: float = 90) -> None:
        """Start dockerd and wait until `docker version` answers."""
        for sub in ("data", "exec"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        log = (self.base / "dockerd.log").open("ab")
        self.proc = _track(subprocess.Popen(
            ["dockerd", "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
             "--pidfile", str(self.base / "dockerd.pid"), "-H", f"unix://{self.socket}",
             "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs",
             "--containerd-namespace", "dockyard-e2e", "--containerd-plugins-namespace", "dockyard-e2e-p"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        ))  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dockerd exited with {self.proc.returncode}:\n{self.log()}")
            probe = subprocess.run(
                [DOCKER_CLI, "-H", f"unix://{self.socket}", "version"],
                capture_output=True,
                timeout=20,
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.3)
        self.stop()
        raise AssertionError(f"dockerd did not come up within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        """dockerd's output (tail)."""
        try:
            return (self.base / "dockerd.log").read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; also the containerd it may have started."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        # A managed containerd is in dockerd's process group; make sure nothing outlives the session.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def docker(
    engine: DockerEngine, cenv: ClientEnv, server: DockyardServer | None, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`docker -H unix://SOCK ARGS`, logged in to `server` first when it wants credentials."""
    base = [DOCKER_CLI, "-H", f"unix://{engine.socket}"]
    if server is not None and server.creds:
        subprocess.run(
            [*base, "login", "-u", server.creds[0], "--password-stdin", server.address],
            input=server.creds[1], capture_output=True, text=True, env=cenv.env(), timeout=60, check=True,
        )  # fmt: skip
    return run([*base, *args], env=cenv.env(), check=check)


# --- consistency after a crash ----------------------------------------------------------------------------


def blob_files(server: DockyardServer) -> Iterator[Path]:
    """Every file of the blob store's blobs/ directory."""
    root = server.storage_dir / "blobs"
    if root.exists():
        yield from (p for p in root.rglob("*") if p.is_file())


def file_sha256(path: Path) -> str:
    """sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_consistent(server: DockyardServer) -> dict[str, dict[str, str]]:
    """Assert the crash-safety invariants; returns {repo: {tag: digest}}.

    /_ping is 200; every tag's manifest GETs with bytes matching its digest; every blob and child
    it references exists (HEAD 200); every file in the blob store hashes to its own name.
    """
    seen: dict[str, dict[str, str]] = {}
    with server.client() as http:
        assert http.get("/_ping").status_code == 200
        catalog = http.get("/v2/_catalog", params={"n": 10000})
        assert catalog.status_code == 200, catalog.text
        for repo in catalog.json()["repositories"]:
            tags = http.get(f"/v2/{repo}/tags/list")
            if tags.status_code == 404:
                continue  # a repository created by an upload that never got a manifest
            assert tags.status_code == 200, tags.text
            seen[repo] = {}
            for tag in tags.json()["tags"] or []:
                seen[repo][tag] = _check_manifest(http, repo, tag)
    for path in blob_files(server):
        assert path.parent.parent.name == "sha256", path
        assert file_sha256(path) == path.name, f"{path} holds bytes that do not match its name"
    return seen


def _check_manifest(http: httpx.Client, repo: str, reference: str) -> str:
    response = http.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT_ALL})
    assert response.status_code == 200, f"{repo}:{reference} -> {response.status_code} {response.text}"
    digest = sha256(response.content)
    assert response.headers["docker-content-digest"] == digest
    document = json.loads(response.content)
    for child in document.get("manifests", []):
        _check_manifest(http, repo, child["digest"])
    for blob in [document["config"], *document["layers"]] if "config" in document else []:
        head = http.head(f"/v2/{repo}/blobs/{blob['digest']}")
        assert head.status_code == 200, f"{repo}: blob {blob['digest']} of {reference} is missing"
        assert int(head.headers["content-length"]) == blob["size"]
    return digest


def short_tempdir(prefix: str) -> Path:
    """A directory with a short path (podman's --runroot and unix sockets have length limits)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def remove_tree(path: Path) -> None:
    """rm -rf, tolerating read-only files that vfs storage leaves behind."""

    def onerror(_func: object, target: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(target, 0o700)
            if os.path.isdir(target):
                shutil.rmtree(target, ignore_errors=True)
            else:
                os.unlink(target)

    shutil.rmtree(path, onerror=onerror)


def oras_client(server: DockyardServer, repo: str) -> Any:
    """An oras-py client for this server (plain HTTP), authenticated for pull and push on `repo`.

    oras-py keeps the first bearer token it gets and does not ask again when a later request needs a
    wider scope, so with credentials the token is obtained up front from a push-scoped challenge.
    """
    import oras.client

    client = oras.client.OrasClient(hostname=server.address, insecure=True)
    if server.creds:
        client.auth.set_basic_auth(*server.creds)
        challenge = httpx.post(f"{server.url}/v2/{repo}/blobs/uploads/", timeout=30)
        if challenge.status_code == 401:
            _, authenticated = client.auth.authenticate_request(
                _RequestsLike(challenge.headers.get("www-authenticate", "")), {}
            )
            assert authenticated, f"oras-py could not get a token for {repo}"
        else:
            assert challenge.status_code == 202, challenge.text
            httpx.delete(f"{server.url}{challenge.headers['location']}", auth=server.creds, timeout=30)
    return client


@dataclass(frozen=True)
class _RequestsLike:
    """Just enough of a requests.Response for oras-py's authenticate_request."""

    challenge: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Www-Authenticate": self.challenge}


# --- containerd ----------------------------------------------------------------------------------------


@dataclass
class Containerd:
    """A private containerd (no CRI plugin) for `ctr`."""

    base: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        """The daemon's gRPC socket."""
        return self.base / "c.sock"

    def start(self, timeout: float = 60) -> None:
        """Start containerd and wait until `ctr version` answers."""
        config = self.base / "config.toml"
        config.write_text('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
        with (self.base / "containerd.log").open("ab") as log:
            self.proc = _track(subprocess.Popen(
                ["containerd", "--config", str(config), "--address", str(self.socket),
                 "--root", str(self.base / "root"), "--state", str(self.base / "state")],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            ))  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"containerd exited with {self.proc.returncode}")
            if (
                run(["ctr", "--address", str(self.socket), "version"], check=False, timeout=20).returncode
                == 0
            ):
                return
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"containerd did not come up within {timeout} s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its whole process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def ctr(
    daemon: Containerd, server: DockyardServer, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`ctr -n dockyard-e2e ARGS`; `images pull|push` get --plain-http (and --user with credentials)."""
    extra: list[str] = []
    if args[:1] == ("images",) and args[1:2] in {("pull",), ("push",)}:
        extra = ["--plain-http"]
        if server.creds:
            extra += ["--user", f"{server.creds[0]}:{server.creds[1]}"]
    base = ["ctr", "--address", str(daemon.socket), "-n", "dockyard-e2e"]
    return run([*base, *args[:2], *extra, *args[2:]], env=clean_env(), check=check)
