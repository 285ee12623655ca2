"""Fixtures of the scanning suite: the real OSV snapshots beside the repository, layer builders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

OSV_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "osv"


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
