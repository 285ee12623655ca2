"""The dashboard: charts over the repositories the viewer may see."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.ui.render import page, size
from dockyard.ui.session import viewer
from dockyard.ui.views.common import call, services, signed_in


async def dashboard(request: Request) -> Response:
    """GET /dashboard."""
    current = await viewer(request)
    signed_in(current)
    board = await call(services(request).browser.dashboard, current.identity)
    return page(request, current, "dashboard.html", board=board, size_of=size)
