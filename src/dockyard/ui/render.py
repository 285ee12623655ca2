"""Templates (Jinja2, autoescaped), their filters, and the security headers every page carries."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from dockyard.scanning.results import SEVERITIES
from dockyard.ui.session import CSRF_FIELD, Viewer, remember_sign_in_token

HERE = Path(__file__).parent
# Scripts and styles only from this server: an injected tag or handler would not run even if one slipped
# through the escaping.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def size(value: int | None) -> str:
    """Bytes for people: 1.5 MB."""
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if amount < 1000 or unit == "TB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{value} B"


def when(value: float | datetime | None) -> str:
    """A time in UTC, to the minute."""
    if value is None:
        return "—"
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(value: float | None) -> str:
    """How long ago, roughly."""
    if value is None:
        return "never"
    seconds = max(0, int(time.time() - value))
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = seconds // length
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


def short(digest: str) -> str:
    """sha256:0123456789ab (the first 12 hex digits)."""
    algorithm, _, hexa = digest.partition(":")
    return f"{algorithm}:{hexa[:12]}" if hexa else digest[:19]


_ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(size=size, when=when, ago=ago, short=short, dictsum=lambda d: sum(d.values()))
# Every page that shows findings orders severities alike (the tags tab, the image page, the dashboard).
_ENV.globals.update(CSRF_FIELD=CSRF_FIELD, urlencode=urlencode, severities=SEVERITIES)


def page(request: Request, viewer: Viewer, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a template for the viewer, with the security headers."""
    body = _ENV.get_template(template).render(request=request, viewer=viewer, **context)
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    remember_sign_in_token(request, response, viewer)
    return response
