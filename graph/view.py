"""The strawberry view: builds one Context per request from the app's lifespan state."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from graph.websocket import FORBIDDEN, LiveConnectionHandler, Refused
from resolvers.context import Context
from services.auth import Viewer, decode_token
from services.errors import ServiceError, Unauthenticated
from services.presence import ConnectionRefused

BEARER = "bearer "


def viewer_from_header(header: str | None, *, secret: str) -> Viewer | ServiceError | None:
    """The token's viewer, the reason it was refused, or None when no token was sent."""
    if not header:
        return None
    if not header.lower().startswith(BEARER):
        return Unauthenticated("Authorization must be 'Bearer <token>'.")
    try:
        return decode_token(header[len(BEARER) :].strip(), secret=secret)
    except ServiceError as error:
        return error


class GraphQLView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = LiveConnectionHandler

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state: Any = request.state
        settings = state.settings
        return Context(
            settings=settings,
            session_factory=state.session_factory,
            redis=state.redis,
            cache=state.cache,
            hub=state.hub,
            presence=state.presence,
            request_id=state.request_id,
            response=response,
            viewer_or_error=viewer_from_header(
                request.headers.get("authorization"), secret=settings.jwt_secret
            ),
        )

    async def on_ws_connect(self, context: Context) -> dict[str, object]:
        """Authenticate ``connection_init`` and take a lease, or refuse the connection."""
        params = context.connection_params or {}
        header = params.get("authorization", params.get("Authorization"))
        viewer = viewer_from_header(
            header if isinstance(header, str) else None, secret=context.settings.jwt_secret
        )
        if viewer is None:
            raise Refused(FORBIDDEN, 'Forbidden: send {"authorization": "Bearer <token>"}')
        if isinstance(viewer, ServiceError):
            raise Refused(FORBIDDEN, f"Forbidden: {viewer.message}")
        try:
            context.lease = await context.presence.open(viewer)
        except ConnectionRefused as refused:
            raise Refused.over_limit(refused) from None
        context.viewer_or_error = viewer
        return {"pingIntervalSeconds": context.settings.ws_ping_interval_seconds}
