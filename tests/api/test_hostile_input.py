"""/api/v1 under hostile input: every malformed body, number, character and header gets a 4xx in the
API's own error shape, never a 500 or plain text; the framework's own errors are in that shape too."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from auth_support import ADMIN_PASSWORD, World
from starlette.testclient import TestClient

ADMIN = ("admin", ADMIN_PASSWORD)
JSON = {"content-type": "application/json"}


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    """A client that reports a server error as a response, as a real client would see it."""
    with TestClient(world.client.app, raise_server_exceptions=False) as raw:
        yield raw


def _api_error(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    return dict(error)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"name": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        b'{"name": "deep-one", "password": "long-enough-1", "full_name": ' + b'{"a":' * 3_000 + b"}" * 3_000,
        b'{"name": "x' + b"\\" * 3 + b'"}',
        b'{"name": "ok-name", "password": "long-enough-1"',
        b"\xff\xfe\x00{",
        b'{"name": "\xc3\x28", "password": "long-enough-1"}',
    ],
    ids=["deep-array", "deep-in-field", "deep-object", "bad-escape", "truncated", "bad-bytes", "bad-utf8"],
)
def test_unparseable_json_is_a_400(client: TestClient, body: bytes) -> None:
    error = _api_error(client.post("/api/v1/users", content=body, headers=JSON, auth=ADMIN), 400, 422)
    assert error["code"] == "INVALID_INPUT"


@pytest.mark.parametrize("digits", [4_301, 10_000, 50_000])
def test_numbers_with_thousands_of_digits_are_refused(client: TestClient, digits: int) -> None:
    body = b'{"name": "t", "expires_in_days": ' + b"7" * digits + b"}"
    error = _api_error(client.post("/api/v1/me/tokens", content=body, headers=JSON, auth=ADMIN), 400, 422)
    assert error["code"] == "INVALID_INPUT"
    query = client.get("/api/v1/audit", params={"before": "9" * digits}, auth=ADMIN)
    assert _api_error(query, 422)["field"] == "before"


@pytest.mark.parametrize(
    "value", [str(2**63), str(2**64), str(2**63 + 12345), "9" * 30, "-" + str(2**63 + 1)]
)
def test_integers_past_64_bits_never_reach_sql(client: TestClient, value: str) -> None:
    for params in ({"before": value}, {"limit": value}):
        assert _api_error(client.get("/api/v1/audit", params=params, auth=ADMIN), 422)["field"] in params
    body = b'{"name": "t", "expires_in_days": ' + value.encode() + b"}"
    assert _api_error(client.post("/api/v1/me/tokens", content=body, headers=JSON, auth=ADMIN), 422)


@pytest.mark.parametrize(
    "value", ["١٢", "\uff11\uff12", "৩", "12\u0660", "1e3", "0x10", "1.5", "", "twelve", "1\x00", "½"]
)
def test_unicode_digits_and_non_numbers_where_numbers_go(client: TestClient, value: str) -> None:
    assert (
        _api_error(client.get("/api/v1/audit", params={"limit": value}, auth=ADMIN), 422)["field"] == "limit"
    )
    made = client.post("/api/v1/me/tokens", json={"name": "t", "expires_in_days": value}, auth=ADMIN)
    assert _api_error(made, 422)["field"] == "expires_in_days"


def test_every_integer_of_the_schema_is_bounded(client: TestClient) -> None:
    """The class, not the cases: every integer the API accepts has a maximum SQL can store."""
    schema = client.get("/api/v1/openapi.json").json()
    found: list[str] = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "integer" and "/responses/" not in where and "Out" not in where:
                found.append(where)
                assert node.get("maximum", 2**64) <= 2**63 - 1, where
            for key, child in node.items():
                visit(child, f"{where}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                visit(child, f"{where}/{index}")

    visit(schema["paths"], "paths")
    for name, component in schema["components"]["schemas"].items():
        if not name.endswith("Out") and name not in {"ErrorBody", "ErrorDetail"}:
            visit(component, f"components/{name}")
    assert found, "the schema has integer inputs to check"


@pytest.mark.parametrize(
    "header",
    [
        b"Basic \xff\xfe",
        b"Basic " + base64.b64encode(b"\xff:\xfe"),
        b"Bearer \xe2\x82\xac-token",
        b"Basic YWRtaW46\x01",
        b"Basic " + b"A" * 9000,
        b"Bearer " + b"a" * 10_000,
        b"Basic ////",
        b"Basic",
        b"Digest username=x",
    ],
)
def test_bad_authorization_values(client: TestClient, header: bytes) -> None:
    error = _api_error(client.get("/api/v1/me", headers={"authorization": header}), 400, 401)
    assert error["code"] in {"INVALID_INPUT", "UNAUTHORIZED"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cookie", b"dockyard_session=\xff\xfe"),
        ("cookie", b"dockyard_session=" + b"a" * 9000),
        ("x-csrf-token", b"\xff" * 10),
        ("content-type", b"application/json; charset=\xff"),
        ("content-length", b"99999999999999999999999999"),
        ("content-length", b"-1"),
        ("content-length", b"\xd9\xa1"),
    ],
)
def test_bad_header_values(client: TestClient, name: str, value: bytes) -> None:
    response = client.post("/api/v1/me/tokens", content=b"{}", headers={name: value}, auth=ADMIN)
    error = _api_error(response, 400)
    assert error["field"].lower() == name


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/users/a%00b",
        "/api/v1/users/%ff%fe",
        "/api/v1/repositories/a%00b/c",
        "/api/v1/organizations/%E2%80%AE/teams",
        "/api/v1/repositories/acme/public/tags/%00",
        "/api/v1/organizations/acme/teams/%00x",
    ],
)
def test_bad_characters_in_paths(client: TestClient, path: str) -> None:
    assert _api_error(client.get(path, auth=ADMIN), 400, 403, 404, 422)
    assert _api_error(client.delete("/api/v1/me/tokens/" + path[-20:] * 200, auth=ADMIN), 400, 404, 422)


@pytest.mark.parametrize(
    "params",
    [
        {"namespace": "a\x00b"},
        {"namespace": "%"},
        {"q": "\x00"},
        {"q": "x" * 5000},
        {"sort": "name; drop table"},
        {"visibility": "secret"},
        {"after": "\udcff".encode("utf-8", "surrogatepass").decode("latin-1")},
    ],
)
def test_bad_characters_in_queries(client: TestClient, params: dict[str, str]) -> None:
    response = client.get("/api/v1/repositories", params=params, auth=ADMIN)
    assert response.status_code == 200 or _api_error(response, 400, 422)


def test_framework_errors_are_in_the_api_shape(client: TestClient) -> None:
    assert _api_error(client.get("/api/v1/no-such-route"), 404)["code"] == "NOT_FOUND"
    assert _api_error(client.get("/api/v1/"), 404)
    wrong = client.put("/api/v1/me", auth=ADMIN)
    assert _api_error(wrong, 405)["code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in wrong.headers["allow"]
    trace = client.request("TRACE", "/api/v1/users", auth=ADMIN)
    assert _api_error(trace, 405) and {"GET", "POST"} <= set(
        trace.headers["allow"].replace(" ", "").split(",")
    )
    missing = client.post("/api/v1/users", auth=ADMIN)
    assert _api_error(missing, 400, 422)["code"] == "INVALID_INPUT"
    not_json = client.post(
        "/api/v1/users", content=b"name=x", headers={"content-type": "text/plain"}, auth=ADMIN
    )
    assert _api_error(not_json, 400, 415, 422)
    multipart = client.post(
        "/api/v1/vulndb/imports",
        content=b"garbage",
        headers={"content-type": "multipart/form-data"},
        auth=ADMIN,
    )
    assert _api_error(multipart, 400, 422)
