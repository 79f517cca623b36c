"""The reference pages (``graph/web/``): plain HTML, CSS and ES modules, no build step.

The student page is served at ``/`` and the teacher's register at ``/teacher``, their shared files
under ``/web/`` and the service worker at ``/sw.js`` (a worker controls only the paths below its
own); GraphiQL's pinned scripts and styles under ``/graphiql/``. Every response of the pages
carries a Content-Security-Policy allowing their own origin only: no inline script or style, no
third-party code, nothing fetched from elsewhere, no framing.
"""

from __future__ import annotations

from pathlib import Path

from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, request_response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
# GraphiQL's scripts and styles, at the paths unpkg serves them (scripts/vendor_graphiql.py):
# third-party files, kept apart from the pages' own.
GRAPHIQL_DIR = Path(__file__).resolve().parents[1] / "vendor" / "graphiql"
GRAPHIQL_ASSETS = "/graphiql/"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    # Revalidated on each load (an unchanged file is a 304), so a deploy shows at once.
    "cache-control": "no-cache",
}


def secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


class PageFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        return secured(await super().get_response(path, scope))


class VersionedFiles(StaticFiles):
    """Files whose path names their version: a browser keeps them for a year."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["cache-control"] = "public, max-age=31536000, immutable"
        response.headers["x-content-type-options"] = "nosniff"
        return response


def page_routes() -> list[BaseRoute]:
    """The pages' routes, gzipped for clients that accept it (its text shrinks to a quarter)."""
    files = PageFiles(directory=WEB_DIR)

    def one_file(name: str) -> ASGIApp:
        async def endpoint(request: Request) -> Response:
            return await files.get_response(name, request.scope)

        return GZipMiddleware(request_response(endpoint))

    return [
        Route("/", one_file("index.html"), methods=["GET", "HEAD"]),
        Route("/teacher", one_file("teacher.html"), methods=["GET", "HEAD"]),
        Route("/sw.js", one_file("sw.js"), methods=["GET", "HEAD"]),
        Mount("/web", GZipMiddleware(files), name="web"),
        Mount(
            GRAPHIQL_ASSETS.rstrip("/"),
            GZipMiddleware(VersionedFiles(directory=GRAPHIQL_DIR)),
            name="graphiql",
        ),
    ]
