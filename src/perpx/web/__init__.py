"""The web trading page that `perpx serve` serves at `/` (static files, no build step).

The page is plain HTML, CSS and ES modules in `static/`; it trades through the public Bybit V5
REST and WebSocket API the server already serves (signing private requests in the browser),
and reads perpx's own public routes for what Bybit's API lacks (`/perpx/calc/order`,
`/perpx/status`, and in demo mode `/perpx/demo/account`); this module serves the files only.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PREFIX = "/web/"


async def index(request: Request) -> Response:
    """Serve the page itself (its scripts and styles come from `/web/`)."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def web_routes() -> list[BaseRoute]:
    """`/` and `/web/...`: neither shadows a `/v5` route."""
    return [Route("/", index, methods=["GET", "HEAD"]),
            Mount(PREFIX.rstrip("/"), app=StaticFiles(directory=STATIC), name="web")]


def is_web_path(path: str) -> bool:
    """Whether `path` is the page's (checked before the REST fast path, cheaply)."""
    return path == "/" or path.startswith(PREFIX)
