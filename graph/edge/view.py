"""The strawberry view: builds one Context per request from the app's lifespan state."""

from __future__ import annotations

import functools
import ipaddress
import re
from datetime import UTC, datetime
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult

from graph.edge.bodies import BodyRefused, drain, guarded
from graph.edge.http_cache import cache_policy
from graph.edge.observability import note_viewer
from graph.edge.page import GRAPHIQL_ASSETS, GRAPHIQL_DIR
from graph.edge.websocket import (
    FORBIDDEN,
    TRY_AGAIN_LATER,
    Admissions,
    LiveConnectionHandler,
    Refused,
)
from resolvers.context import Context, CostBudget
from services.audit import Origin
from services.auth import TokenVerifier, Viewer
from services.platform.errors import ErrorCode, ServiceError, Unauthenticated
from services.platform.telemetry import GRAPHQL_ERRORS
from services.presence import ConnectionRefused
from services.trusted_documents import CLIENT_HEADER

BEARER = "bearer "
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
CDN = "https://unpkg.com/"
JSON = "application/json"
# GraphQL over HTTP's own media type: with it, a request that never ran (a document that does
# not parse or validate, variables that do not coerce) is a 400 with no ``data`` entry.
GRAPHQL_RESPONSE = "application/graphql-response+json"
REQUEST_ERROR_CODES = frozenset(
    {"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", ErrorCode.VALIDATION_ERROR.value}
)


def prefers_graphql_response(accept: str | None) -> bool:
    """Whether ``accept`` asks for application/graphql-response+json at least as much as for
    application/json (a missing header, or ``*/*``, keeps application/json)."""
    quality = {GRAPHQL_RESPONSE: 0.0, JSON: 0.0}
    for item in (accept or "").split(","):
        media, *parameters = (part.strip() for part in item.split(";"))
        if media.lower() not in quality:
            continue
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        quality[media.lower()] = max(quality[media.lower()], weight)
    return quality[GRAPHQL_RESPONSE] > 0 and quality[GRAPHQL_RESPONSE] >= quality[JSON]


def is_request_error(result: ExecutionResult) -> bool:
    """The operation never ran: its document or variables were refused (no error has a path,
    and no data came of it). Refusals of the service (a persisted query not found, a rate
    limit) are not among them: they answer as they always have."""
    errors = result.errors or []
    return (
        bool(errors)
        and result.data is None
        and all(
            error.path is None and (error.extensions or {}).get("code") in REQUEST_ERROR_CODES
            for error in errors
        )
    )


def viewer_from_header(
    header: str | None, *, tokens: TokenVerifier
) -> Viewer | ServiceError | None:
    """The token's viewer, the reason it was refused, or None when no token was sent."""
    if not header:
        return None
    if not header.lower().startswith(BEARER):
        return Unauthenticated("Authorization must be 'Bearer <token>'.")
    try:
        return tokens.verify(header[len(BEARER) :].strip())
    except ServiceError as error:
        return error


def request_origin(request: Request | WebSocket) -> Origin:
    """Where a request came from, for the audit log and the per-address limits."""
    peer = request.client.host if request.client else None
    settings = getattr(request.state, "settings", None)
    proxies = trusted_networks(settings.trusted_proxies if settings is not None else ())
    address = client_address(peer, request.headers.get("x-forwarded-for"), proxies)
    return Origin.of(address, request.headers.get("user-agent"))


@functools.cache
def trusted_networks(proxies: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def client_address(
    peer: str | None, forwarded_for: str | None, proxies: tuple[IPNetwork, ...]
) -> str | None:
    """The client's address: the connection's, unless it comes from a trusted proxy; then
    the nearest address in X-Forwarded-For that is not one of those proxies (the ones further
    left were written by the client and prove nothing)."""
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    address = peer
    while address is not None and is_trusted(address, proxies) and hops:
        address = hops.pop()
    return address


def is_trusted(address: str, proxies: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def request_error(
    message: str, scope: Scope, code: ErrorCode = ErrorCode.BAD_REQUEST, field: str | None = None
) -> dict[str, object]:
    """The error body of a request refused whole, shaped as a GraphQL error."""
    state = scope.get("state", {})
    extensions: dict[str, object] = {"code": code.value}
    if field is not None:
        extensions["field"] = field
    extensions.update(
        requestId=state.get("request_id", "unknown"), timestamp=datetime.now(UTC).isoformat()
    )
    GRAPHQL_ERRORS.labels(code.value).inc()
    return {"message": message, "extensions": extensions}


def is_wrong_method(refused: HTTPException) -> bool:
    """Refused because the operation's type may not travel by this method."""
    return isinstance(refused.__cause__, InvalidOperationTypeError)


class GraphQLView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = LiveConnectionHandler

    def __init__(self, *args: Any, admissions: Admissions, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admissions = admissions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As strawberry's, except that a request refused whole (bad JSON, a mutation over GET,
        a subscription over HTTP, an upload without its CSRF header, a body too large) is answered
        with a GraphQL error body, not plain text; and that a client preferring
        application/graphql-response+json gets it, with a 400 for a request that never ran."""
        if scope["type"] == "websocket":
            await self.live(scope, receive, send)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = None
        modern = prefers_graphql_response(Headers(scope=scope).get("accept"))
        state = scope.setdefault("state", {})
        state.update(graphql_response=modern, results=[])
        try:
            limit = state["settings"].max_body_bytes
            request = Request(scope=scope, receive=guarded(scope, receive, max_body_bytes=limit))
            response = await self.run(request)
            if request.method == "GET" and response.media_type == JSON:
                response = cache_policy(request, response)
            # One operation (not a batch) that never ran.
            if modern and state["results"] == [True] and response.status_code == 200:
                response.status_code = 400
        except HTTPException as refused:
            status = refused.status_code
            headers = None
            if modern and scope["method"] == "GET" and is_wrong_method(refused):
                status, headers = 405, {"allow": "POST"}  # a mutation over GET
            response = JSONResponse(
                {"errors": [request_error(refused.reason, scope)]},
                status_code=status,
                headers=headers,
            )
        except BodyRefused as refused:
            code = ErrorCode.VALIDATION_ERROR if refused.field else ErrorCode.BAD_REQUEST
            read_to_end = await drain(scope, receive, received=refused.received)
            response = JSONResponse(
                {"errors": [request_error(refused.message, scope, code, refused.field)]},
                status_code=refused.status_code,
                # The rest of the body was not read: the connection cannot be reused.
                headers=None if read_to_end else {"connection": "close"},
            )
        finally:
            if request is not None:
                await request.close()  # the uploaded files' temporary copies
        if modern and response.media_type == JSON:
            response.media_type = GRAPHQL_RESPONSE
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE}; charset=utf-8"
        await response(scope, receive, send)

    async def live(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket, admitted only while its address holds fewer unacknowledged ones than
        the limit (refused at the handshake otherwise); its place is given back once it is
        acknowledged or ends."""
        origin = request_origin(WebSocket(scope, receive, send))
        admission = self.admissions.admit(origin.ip_address or "unknown")
        if admission is None:
            if (await receive())["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": TRY_AGAIN_LATER})
            return
        scope.setdefault("state", {})["admission"] = admission
        try:
            await super().__call__(scope, receive, send)
        finally:
            admission.release()

    async def process_result(self, request: Request, result: ExecutionResult) -> Any:
        """As strawberry's; when the client asked for application/graphql-response+json, a
        request that never ran has no ``data`` entry (and answers 400, see ``__call__``)."""
        processed = await super().process_result(request, result)
        refused = request.state.graphql_response and is_request_error(result)
        if refused:
            processed.pop("data", None)
        request.state.results.append(refused)
        return processed

    def encode_json(self, data: object) -> str:
        """orjson, about four times faster than the json module on a dashboard's answer. Text,
        not bytes: graphql-transport-ws messages must travel in text frames."""
        return orjson.dumps(data).decode()

    @functools.cached_property
    def graphql_ide_html(self) -> str:
        """Strawberry's GraphiQL page, loading its pinned scripts and styles from this app
        (``/graphiql/``, graph/edge/page.py) instead of unpkg: it works offline, and the
        integrity hashes it pins still hold (scripts/vendor_graphiql.py copies the files). A
        file this app lacks (strawberry upgraded, its pins not copied yet) stays on unpkg, so
        the page still works online; tests/graph/test_graphiql.py says to copy them."""

        def local(found: re.Match[str]) -> str:
            path = found[1]
            return GRAPHIQL_ASSETS + path if (GRAPHIQL_DIR / path).is_file() else found[0]

        return re.sub(re.escape(CDN) + r'([^"]+)', local, super().graphql_ide_html)

    def should_render_graphql_ide(self, request: Any) -> bool:
        """As strawberry's, except that a GET naming a persisted query (no ``query``, only
        ``extensions``) is an operation, not a browser asking for GraphiQL."""
        return super().should_render_graphql_ide(request) and (
            request.query_params.get("extensions") is None
        )

    async def parse_multipart(self, request: Any) -> dict[str, str]:
        """As strawberry's, once the map is one that names each file once, for a variable of
        its own: files mapped to one variable (the last would win) or sent unnamed are
        refused, not dropped."""
        form = await request.get_form_data()  # Starlette keeps the parsed form: read once
        raw = form.form.get("map", "{}")
        files_map = self.parse_json(raw) if isinstance(raw, bytes | str) else raw
        if not isinstance(files_map, dict) or not all(
            isinstance(paths, list) and all(isinstance(path, str) for path in paths)
            for paths in files_map.values()
        ):
            raise HTTPException(400, "The multipart map must name, for each file, its variables.")
        paths = [path for paths in files_map.values() for path in paths]
        if len(paths) != len(set(paths)):
            raise HTTPException(400, "Each variable takes one file: the map sends two to one.")
        sent = [name for name, value in form.files.items() if not isinstance(value, str)]
        if len(sent) > len(files_map):
            raise HTTPException(400, "The request sends files the multipart map does not name.")
        return await super().parse_multipart(request)

    def _validate_batch_request(self, request_data: list[Any], protocol: Any) -> None:
        """Strawberry's check (batching on, at most ``query_max_batch`` operations), and an
        empty batch refused rather than answered with an empty list."""
        if not request_data:
            raise HTTPException(400, "The batch holds no operation.")
        super()._validate_batch_request(request_data, protocol)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state: Any = request.state
        settings = state.settings
        viewer = viewer_from_header(request.headers.get("authorization"), tokens=state.tokens)
        note_viewer(viewer)
        return Context(
            settings=settings,
            session_factory=state.session_factory,
            redis=state.redis,
            cache=state.cache,
            hub=state.hub,
            presence=state.presence,
            store=state.store,
            links=state.links,
            limiter=state.limiter,
            persisted=state.persisted,
            trusted=state.trusted,
            resources=state.resources,
            tokens=state.tokens,
            responses=state.responses,
            client_name=request.headers.get(CLIENT_HEADER),
            request_id=state.request_id,
            response=response,
            origin=request_origin(request),
            public_url=(settings.public_url or str(request.base_url).rstrip("/")) + "/",
            viewer_or_error=viewer,
            cost_budget=CostBudget(settings.query_max_cost)
            if isinstance(request, Request)
            else None,
        )

    async def on_ws_connect(self, context: Context) -> dict[str, object]:
        """Authenticate ``connection_init`` and take a lease, or refuse the connection."""
        params = context.connection_params or {}
        header = params.get("authorization", params.get("Authorization"))
        context.viewer_or_error = viewer_from_header(
            header if isinstance(header, str) else None, tokens=context.tokens
        )
        await context.confirm_viewer()
        viewer = context.viewer_or_error
        if viewer is None:
            raise Refused(FORBIDDEN, 'Forbidden: send {"authorization": "Bearer <token>"}')
        if isinstance(viewer, ServiceError):
            raise Refused(FORBIDDEN, f"Forbidden: {viewer.message}")
        try:
            context.lease = await context.presence.open(viewer)
        except ConnectionRefused as refused:
            raise Refused.over_limit(refused) from None
        note_viewer(viewer)
        return {"pingIntervalSeconds": context.settings.ws_ping_interval_seconds}
