"""The interactive API docs (Swagger UI), served with their assets from the Python package: no CDN, so the
page works on a network without internet access."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from dockyard.auth.errors import NotFound

# Swagger UI 5 (OpenAPI 3.1), as shipped in the fastapi-offline wheel.
_ASSETS = Path(str(files("fastapi_offline") / "static"))
_SERVED = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs_page(request: Request) -> HTMLResponse:
    """Swagger UI for this API, every asset loaded from this server."""
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title="Dockyard management API",
        swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{root}/docs/assets/favicon.png",
        # The default validator badge is an image from validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
    )


@router.get("/docs/assets/{asset}")
def docs_asset(asset: str) -> FileResponse:
    """One of Swagger UI's files."""
    media_type = _SERVED.get(asset)
    if media_type is None:
        raise NotFound(f"no docs asset named {asset}")
    return FileResponse(
        _ASSETS / asset, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
    )
