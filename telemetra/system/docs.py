"""``/docs`` (Swagger UI) and ``/redoc`` from local assets, so they work without internet
and under a same-origin Content-Security-Policy (DESIGN.md, The web UI).

The assets are fastapi-offline's (a pinned package: Swagger UI's bundle and stylesheet,
ReDoc's standalone bundle, a favicon), served at ``/static/docs``. FastAPI's own page
builders write the pages; each page's inline script is allowed by its hash in the page's
own policy, and ReDoc's web worker (a blob: URL) by ``worker-src``.
"""

import base64
import hashlib
import re
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from telemetra.kit.middleware import CONTENT_SECURITY_POLICY

ASSETS_URL = "/static/docs"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def with_own_policy(page: HTMLResponse, workers: bool = False) -> HTMLResponse:
    """The page with a policy that allows exactly its inline scripts (by their hashes)."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'"
                      for s in _INLINE_SCRIPT.findall(page.body))
    policy = CONTENT_SECURITY_POLICY.replace("script-src 'self'", f"script-src 'self' {hashes}")
    if workers:
        policy += "; worker-src 'self' blob:"
    page.headers["content-security-policy"] = policy
    return page


def install_docs(app: FastAPI) -> None:
    """Serve the docs pages of ``app`` (built with ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS_URL, StaticFiles(directory=str(files("fastapi_offline") / "static")),
              name="docs-assets")
    redirect_url = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return with_own_policy(get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters))

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return with_own_policy(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return with_own_policy(get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png", with_google_fonts=False),
            workers=True)
