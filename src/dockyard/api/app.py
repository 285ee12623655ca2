"""The FastAPI application mounted at /api/v1, with one JSON error shape for every failure.

Errors read `{"error": {"code": "...", "message": "...", "field": "..."}}` (see api/errors.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from dockyard import __version__
from dockyard.api.browse_routes import router as browse_router
from dockyard.api.cache_routes import router as cache_router
from dockyard.api.cluster_routes import router as cluster_router
from dockyard.api.deps import Context
from dockyard.api.docs import router as docs_router
from dockyard.api.errors import install_handlers
from dockyard.api.guard import HeaderGuard
from dockyard.api.organization_routes import router as org_router
from dockyard.api.routes import router
from dockyard.api.scan_routes import router as scan_router
from dockyard.api.schema import build_schema
from dockyard.api.system_settings_routes import router as system_settings_router
from dockyard.api.vulndb_routes import router as vulndb_router
from dockyard.config import Settings
from dockyard.content.listing import RepositoryBrowser
from dockyard.content.system_settings import SystemSettings

if TYPE_CHECKING:
    from dockyard.app import AuthServices
    from dockyard.cache.directory import CacheDirectory
    from dockyard.cluster.replicas import ReplicaRegistry
    from dockyard.scanning.service import ScanService
    from dockyard.scanning.vulndb_sync import VulnDbSync


def build_api(
    auth: AuthServices,
    settings: Settings,
    scans: ScanService,
    vulndb: VulnDbSync,
    caches: CacheDirectory,
    listing: RepositoryBrowser,
    cluster: ReplicaRegistry,
    system_settings: SystemSettings,
) -> FastAPI:
    """The /api/v1 application."""
    api = FastAPI(
        title="Dockyard management API",
        version=__version__,
        description=(
            "Accounts, organizations, teams, repositories, grants, access tokens, the audit log and "
            "vulnerability scanning. "
            "Authenticate with Basic credentials (password or personal access token), a personal access "
            "token as a bearer token, or a session cookie from POST /session plus the X-CSRF-Token header "
            'on unsafe methods. Errors read {"error": {"code", "message", "field"}}; times are '
            "RFC 3339 in UTC (`Z`); lists are paged with `limit` and `after`, the next page in `Link`."
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    api.state.context = Context(auth=auth, settings=settings, scans=scans, vulndb=vulndb, cluster=cluster)
    api.state.caches = caches
    api.state.system_settings = system_settings
    api.state.browser = listing
    install_handlers(api)
    api.add_middleware(HeaderGuard)
    api.openapi = lambda: build_schema(api)  # type: ignore[method-assign]
    # First: the repository routes' `{name:path}` would take the scanning routes' longer paths.
    routers = (
        docs_router,
        scan_router,
        vulndb_router,
        cache_router,
        cluster_router,
        system_settings_router,
        browse_router,
        org_router,
        router,
    )
    for included in routers:
        api.include_router(included)
    # The routes as declared (FastAPI wraps included routers): for the schema and for 405's Allow.
    api.state.routes = [route for included in routers for route in included.routes]
    return api
