"""Numbers the UI reads from queries, forms and headers are ASCII digits: `str.isdigit()` accepts "²",
which `int()` then refuses with a ValueError (it was a 500)."""

from __future__ import annotations

import pytest
from auth_support import ADMIN_PASSWORD, World
from pages_support import csrf_of, sign_in
from starlette.testclient import TestClient

_PASSWORD = {"current_password": ADMIN_PASSWORD}


@pytest.fixture
def admin(world: World) -> TestClient:
    client = TestClient(world.client.app, raise_server_exceptions=False)
    client.__enter__()
    return sign_in(client, "admin", ADMIN_PASSWORD)


@pytest.mark.parametrize("digits", ["\u00b2", "\u0661", "\uff11", "1\n", " 1"])
def test_ui_numbers_in_queries_and_headers_are_ascii_digits(admin: TestClient, digits: str) -> None:
    """`?page=²` and a `Content-Length: ²` used to raise ValueError (a 500)."""
    assert admin.get("/", params={"page": digits}).status_code == 200
    assert admin.get("/system/audit", params={"before": digits}).status_code == 200
    token = csrf_of(admin.get("/profile").text)
    form = admin.post(
        "/profile/token",
        data={
            "csrf_token": token,
            "name": "t",
            "expires_in_days": digits,
            "current_password": ADMIN_PASSWORD,
        },
        follow_redirects=False,
    )
    assert form.status_code in (303, 400) and "expires_in_days" in (
        form.headers.get("location", "") + form.text
    )


@pytest.mark.parametrize("length", [b"\xb2", b"\xb3", b"\xb9"])
def test_ui_form_content_length_is_ascii_digits(admin: TestClient, length: bytes) -> None:
    token = csrf_of(admin.get("/profile").text)
    for action in ("/profile/token", "/system/vulndb"):
        response = admin.post(
            action,
            content=b"csrf_token=" + token.encode(),
            headers={"content-type": "application/x-www-form-urlencoded", "content-length": length},
        )
        assert response.status_code == 400, (action, response.status_code)
