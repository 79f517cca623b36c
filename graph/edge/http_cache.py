"""HTTP caching of GraphQL GETs (persisted queries by hash): what a cache may keep, and 304s.

Every answer depends on the token that asked, so a shared cache (a CDN, a proxy) never stores
one: ``private``, and ``Vary: Authorization``. The browser keeps it but revalidates each time
(``no-cache``) with the ETag of the response's ``data``, and gets a body-less 304 while the data
is unchanged; extensions (freshness counters) may differ and do not count. Answers with errors
are never stored.
"""

from __future__ import annotations

import hashlib

import orjson
from starlette.requests import Request
from starlette.responses import Response

# What a 304 repeats of the 200 it stands for (RFC 9110 15.4.5).
KEPT_HEADERS = ("cache-control", "vary", "etag")


def etag_of(body: bytes) -> str | None:
    """A weak ETag of the ``data`` of an answer without errors; None for any other answer."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict) or document.get("errors") or "data" not in document:
        return None
    return 'W/"' + hashlib.sha256(orjson.dumps(document["data"])).hexdigest()[:32] + '"'


def cache_policy(request: Request, response: Response) -> Response:
    """``response`` to a GraphQL GET with its cache headers, or a 304 when the client's copy
    (``If-None-Match``) is still current."""
    etag = etag_of(bytes(response.body)) if response.status_code == 200 else None
    if etag is None:
        response.headers["cache-control"] = "no-store"
        return response
    response.headers["cache-control"] = "private, no-cache"
    response.headers["vary"] = "Authorization"
    response.headers["etag"] = etag
    sent = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
    if etag not in sent and "*" not in sent:
        return response
    return Response(
        status_code=304,
        headers={name: value for name, value in response.headers.items() if name in KEPT_HEADERS},
    )
