"""``GET /files/<key>``: every download link this API signs is served here, and audited."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from graph.edge.view import request_error, request_origin
from services.downloads import REDIRECT_LIFETIME, Links, record_download
from services.platform.db import DatabaseUnavailable
from services.platform.errors import ErrorCode
from services.platform.storage import LocalStore, S3Store, StorageUnavailable, content_disposition

logger = logging.getLogger(__name__)
# A downloaded certificate is shown as what it is and never run as part of this site.
DOWNLOAD_HEADERS = {
    "cache-control": "private, no-store",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
}


async def download(request: Request) -> Response:
    """The object a signed link names: 403 when the link was altered or has expired, 404
    when the object is gone (quarantined since, say). A GET is audited (FILE_DOWNLOAD) before
    anything is served, and refused (503) when the entry cannot be written."""
    state: Any = request.state
    store: LocalStore | S3Store = state.store
    links: Links = state.links
    key = request.path_params["key"]
    grant = links.verify(key, request.url.query)
    if grant is None:
        return _refusal(request, 403, ErrorCode.FORBIDDEN, "This link was altered or has expired.")
    try:
        found = await store.exists(key)
    except StorageUnavailable:
        return _refusal(
            request, 503, ErrorCode.STORAGE_UNAVAILABLE, "The file store is unavailable."
        )
    if not found:
        return _refusal(request, 404, ErrorCode.NOT_FOUND, "This file is no longer available.")
    if request.method == "GET":
        try:
            await record_download(
                state.session_factory, key=key, grant=grant, origin=request_origin(request)
            )
        except (OSError, SQLAlchemyError, DatabaseUnavailable):
            logger.warning("download of %s refused: its audit entry was not written", key)
            return _refusal(
                request, 503, ErrorCode.SERVICE_UNAVAILABLE, "Downloads are unavailable."
            )
    if isinstance(store, LocalStore):
        return FileResponse(
            store.path(key),
            media_type=grant.download.content_type,
            headers={
                **DOWNLOAD_HEADERS,
                "content-disposition": content_disposition(grant.download.file_name),
            },
        )
    return RedirectResponse(
        store.signed_url(key, download=grant.download, expires_in=REDIRECT_LIFETIME),
        status_code=303,
        headers={"cache-control": "no-store"},
    )


def _refusal(request: Request, status: int, code: ErrorCode, message: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [request_error(message, request.scope, code)]},
        status_code=status,
        headers={"cache-control": "no-store"},
    )
