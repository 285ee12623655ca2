"""Shared by the observability tests: the app factory's type and the admin password it sets."""

from __future__ import annotations

from collections.abc import Callable

from starlette.testclient import TestClient

ADMIN_PASSWORD = "observability-admin"

AppFactory = Callable[..., TestClient]
