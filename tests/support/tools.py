"""skopeo, podman and buildah with isolated state: their own storage, auth file, temp dir.

Plain HTTP is the default: `--tls-verify=false` (skopeo copy/sync: `--src-`/`--dest-tls-verify=false`) is
added to each subcommand that talks to a registry, unless the caller passes a TLS option or `tls_verify=True`.

skopeo run as root keeps its blob-info cache in /var/lib/containers/cache whatever its environment says, so
it may remember blobs from earlier runs at 127.0.0.1:PORT and try cross-repository mounts at a new server on
a reused port; a correct registry answers those with a plain upload. podman and buildah keep that cache
under their --root, which is private here.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .processes import COMMAND_TIMEOUT, remove_tree, run, short_tempdir

_SKOPEO_TLS = {
    "copy": ("--src-tls-verify=false", "--dest-tls-verify=false"),
    "sync": ("--src-tls-verify=false", "--dest-tls-verify=false"),
    "inspect": ("--tls-verify=false",),
    "list-tags": ("--tls-verify=false",),
    "delete": ("--tls-verify=false",),
    "login": ("--tls-verify=false",),
}
_PODMAN_TLS = {
    ("push",), ("pull",), ("login",), ("search",), ("run",), ("create",), ("build",),
    ("image", "push"), ("image", "pull"),
    ("manifest", "create"), ("manifest", "add"), ("manifest", "push"),
}  # fmt: skip
_BUILDAH_TLS = {
    ("push",), ("pull",), ("login",), ("from",), ("build",), ("bud",),
    ("manifest", "create"), ("manifest", "add"), ("manifest", "push"),
}  # fmt: skip


def _has_tls_option(args: Sequence[str]) -> bool:
    return any(a.startswith(("--tls-verify", "--src-tls-verify", "--dest-tls-verify")) for a in args)


def _with_tls_off(args: Sequence[str], subcommands: set[tuple[str, ...]]) -> list[str]:
    for length in (2, 1):
        if tuple(args[:length]) in subcommands:
            return [*args[:length], "--tls-verify=false", *args[length:]]
    return list(args)


class ContainerTools:
    """The three tools sharing one private state directory (a short path under /tmp)."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = base or short_tempdir("dys-ct-")
        for sub in ("root", "run", "tmp", "libpod"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        if len(str(self.base / "run")) > 50:
            raise ValueError(f"--runroot {self.base / 'run'} is longer than 50 characters")
        self.auth_file = self.base / "auth.json"
        if not self.auth_file.exists():
            self.auth_file.write_text('{"auths": {}}')  # podman refuses a named auth file that does not exist

    def remove(self) -> None:
        """Remove podman's containers (they may hold mounts under the run root), then all the state."""
        if (self.base / "root" / "libpod").exists():
            self.podman("rm", "--all", "--force", "--time", "0", check=False, timeout=60)
        remove_tree(self.base)

    @property
    def env(self) -> dict[str, str]:
        """Environment for the tools: auth file, temp files and docker config all private."""
        env = dict(os.environ)
        env.update(
            REGISTRY_AUTH_FILE=str(self.auth_file),
            TMPDIR=str(self.base / "tmp"),
            DOCKER_CONFIG=str(self.base / "docker-config"),
        )
        return env

    @property
    def storage_options(self) -> list[str]:
        """Global options giving podman/buildah their own containers-storage (vfs works anywhere)."""
        return [
            "--root", str(self.base / "root"),
            "--runroot", str(self.base / "run"),
            "--storage-driver", "vfs",
        ]  # fmt: skip

    def skopeo(
        self,
        *args: str,
        tls_verify: bool = False,
        check: bool = True,
        input: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """`skopeo ARGS`; raises CommandError (with stderr) on failure when `check`."""
        argv = list(args)
        if not tls_verify and argv and not _has_tls_option(argv) and argv[0] in _SKOPEO_TLS:
            argv = [argv[0], *_SKOPEO_TLS[argv[0]], *argv[1:]]
        return run(["skopeo", *argv], env=self.env, input=input, timeout=timeout, check=check)

    def podman(
        self,
        *args: str,
        tls_verify: bool = False,
        check: bool = True,
        input: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """`podman [private storage] ARGS`; no systemd or journald needed."""
        argv = list(args) if tls_verify or _has_tls_option(args) else _with_tls_off(args, _PODMAN_TLS)
        globals_ = [
            *self.storage_options,
            "--tmpdir", str(self.base / "libpod"),
            "--events-backend", "file",
            "--cgroup-manager", "cgroupfs",
        ]  # fmt: skip
        return run(["podman", *globals_, *argv], env=self.env, input=input, timeout=timeout, check=check)

    def buildah(
        self,
        *args: str,
        tls_verify: bool = False,
        check: bool = True,
        input: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """`buildah [private storage] ARGS`."""
        argv = list(args) if tls_verify or _has_tls_option(args) else _with_tls_off(args, _BUILDAH_TLS)
        return run(
            ["buildah", *self.storage_options, *argv], env=self.env, input=input, timeout=timeout, check=check
        )
