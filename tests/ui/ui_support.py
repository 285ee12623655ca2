"""Helpers for the web UI tests: OCI layouts to push with real clients, and a browser that records every
JavaScript error, console error and dialog of the pages it opens."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page

from support import DockyardServer

CHROMIUM = "/usr/bin/chromium"
# Playwright's own browser download does not work here; Debian's Chromium with these flags does.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path("/tmp/dockyard-ui-shots")
ADMIN_PASSWORD = "ui-admin-password"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def live_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str] | None = None
) -> Iterator[DockyardServer]:
    """A live registry with the web UI in its own data directory, the admin password known, and `env`
    (DOCKYARD_* settings) on top: the body of a module's `server` fixture."""
    base = tmp_path_factory.mktemp(name)
    server = DockyardServer(
        base / "data", base / "serve.log", env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})}
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A gzip tar layer holding `files` (paths without a leading slash), reproducibly."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_image(
    layout: Path,
    tag: str,
    layers: list[tuple[dict[str, bytes], str]],
    *,
    labels: dict[str, str] | None = None,
    env: list[str] | None = None,
) -> str:
    """An OCI layout with one linux/amd64 image: each layer is (files, the history line that made it).
    Returns the manifest digest."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    blobs = [tar_gz(files) for files, _ in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-11-30T12:00:00Z",
        "config": {
            "Env": env or ["PATH=/usr/bin"],
            "Entrypoint": ["/bin/app"],
            "Cmd": ["--serve"],
            "Labels": labels or {},
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(gzip.decompress(b)).hexdigest() for b in blobs],
        },
        "history": [{"created_by": line} for _, line in layers],
    }
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **_blob(layout, json.dumps(config).encode())},
            "layers": [{"mediaType": OCI_LAYER_GZIP, **_blob(layout, b)} for b in blobs],
        }
    ).encode()
    descriptor = {
        "mediaType": OCI_MANIFEST,
        **_blob(layout, manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return str(descriptor["digest"])


@dataclass
class Watched:
    """A browser context whose pages report JavaScript errors, console errors and dialogs."""

    context: BrowserContext
    base_url: str
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def page(self) -> Page:
        """A new tab, watched."""
        page = self.context.new_page()
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("console", lambda message: self._console(page, message))
        page.on("dialog", self._dialog)
        return page

    def _console(self, page: Page, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # Chromium logs a page answered 403 or 404 as a failed resource; the tests assert those statuses
        # themselves. A failed stylesheet, script or icon still counts.
        if message.text.startswith("Failed to load resource") and message.location.get("url") == page.url:
            return
        self.problems.append(f"console error: {message.text} at {message.location}")

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


def watched(browser: Browser, base_url: str) -> Watched:
    """A fresh context (no cookies) on the server."""
    return Watched(browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900}), base_url)


def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot under SHOTS (outside the repository)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, user: str, password: str) -> None:
    """Sign in through the form, as a person would."""
    page.goto("/sign-in")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password or personal access token").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")
