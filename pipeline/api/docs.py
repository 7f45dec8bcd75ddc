"""GET /docs: Swagger UI served from the package's own copy, so the page works offline.

FastAPI's default /docs and /redoc pages load their scripts from a CDN: with no network they
are blank. The Swagger UI build (npm swagger-ui-dist, re-vendored by docs/vendor/update.py)
ships as package data under pipeline/api/static/swagger-ui/; /redoc is turned off rather than
vendoring a second renderer of the same document.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

ASSETS_DIR = Path(__file__).parent / "static" / "swagger-ui"
ASSETS_URL = "/docs/assets"
# The files the page loads, and their types (nothing else under static/ is served).
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


def install(app: FastAPI, docs_url: str = "/docs") -> set[str]:
    """Add /docs and its assets to `app` (built with docs_url=None); return their paths,
    which need no API key, like the OpenAPI document they render."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} - Swagger UI"

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
            # The default validator badge calls validator.swagger.io: nothing leaves the host.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(ASSETS_URL + "/{name}", include_in_schema=False)
    def swagger_asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise HTTPException(404, f"no documentation asset {name!r}")
        return FileResponse(ASSETS_DIR / name, media_type=ASSETS[name])

    return {docs_url, *(f"{ASSETS_URL}/{name}" for name in ASSETS)}
