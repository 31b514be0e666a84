"""Serve the built web UI (``web/`` built by Vite into ``telemetra/web/static/``).

The app's own pages are a fixed list of paths answered with ``index.html`` (the router in the
browser draws them), so nothing here can shadow ``/api/v1``, ``/docs``, ``/health`` or
``/metrics``, and an unknown path stays a 404. The built assets carry a content hash in their
names, so they are cached for a year; ``index.html`` is revalidated on every load. Without a
build, the pages answer 503 with a page that says how to make one, not a bare 404.
"""

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(str(files("telemetra.web") / "static"))
ASSETS_URL = "/assets"
# The browser's router (web/src/main.js) draws these; keep the two lists in step.
PAGES = ("/", "/login", "/devices", "/devices/{device_id:int}", "/sites", "/alerts",
         "/readings", "/dashboard")
IMMUTABLE = "public, max-age=31536000, immutable"

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Telemetra: web UI not built</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;
padding: 0 1rem">
<h1>The web UI is not built yet</h1>
<p>This Telemetra runs from a source checkout whose web UI has not been built. In the
repository, run</p>
<pre>make web</pre>
<p>(it needs Node.js and npm), then reload this page. <code>make run</code> builds it too.</p>
<p>The API works meanwhile: <a href="/docs">/docs</a>, <a href="/api/v1">/api/v1</a>.</p>
</body></html>
"""


class HashedAssets(StaticFiles):
    """Vite's hashed files: a name never changes content, so browsers keep them a year.
    Before a build (no folder yet) every asset is a 404, and a later build is served."""

    async def check_config(self) -> None:
        if Path(self.directory).is_dir():
            await super().check_config()

    async def get_response(self, path: str, scope: Scope) -> Response:
        if not Path(self.directory).is_dir():
            raise HTTPException(status_code=404)
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["cache-control"] = IMMUTABLE
        return response


def install_web(app: FastAPI, static: Path = STATIC) -> None:
    """Serve the web UI of ``static`` (a Vite build) at its pages and ``/assets``."""
    app.mount(ASSETS_URL, HashedAssets(directory=static / "assets", check_dir=False),
              name="web-assets")
    index = static / "index.html"

    async def page() -> Response:
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503,
                                headers={"cache-control": "no-store"})
        return FileResponse(index, media_type="text/html",
                            headers={"cache-control": "no-cache"})

    for path in PAGES:
        app.add_api_route(path, page, methods=["GET", "HEAD"], include_in_schema=False,
                          name=f"web page {path}")
