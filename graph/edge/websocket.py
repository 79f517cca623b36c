"""The graphql-transport-ws connection: authenticated in ``connection_init``, kept alive with
pings, and holding a lease (per-user limit, connection rate) until it ends.

Close codes:
- 4401 subscribe before ``connection_init`` was acknowledged (strawberry);
- 4403 no, bad or expired token, also when the token expires while connected or its account's
  password changes (checked every ping interval);
- 4408 no ``connection_init`` in time (strawberry);
- 1013 over the per-user connection limit or the connection rate (try again later);
- a refused handshake (HTTP 403) for a client address already holding
  ``WS_UNAUTHENTICATED_PER_ADDRESS`` connections that have not yet sent ``connection_init``;
- 1001 no ``pong`` within a ping interval;
- 1012 the server is restarting (uvicorn): reconnect, possibly to another process.

An operation past ``WS_OPERATIONS_PER_CONNECTION`` running at once gets an ``error`` message
(TOO_MANY_OPERATIONS) and the connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from datetime import UTC, datetime

from graphql import GraphQLError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    PongMessage,
    SubscribeMessage,
)

from graph.edge.observability import operation_record
from graph.errors import format_error
from resolvers.context import Context
from services.credentials import ensure_current
from services.platform.errors import ServiceError, TooManyOperations, Unauthenticated
from services.platform.logs import current_request
from services.presence import ConnectionRefused

logger = logging.getLogger(__name__)

FORBIDDEN = 4403
TRY_AGAIN_LATER = 1013
GOING_AWAY = 1001
TOKEN_EXPIRED = "Forbidden: the token has expired; log in again."
MAX_REASON_BYTES = 123  # RFC 6455: a close frame's reason fits in 123 bytes


class Refused(Exception):
    """Close the connection with ``code`` instead of acknowledging it."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")

    @classmethod
    def over_limit(cls, refused: ConnectionRefused) -> Refused:
        return cls(TRY_AGAIN_LATER, f"{refused.message} Retry in {refused.retry_after} s.")


class Admissions:
    """The connections of each client address that have not yet been acknowledged, in this
    process: a client may hold only ``limit`` of them, so unauthenticated sockets (each
    waiting up to the ``connection_init`` timeout) cannot pile up."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.waiting: Counter[str] = Counter()

    def admit(self, address: str) -> Admission | None:
        if self.waiting[address] >= self.limit:
            return None
        self.waiting[address] += 1
        return Admission(self, address)


class Admission:
    """One connection's place among its address's waiting ones, given back once."""

    def __init__(self, admissions: Admissions, address: str) -> None:
        self.admissions = admissions
        self.address = address
        self.released = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        waiting = self.admissions.waiting
        waiting[self.address] -= 1
        if waiting[self.address] <= 0:
            del waiting[self.address]


class LiveConnectionHandler(BaseGraphQLTransportWSHandler[Context, None]):
    _keepalive: asyncio.Task[None] | None = None
    _awaiting_pong = False

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except Refused as refused:
            await self.websocket.close(code=refused.code, reason=refused.reason)
            return
        if self.connection_acknowledged:
            admission = getattr(self.context.response.state, "admission", None)
            if admission is not None:
                admission.release()
        if self.connection_acknowledged and self._keepalive is None:
            self._keepalive = asyncio.create_task(self._keep_alive(), name="live-keepalive")

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """As strawberry's, with its error for one operation too many given our shape."""
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and limit is not None
            and message["id"] not in self.operations
            and len(self.operations) >= limit
        ):
            refused = TooManyOperations(
                f"At most {limit} operations may run at once on one connection: complete one "
                "first, or open another connection."
            )
            error = format_error(
                GraphQLError(refused.message, original_error=refused),
                request_id=self.context.request_id,
                production=self.context.settings.production,
            )
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """As strawberry's, with an access record of its own, logged when it ends."""
        async with operation_record(current_request.get()):
            await super().run_operation(operation)

    async def handle_pong(self, message: PongMessage) -> None:
        self._awaiting_pong = False

    async def _keep_alive(self) -> None:
        """Ping every interval; a client that has not answered the last ping is gone, and one
        whose token has expired, or no longer speaks for its account, must log in again."""
        interval = self.context.settings.ws_ping_interval_seconds
        viewer = self.context.viewer
        with contextlib.suppress(WebSocketDisconnected, RuntimeError):
            while True:
                await asyncio.sleep(interval)
                if viewer.expires_at is not None and datetime.now(UTC) >= viewer.expires_at:
                    await self.websocket.close(code=FORBIDDEN, reason=TOKEN_EXPIRED)
                    return
                try:
                    await ensure_current(
                        viewer,
                        cache=self.context.cache,
                        session_factory=self.context.session_factory,
                    )
                except Unauthenticated as ended:
                    await self.websocket.close(code=FORBIDDEN, reason=f"Forbidden: {ended.message}")
                    return
                except ServiceError:
                    pass  # not known now (database and Redis both down): asked again next ping
                except Exception:  # the keep-alive goes on: a dead peer must still be found
                    logger.exception("live: a connection's token could not be checked")
                if self._awaiting_pong:
                    await self.websocket.close(code=GOING_AWAY, reason="Keep-alive timeout")
                    return
                self._awaiting_pong = True
                await self.send_message({"type": "ping"})

    async def shutdown(self) -> None:
        """Stop pinging, end every operation (their listeners go with them), release the lease."""
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
        try:
            await super().shutdown()
        finally:
            lease, self.context.lease = self.context.lease, None
            if lease is not None:
                await self.context.presence.close(lease)
