"""The OpenAPI schema: the generated one, plus the ways to authenticate, per operation, so the interactive
docs can authorize."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from dockyard.api import deps

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "User name and password, or user name and personal access token.",
    },
    "token": {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal access token (`dyp_...`) as a bearer token.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": deps.SESSION_COOKIE,
        "description": "The browser session from POST /session.",
    },
    "csrf": {
        "type": "apiKey",
        "in": "header",
        "name": deps.CSRF_HEADER,
        "description": "With a session, on every unsafe method: the csrf_token POST /session returned.",
    },
}
_SAFE = {"GET", "HEAD", "OPTIONS"}


def _calls(dependant: Dependant) -> set[Any]:
    found: set[Any] = set()
    for sub in dependant.dependencies:
        found |= {sub.call, *_calls(sub)}
    return found


def _requirements(route: APIRoute, method: str) -> list[dict[str, list[str]]] | None:
    calls = _calls(route.dependant)
    if deps.caller not in calls:
        return None
    session: dict[str, list[str]] = {"session": []} if method in _SAFE else {"session": [], "csrf": []}
    required: list[dict[str, list[str]]] = [{"basic": []}, {"token": []}, session]
    # Anonymous callers may use the routes that take the optional caller (public repositories).
    return required if deps.user in calls else [*required, {}]


def build_schema(api: FastAPI) -> dict[str, Any]:
    """The schema of the API with its security schemes and each operation's security requirements."""
    if api.openapi_schema is not None:
        return api.openapi_schema
    # `servers` holds the mount point (/api/v1), which FastAPI adds from the first request's root_path.
    schema = get_openapi(
        title=api.title,
        version=api.version,
        description=api.description,
        routes=api.routes,
        servers=api.servers or None,
    )
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for route in api.state.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        path = schema["paths"].get(route.path_format)
        for method in route.methods or ():
            operation = path.get(method.lower()) if path else None
            requirements = _requirements(route, method)
            if operation is not None and requirements is not None:
                operation["security"] = requirements
    api.openapi_schema = schema
    return schema
