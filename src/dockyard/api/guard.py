"""Header checks in front of the API: the headers it reads must be printable ASCII of bounded length.

Credentials, cookies and content types are compared, decoded and parsed further in; refusing other bytes here
gives one clear 400 instead of each parser failing its own way (a non-ASCII Basic value used to give a 500).
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from dockyard.api.errors import error

# The headers the API reads, and the most bytes each may hold.
CHECKED_HEADERS = {
    b"authorization": 8192,
    b"cookie": 8192,
    b"x-csrf-token": 256,
    b"content-type": 1024,
    b"content-length": 19,
}
_PRINTABLE = re.compile(rb"[\x20-\x7e\t]*")
_DIGITS = re.compile(rb"[0-9]+")


def header_problem(name: bytes, value: bytes) -> str | None:
    """Why the value of a checked header is refused, or None."""
    limit = CHECKED_HEADERS.get(name)
    if limit is None:
        return None
    if len(value) > limit:
        return f"the {name.decode()} header is longer than {limit} bytes"
    if not _PRINTABLE.fullmatch(value):
        return f"the {name.decode()} header holds bytes outside printable ASCII"
    if name == b"content-length" and not _DIGITS.fullmatch(value):
        return "the content-length header is not a decimal number"
    return None


class HeaderGuard:
    """ASGI middleware answering 400 in the API's error shape when a checked header is malformed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the headers, then hand the request on."""
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                problem = header_problem(name.lower(), value)
                if problem is not None:
                    field = name.decode("latin-1").title()
                    await error(400, "INVALID_INPUT", problem, field)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
