"""Builds the ASGI application: the domain services, the surfaces, and the background workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from dockyard.api.app import build_api
from dockyard.auth import token_endpoint
from dockyard.auth.accounts import AccountService
from dockyard.auth.authenticate import Authenticator
from dockyard.auth.credentials import CredentialService
from dockyard.auth.grants import GrantService
from dockyard.auth.keys import KeyRing
from dockyard.auth.organizations import OrganizationService
from dockyard.auth.permissions import Permissions
from dockyard.auth.proxies import ForwardedClient, TrustedProxies
from dockyard.auth.registry_access import PolicyAccess
from dockyard.auth.resolver import CredentialResolver
from dockyard.auth.standing import AccountStanding
from dockyard.auth.throttle import LoginThrottle
from dockyard.auth.token_endpoint import TokenServices
from dockyard.auth.tokens import TokenIssuer
from dockyard.cache.directory import CacheDirectory
from dockyard.cache.redirect import CacheRedirects
from dockyard.cluster.replicas import ReplicaRegistry, replica_id
from dockyard.config import Settings
from dockyard.content.activity import count_push, take_vulnerability_snapshot
from dockyard.content.blobs import BlobService
from dockyard.content.browse import Browser
from dockyard.content.gc import GarbageCollector
from dockyard.content.listing import RepositoryBrowser
from dockyard.content.manifests import ManifestService
from dockyard.content.repositories import RepositoryService
from dockyard.content.system_settings import SystemSettings
from dockyard.content.uploads import UploadService
from dockyard.db.engine import Database, DatabaseUnavailable
from dockyard.events.audit import AuditLog
from dockyard.jobs.leases import Leases, PeriodicTask
from dockyard.jobs.queue import JobQueue
from dockyard.jobs.worker import JobRunner
from dockyard.observability import metrics
from dockyard.observability.exposition import metrics_endpoint
from dockyard.observability.requests import RequestObserver
from dockyard.registry import endpoint
from dockyard.registry.access import Access
from dockyard.registry.context import RegistryContext
from dockyard.scanning.service import ScanService
from dockyard.scanning.vulndb_sync import VulnDbSync
from dockyard.storage.blobstore import BlobStore
from dockyard.storage.factory import open_driver
from dockyard.storage.permissions import Modes, check_tree, make_dirs, modes_for
from dockyard.tls.serving import ca_pem
from dockyard.ui.app import build_ui

log = logging.getLogger(__name__)
_POOL_SAMPLE_SECONDS = 5
# Data directories whose file modes this process (or the one it was forked from) has checked.
_MODES_CHECKED: set[tuple[Path, ...]] = set()

_AUDIT_PRUNE_SECONDS = 3600


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
    jobs: JobQueue
    scans: ScanService
    vulndb_sync: VulnDbSync
    auth: AuthServices
    caches: CacheDirectory
    browser: Browser
    listing: RepositoryBrowser
    system_settings: SystemSettings
    cluster: ReplicaRegistry


@dataclass(frozen=True)
class AuthServices:
    """Access control: accounts, credentials, signing keys, tokens, throttle and audit log."""

    accounts: AccountService
    organizations: OrganizationService
    grants: GrantService
    # The policy's facts and decisions on repositories, and repository life (content/repositories.py),
    # which the access hook needs for creation on push.
    permissions: Permissions
    repositories: RepositoryService
    credentials: CredentialService
    keys: KeyRing
    issuer: TokenIssuer
    throttle: LoginThrottle
    audit: AuditLog
    authenticator: Authenticator
    resolver: CredentialResolver


def build_auth(settings: Settings, db: Database) -> AuthServices:
    """The access-control services (the cluster's first signing key is made here on first start)."""
    audit = AuditLog(db, settings.audit_retention_days)
    accounts = AccountService(db, audit)
    permissions = Permissions(db, settings)
    credentials = CredentialService(
        db, accounts, settings.refresh_token_ttl_seconds, settings.session_ttl_seconds, audit
    )
    passphrase = settings.signing_key_passphrase
    keys = KeyRing(
        db,
        token_ttl_seconds=settings.token_ttl_seconds,
        passphrase=passphrase.get_secret_value().encode() if passphrase else None,
        rotation_seconds=settings.signing_key_rotation_days * 86400 or None,
        legacy_dir=settings.data_dir / "keys",
        audit=audit,
    )
    issuer = TokenIssuer(keys, settings.token_issuer, settings.service, settings.token_ttl_seconds)
    throttle = LoginThrottle(
        db,
        settings.login_throttle_threshold,
        settings.login_throttle_base_seconds,
        settings.login_throttle_max_seconds,
    )
    authenticator = Authenticator(accounts, credentials, issuer, throttle, audit)
    return AuthServices(
        accounts=accounts,
        organizations=OrganizationService(db, audit),
        grants=GrantService(permissions, audit),
        permissions=permissions,
        repositories=RepositoryService(permissions, audit),
        credentials=credentials,
        keys=keys,
        issuer=issuer,
        throttle=throttle,
        audit=audit,
        authenticator=authenticator,
        resolver=CredentialResolver(
            authenticator,
            inline_reads=db.is_sqlite,
            standing=AccountStanding(db, settings.token_account_check_seconds),
        ),
    )


def _check_file_modes(settings: Settings, modes: Modes) -> None:
    """Warn, once per data directory and process tree, about existing files others may read."""
    # Blobs on S3 have no local files to check.
    roots = (
        (settings.data_dir, settings.effective_storage_path)
        if settings.storage.driver == "filesystem"
        else (settings.data_dir,)
    )
    if roots in _MODES_CHECKED:
        return
    _MODES_CHECKED.add(roots)
    report = check_tree(roots, modes)
    if report.too_wide:
        examples = ", ".join(f"{path} ({mode:04o})" for path, mode in report.too_wide[:5])
        log.warning(
            "%d of the registry's files and directories can be read by other users, e.g. %s; "
            "directories should be %04o and files %04o (fix: chmod -R go-rwx %s, or set "
            "data_group_readable for group access)",
            len(report.too_wide),
            examples,
            modes.directory,
            modes.file,
            " ".join(str(root) for root in roots),
        )
    if report.truncated:
        log.info("checked the modes of the first %d entries of the data directory only", report.checked)


def build_store(settings: Settings, modes: Modes) -> BlobStore:
    """The blob store the settings name."""
    return BlobStore(open_driver(settings, modes))


def build_services(settings: Settings) -> Services:
    """Open the database (migrating it) and the blob store."""
    # The process umask is the command's to set (dockyard.cli); a test building services keeps its own.
    modes = modes_for(settings.data_group_readable)
    make_dirs(settings.data_dir, modes.directory)
    _check_file_modes(settings, modes)
    db = Database(settings.effective_database_url, file_mode=modes.file)
    db.migrate()
    store = build_store(settings, modes)
    auth = build_auth(settings, db)
    manifests = ManifestService(
        db, settings.max_manifest_bytes, auth.audit, audit_pulls=settings.audit_pulls, store=store
    )
    jobs = JobQueue(db)
    scans = ScanService(db, store, manifests, auth.repositories, jobs, auth.audit)
    manifests.push_hooks.append(scans.on_push)
    manifests.push_hooks.append(count_push)
    listing = RepositoryBrowser(auth.repositories, manifests)
    return Services(
        settings=settings,
        db=db,
        store=store,
        blobs=BlobService(db, store),
        uploads=UploadService(db, store, replica_id(settings)),
        manifests=manifests,
        gc=GarbageCollector(
            db,
            store,
            settings.gc_grace_seconds,
            settings.upload_expiry_seconds,
            # The setting's 0 keeps untagged manifests for ever.
            settings.gc_untagged_retention_seconds or None,
            auth.audit,
        ),
        jobs=jobs,
        scans=scans,
        vulndb_sync=VulnDbSync(scans.vulndb, jobs, settings, auth.audit),
        auth=auth,
        caches=CacheDirectory(db, auth.audit),
        browser=Browser(db, store, auth.repositories, auth.organizations, manifests, listing),
        listing=listing,
        system_settings=SystemSettings(db, auth.audit),
        cluster=ReplicaRegistry(db, settings),
    )


def bootstrap_admin(settings: Settings, auth: AuthServices) -> None:
    """First start: create the `admin` account; a generated password is shown once, in the log."""
    password = auth.accounts.bootstrap_admin(settings)
    if password is not None:
        # The one secret ever logged, by design: without it nobody could log in.
        log.warning(
            "created the system administrator 'admin' with the password %s -- change it with "
            "`dockyard admin passwd admin` or set DOCKYARD_ADMIN_PASSWORD before the first start",
            password,
        )


def _check_storage(services: Services) -> None:
    writer = services.store.driver.writer("health/probe")
    try:
        writer.write(b"ok")
        # Committed: a write an object store would accept only in part is no proof it works.
        writer.commit()
    finally:
        writer.close()
    services.store.driver.delete("health/probe")


async def ping(request: Request) -> Response:
    """GET /_ping: 200 when the database and storage work, else 503 naming what does not.

    The JSON also says whether writes are possible now (a load balancer may route pushes on it)."""
    services: Services = request.app.state.services
    problems: dict[str, str] = {}
    for part, check in (("database", services.db.ping), ("storage", lambda: _check_storage(services))):
        try:
            await run_in_threadpool(check)
        except Exception as exc:
            problems[part] = str(exc) or type(exc).__name__
    if problems:
        return JSONResponse(
            {"status": "unhealthy", "problems": problems, "writable": False},
            status_code=503,
        )
    writable = await run_in_threadpool(services.cluster.writable)
    return JSONResponse({"status": "ok", "writable": writable})


async def ca_certificate(request: Request) -> Response:
    """GET /ca: the CA certificate clients should trust, in PEM."""
    pem = ca_pem(request.app.state.services.settings)
    if pem is None:
        return JSONResponse(
            {"error": "not_found", "message": "this registry has no CA certificate"}, status_code=404
        )
    return Response(pem, media_type="application/x-pem-file")


def _prune(auth: AuthServices) -> None:
    """Forget audit events and login failures past their retention."""
    auth.audit.prune()
    auth.throttle.prune()


def _collect_garbage(services: Services) -> None:
    try:
        report = services.gc.run()
    except Exception:
        metrics.gc_finished(0, ok=False)
        raise
    metrics.gc_finished(report.bytes)


async def _sample_database_pool(db: Database) -> None:
    # Sampled rather than counted on every checkout: it keeps the request path free of it.
    found = metrics.instruments()
    while True:
        pool: Any = db.engine.pool
        with contextlib.suppress(Exception):
            found.db_pool_in_use.set(pool.checkedout())
            found.db_pool_size.set(pool.checkedin() + pool.checkedout())
        await asyncio.sleep(_POOL_SAMPLE_SECONDS)


async def _flush_pulls(services: Services) -> None:
    """Add this process's pull counts to the database every few seconds, and once more when it stops."""
    try:
        while True:
            await asyncio.sleep(services.settings.activity_flush_seconds)
            try:
                await run_in_threadpool(services.manifests.pulls.flush, services.db)
            except DatabaseUnavailable as exc:
                log.warning("pull counts wait for the database (kept for the next try): %s", exc)
            except Exception:
                log.exception("adding pull counts to the database failed; they are kept for the next try")
    finally:
        with contextlib.suppress(Exception):
            await run_in_threadpool(services.manifests.pulls.flush, services.db)


def _idle(services: Services) -> None:
    """Upkeep when no job is due: schedule the vulnerability database sync and re-evaluations."""
    services.vulndb_sync.schedule()
    services.scans.maintain(services.settings.job_retention_days)


def create_app(
    settings: Settings, services: Services | None = None, access: Access | None = None
) -> Starlette:
    """The whole application for one process.

    `access` overrides access control on /v2/ (protocol tests pass OpenAccess()); by default the
    access policy decides.
    """
    services = services or build_services(settings)
    auth = services.auth
    bootstrap_admin(settings, auth)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Every worker of every replica starts these; each task's lease lets one of them run it.
        leases = Leases(services.db)
        periodic = [
            PeriodicTask(
                leases, "periodic:gc", settings.gc_interval_seconds, lambda: _collect_garbage(services)
            ),
            PeriodicTask(leases, "periodic:audit-prune", _AUDIT_PRUNE_SECONDS, lambda: _prune(auth)),
            PeriodicTask(
                leases,
                "periodic:cache-check",
                settings.cache_check_interval_seconds,
                services.caches.check_all,
            ),
            PeriodicTask(
                leases,
                "periodic:vulnerability-snapshot",
                settings.vulnerability_snapshot_interval_seconds,
                lambda: take_vulnerability_snapshot(services.db),
            ),
        ]
        workers = [asyncio.create_task(task.run()) for task in periodic]
        # Per process: each samples its own connection pool.
        workers.append(asyncio.create_task(_sample_database_pool(services.db)))
        workers.append(asyncio.create_task(_flush_pulls(services)))
        workers.append(asyncio.create_task(services.cluster.run()))
        if settings.scan_workers:
            upkeep = PeriodicTask(
                leases, "periodic:jobs-upkeep", settings.scan_poll_seconds, lambda: _idle(services)
            )
            runner = JobRunner(
                services.jobs,
                services.scans.handlers() | services.vulndb_sync.handlers(),
                concurrency=settings.scan_workers,
                poll_seconds=settings.scan_poll_seconds,
                idle=upkeep.run_if_due,
            )
            workers.append(asyncio.create_task(runner.run()))
        try:
            yield
        finally:
            for worker in workers:
                worker.cancel()
            for worker in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            services.db.close()

    extra_routes = []
    if settings.metrics_enabled:
        token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
        extra_routes.append(Route("/metrics", metrics_endpoint(services.db, token), methods=["GET"]))
    app = Starlette(
        routes=[
            *extra_routes,
            # Every method reaches the /v2/ endpoints, which answer 405 with Allow in OCI JSON.
            Route("/v2", endpoint.AnyMethod(endpoint.base)),
            Route("/v2/", endpoint.AnyMethod(endpoint.base)),
            Route("/v2/{path:path}", endpoint.AnyMethod(endpoint.dispatch)),
            Route("/_ping", ping, methods=["GET", "HEAD"]),
            Route("/ca", ca_certificate, methods=["GET"]),
            Route("/auth/token", token_endpoint.token, methods=["GET", "POST"]),
            Route("/auth/jwks.json", token_endpoint.jwks, methods=["GET"]),
            Mount(
                "/api/v1",
                app=build_api(
                    auth,
                    settings,
                    services.scans,
                    services.vulndb_sync,
                    services.caches,
                    services.listing,
                    services.cluster,
                    services.system_settings,
                ),
            ),
            # Last: the web UI answers every path the surfaces above do not.
            Mount("", app=build_ui(services)),
        ],
        lifespan=lifespan,
        # /v2/ answers even the framework's own errors (405, 404, 500) in OCI JSON.
        exception_handlers={HTTPException: endpoint.framework_error, Exception: endpoint.internal_error},
    )
    app.add_middleware(
        RequestObserver,
        trust_request_id=settings.trust_request_id,
        access_log_enabled=settings.access_log,
    )
    if settings.trusted_proxies:
        # Outermost, so the access log and everything after it see the client behind a trusted proxy.
        app.add_middleware(ForwardedClient, trusted=TrustedProxies(settings.trusted_proxies))
    app.state.services = services
    app.state.auth = auth
    app.state.token_services = TokenServices(
        settings=settings,
        permissions=auth.permissions,
        credentials=auth.credentials,
        authenticator=auth.authenticator,
        resolver=auth.resolver,
        issuer=auth.issuer,
        keys=auth.keys,
        audit=auth.audit,
    )
    app.state.registry = RegistryContext(
        blobs=services.blobs,
        uploads=services.uploads,
        manifests=services.manifests,
        access=access
        or PolicyAccess(
            settings, auth.permissions, auth.repositories, auth.authenticator, auth.resolver, auth.audit
        ),
        listing=services.listing,
        caches=CacheRedirects(
            services.caches, auth.keys, settings.token_issuer, settings.cache_grant_ttl_seconds
        ),
    )
    return app
