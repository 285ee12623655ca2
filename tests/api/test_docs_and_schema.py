"""The interactive docs work offline (every asset from this server), and the schema tells clients how to
authenticate, what every error looks like, and which statuses each route may answer."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from auth_support import World


def test_docs_reference_only_same_origin_assets_and_those_are_served(world: World) -> None:
    page = world.client.get("/api/v1/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page.text)
    references += re.findall(r"""url\s*:\s*["']([^"']+)["']""", page.text)
    assert len(references) >= 4, references
    for reference in references:
        absolute = urljoin("http://testserver/api/v1/docs", reference)
        parts = urlsplit(absolute)
        assert parts.netloc == "testserver", f"{reference} leaves the origin"
        asset = world.client.get(parts.path)
        assert asset.status_code == 200, reference
        assert len(asset.content) > 10
    assert "cdn" not in page.text.lower() and "validator.swagger.io" not in page.text
    script = world.client.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert script.headers["content-type"].startswith("text/javascript") and len(script.content) > 100_000
    # Swagger UI 5 renders OpenAPI 3.1, which FastAPI writes.
    assert world.client.get("/api/v1/openapi.json").json()["openapi"].startswith("3.1")


def test_only_the_shipped_assets_are_served(world: World) -> None:
    for name in ("../app.py", "..%2F..%2Fpyproject.toml", "redoc.standalone.js", "index.html", "%00"):
        response = world.client.get(f"/api/v1/docs/assets/{name}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"


def test_schema_has_security_schemes_and_per_route_requirements(world: World) -> None:
    schema = world.client.get("/api/v1/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["basic"] == {**schemes["basic"], "type": "http", "scheme": "basic"}
    assert schemes["token"]["scheme"] == "bearer"
    assert schemes["session"] == {**schemes["session"], "type": "apiKey", "in": "cookie"}
    me = schema["paths"]["/me"]
    assert {"basic": []} in me["get"]["security"] and {} not in me["get"]["security"]
    assert {"session": [], "csrf": []} in me["patch"]["security"]
    # Public repositories may be read anonymously: the empty requirement says so.
    assert {} in schema["paths"]["/repositories"]["get"]["security"]
    assert "security" not in schema["paths"]["/session"]["post"]


def test_every_operation_documents_its_errors_with_the_error_body(world: World) -> None:
    schema = world.client.get("/api/v1/openapi.json").json()
    error_ref = "#/components/schemas/ErrorBody"
    assert set(schema["components"]["schemas"]["ErrorDetail"]["properties"]) == {"code", "message", "field"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status in ("400", "401", "422", "503"):
                assert status in responses, (method, path, status)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    body = response["content"]["application/json"]["schema"]
                    assert body == {"$ref": error_ref}, (method, path, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_times_are_rfc3339_utc(world: World) -> None:
    admin = ("admin", "admin-password-1")
    made = world.client.post("/api/v1/me/tokens", json={"name": "t", "expires_in_days": 2}, auth=admin).json()
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
    assert stamp.match(made["created_at"]) and stamp.match(made["expires_at"])
    user = world.client.get("/api/v1/me", auth=admin).json()
    assert stamp.match(user["created_at"])
    events = world.client.get("/api/v1/audit", auth=admin).json()
    assert events and all(stamp.match(event["at"]) for event in events)
    repository = world.client.get("/api/v1/repositories/acme/public", auth=admin).json()
    assert stamp.match(repository["created_at"])
