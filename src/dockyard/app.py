"""Builds the ASGI application: the domain services, the surfaces, and the background workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dockyard.config import Settings
from dockyard.content.blobs import BlobService
from dockyard.content.gc import GarbageCollector
from dockyard.content.manifests import ManifestService
from dockyard.content.uploads import UploadService
from dockyard.db.engine import Database
from dockyard.registry import endpoint
from dockyard.registry.access import Access, OpenAccess
from dockyard.registry.context import RegistryContext
from dockyard.storage.blobstore import BlobStore
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.tls.serving import ca_pem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """Everything the surfaces and workers share, built once per process."""

    settings: Settings
    db: Database
    store: BlobStore
    blobs: BlobService
    uploads: UploadService
    manifests: ManifestService
    gc: GarbageCollector


def build_services(settings: Settings) -> Services:
    """Open the database (migrating it) and the blob store."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    db.migrate()
    store = BlobStore(FilesystemDriver(settings.effective_storage_path))
    return Services(
        settings=settings,
        db=db,
        store=store,
        blobs=BlobService(db, store),
        uploads=UploadService(db, store),
        manifests=ManifestService(db, settings.max_manifest_bytes),
        gc=GarbageCollector(db, store, settings.gc_grace_seconds, settings.upload_expiry_seconds),
    )


def _check_storage(services: Services) -> None:
    writer = services.store.driver.writer("health/probe", resume_at=0)
    writer.write(b"ok")
    writer.close()
    services.store.driver.delete("health/probe")


async def ping(request: Request) -> Response:
    """GET /_ping: 200 when the database and storage work, else 503 naming what does not."""
    services: Services = request.app.state.services
    problems: dict[str, str] = {}
    for part, check in (("database", services.db.ping), ("storage", lambda: _check_storage(services))):
        try:
            await run_in_threadpool(check)
        except Exception as exc:
            problems[part] = str(exc) or type(exc).__name__
    if problems:
        return JSONResponse({"status": "unhealthy", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ok"})


async def ca_certificate(request: Request) -> Response:
    """GET /ca: the CA certificate clients should trust, in PEM."""
    pem = ca_pem(request.app.state.services.settings)
    if pem is None:
        return JSONResponse(
            {"error": "not_found", "message": "this registry has no CA certificate"}, status_code=404
        )
    return Response(pem, media_type="application/x-pem-file")


async def _collect_garbage_periodically(services: Services) -> None:
    interval = services.settings.gc_interval_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(services.gc.run)
        except Exception:
            log.exception("background garbage collection failed; retrying in %d s", interval)


def create_app(
    settings: Settings, services: Services | None = None, access: Access | None = None
) -> Starlette:
    """The whole application for one process."""
    services = services or build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        worker = asyncio.create_task(_collect_garbage_periodically(services))
        try:
            yield
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            services.db.close()

    app = Starlette(
        routes=[
            Route("/v2/", endpoint.base, methods=["GET", "HEAD"]),
            Route(
                "/v2/{path:path}",
                endpoint.dispatch,
                methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            ),
            Route("/_ping", ping, methods=["GET", "HEAD"]),
            Route("/ca", ca_certificate, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.registry = RegistryContext(
        blobs=services.blobs,
        uploads=services.uploads,
        manifests=services.manifests,
        access=access or OpenAccess(),
    )
    return app
