"""Fixtures of the scanning suite: the real OSV snapshots beside the repository, layer builders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scan_support import OSV_DIR


@pytest.fixture(scope="session")
def osv_dir() -> Path:
    """The directory holding `Go.zip` and `PyPI.zip` (real OSV records, see its README.md)."""
    assert (OSV_DIR / "Go.zip").is_file(), f"OSV snapshots missing at {OSV_DIR}"
    return OSV_DIR


@pytest.fixture(scope="session")
def pip_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install --target` of an old urllib3 (1.24.1, several PYSEC advisories), built once."""
    target = tmp_path_factory.mktemp("pip-tree")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            "urllib3==1.24.1",
        ],
        check=True,
        timeout=300,
    )
    return target


@pytest.fixture(scope="session")
def go_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hello-world Go program without dependencies, built with the machine's Go toolchain."""
    if shutil.which("go") is None:
        subprocess.run(["apt-get", "install", "-y", "golang-go"], check=True, timeout=600)
    work = tmp_path_factory.mktemp("go-build")
    (work / "hello.go").write_text('package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello") }\n')
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOPROXY": "off",
        "GOFLAGS": "-mod=mod",
        "GOCACHE": str(work / "cache"),
        "GOPATH": str(work / "gopath"),
        "HOME": str(work),
    }
    subprocess.run(["go", "build", "-o", "hello", "hello.go"], cwd=work, env=env, check=True, timeout=300)
    return work / "hello"


def _debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 or one-line sources), else deb.debian.org."""
    for source in sorted(Path("/etc/apt").glob("sources.list*")) + sorted(
        Path("/etc/apt").glob("sources.list.d/*")
    ):
        if not source.is_file():
            continue
        for line in source.read_text(errors="replace").splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and "security" not in line:
                return next(w for w in words[1:] if w.startswith(("http://", "https://")))
    return "http://deb.debian.org/debian"


@pytest.fixture(scope="session")
def debian_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Debian 12 root filesystem from `debootstrap --variant=minbase bookworm` (about 30 s, 206 MB),
    built once per session: its dpkg database is what `dpkg` itself wrote."""
    if shutil.which("debootstrap") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "debootstrap"], check=True, timeout=600)
    root = tmp_path_factory.mktemp("debian") / "rootfs"
    subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(root), _debian_mirror()],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return root


@pytest.fixture(scope="session")
def npm_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`npm install` of two old packages into a project (node_modules as npm lays it out), built once:
    lodash 4.17.15 and minimist 1.2.0, both with published advisories."""
    if shutil.which("npm") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "npm"], check=True, timeout=900)
    project = tmp_path_factory.mktemp("npm-project")
    (project / "package.json").write_text('{"name": "scan-fixture", "version": "1.0.0", "private": true}')
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", "lodash@4.17.15", "minimist@1.2.0"],
        cwd=project,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return project
