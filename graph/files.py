"""``GET /files/<key>``: what the local store's signed links serve."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from graph.view import request_error
from services.errors import ErrorCode
from services.storage import LocalStore, content_disposition

# A downloaded certificate is shown as what it is and never run as part of this site.
DOWNLOAD_HEADERS = {
    "cache-control": "private, no-store",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
}


async def download(request: Request) -> Response:
    """The object a signed link names: 403 when the link was altered or has expired, 404
    when the object is gone (quarantined since, say) or the files are not on local disk."""
    state: Any = request.state
    store = state.store
    key = request.path_params["key"]
    if not isinstance(store, LocalStore):
        return _refusal(request, 404, ErrorCode.NOT_FOUND, "Files are not served here.")
    grant = store.verify(key, request.url.query)
    if grant is None:
        return _refusal(request, 403, ErrorCode.FORBIDDEN, "This link was altered or has expired.")
    path = store.path(key)
    if not path.is_file():
        return _refusal(request, 404, ErrorCode.NOT_FOUND, "This file is no longer available.")
    return FileResponse(
        path,
        media_type=grant.content_type,
        headers={**DOWNLOAD_HEADERS, "content-disposition": content_disposition(grant.file_name)},
    )


def _refusal(request: Request, status: int, code: ErrorCode, message: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [request_error(message, request.scope, code)]},
        status_code=status,
        headers={"cache-control": "no-store"},
    )
