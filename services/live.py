"""Live events: what changed, published on tenant-scoped Redis channels, and the hub that fans
them out to this process's listeners.

| channel                             | event             | published by                      |
| ----------------------------------- | ----------------- | --------------------------------- |
| ``tenant:{t}:live:classroom:<id>``  | MarksEvent        | markAttendance, in any process    |
| ``tenant:{t}:live:user:<id>``       | NotificationEvent | the alert job, in a worker        |
| ``tenant:{t}:live:statistics``      | StatisticsEvent   | the statistics refresh, a worker  |

A process holds one Redis connection for all its subscriptions and subscribes to a channel once,
however many local listeners it has; the last listener to leave unsubscribes. Each message is
decoded once per process and handed to every local listener's bounded queue; a listener too
slow to keep up is dropped (``ListenerOverflow``) rather than slowing the others.

Redis pub/sub delivers at most once: a message published while the connection is down is
lost. After a reconnection every listener therefore receives ``RESYNC`` and re-reads the state
it shows (a dashboard is recomputed; attendance events of the gap are not replayed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from services.dashboards import AttendanceEntry
from services.models import Notification, NotificationType, Severity
from services.platform.attributes import from_attributes
from services.platform.cache import tenant_key
from services.platform.codec import decode, encode
from services.platform.errors import ErrorCode, ServiceError
from services.platform.telemetry import REDIS_ERRORS

T = TypeVar("T")
logger = logging.getLogger(__name__)

LISTENER_QUEUE_SIZE = 256
# State re-read after events, at most this many at once per process: a statistics refresh
# wakes every dashboard subscriber of the tenant together, and requests must not queue behind
# them for the event loop and the pool.
REFRESH_CONCURRENCY = 4
READ_TIMEOUT_SECONDS = 1.0
# How long ``listen`` waits for Redis to confirm a new SUBSCRIBE; past it the listener is
# handed out anyway (it gets RESYNC if the connection turns out to be lost).
CONFIRM_TIMEOUT_SECONDS = 5.0
RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class MarksEvent:
    """Records of one classroom and subject that changed together: one markAttendance call,
    or the absences an approved medical certificate excused."""

    classroom_id: uuid.UUID
    subject_id: uuid.UUID
    subject_name: str
    records: list[AttendanceEntry]
    committed_at: datetime

    @cached_property
    def by_student(self) -> dict[uuid.UUID, list[AttendanceEntry]]:
        """Built once per process: each student's listener looks up its records."""
        found: dict[uuid.UUID, list[AttendanceEntry]] = {}
        for record in self.records:
            found.setdefault(record.student_id, []).append(record)
        return found


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    """An in-app notification as it was stored."""

    id: uuid.UUID
    user_id: uuid.UUID
    type: NotificationType
    severity: Severity
    title: str
    message: str
    action_url: str | None
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, notification: Notification) -> NotificationEvent:
        return from_attributes(cls, notification)


@dataclass(frozen=True, slots=True)
class StatisticsEvent:
    """A refresh renewed the tenant's class averages and ranks."""

    refreshed_at: datetime


class Resync:
    """Events may have been lost (the hub reconnected): re-read the state you show."""


RESYNC = Resync()


@dataclass(frozen=True, slots=True)
class Channel(Generic[T]):
    name: str
    event_type: type[T]


def classroom_channel(tenant_id: uuid.UUID, classroom_id: uuid.UUID) -> Channel[MarksEvent]:
    return Channel(tenant_key(tenant_id, "live", "classroom", str(classroom_id)), MarksEvent)


def user_channel(tenant_id: uuid.UUID, user_id: uuid.UUID) -> Channel[NotificationEvent]:
    return Channel(tenant_key(tenant_id, "live", "user", str(user_id)), NotificationEvent)


def statistics_channel(tenant_id: uuid.UUID) -> Channel[StatisticsEvent]:
    return Channel(tenant_key(tenant_id, "live", "statistics"), StatisticsEvent)


async def publish(redis: Redis, channel: Channel[T], event: T) -> int | None:
    """Publish ``event``; how many processes listen, or None when Redis refused.

    Never raises: what the event reports has already committed, and losing a live update
    must not turn a successful write into an error.
    """
    try:
        receivers: int = await redis.publish(channel.name, encode(event))
    except (RedisError, OSError) as error:
        logger.warning("live event not published on %s: %s", channel.name, error)
        return None
    return receivers


async def publish_notifications(
    redis: Redis, *, tenant_id: uuid.UUID, notifications: Sequence[Notification]
) -> None:
    """Push the in-app ones to their users' live connections."""
    for notification in notifications:
        if notification.in_app:
            await publish(
                redis,
                user_channel(tenant_id, notification.user_id),
                NotificationEvent.of(notification),
            )


class ListenerOverflow(ServiceError):
    """The listener fell too far behind and was dropped (the client may subscribe again)."""

    code = ErrorCode.SERVICE_UNAVAILABLE


_OVERFLOW = object()


class Listener:
    """One subscriber's queue of events (and ``RESYNC``) from its channels."""

    def __init__(self, channels: Sequence[Channel[Any]], size: int) -> None:
        self.channels = tuple(channels)
        self._queue: asyncio.Queue[object] = asyncio.Queue(size)
        self.dropped = False

    def offer(self, event: object) -> bool:
        """Queue ``event`` without waiting; on overflow drop this listener instead."""
        if self.dropped:
            return False
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(_OVERFLOW)
            return False
        return True

    async def next(self) -> object:
        return self._checked(await self._queue.get())

    def pending(self) -> list[object]:
        """Every event already queued, taken without waiting: a subscriber about to re-read
        its state takes them too, since that read covers them all."""
        events: list[object] = []
        while not self._queue.empty():
            events.append(self._checked(self._queue.get_nowait()))
        return events

    @staticmethod
    def _checked(event: object) -> object:
        if event is _OVERFLOW:
            raise ListenerOverflow("Too many undelivered events: the subscription was dropped.")
        return event


@dataclass
class HubStats:
    delivered: int = 0
    dropped: int = 0
    reconnects: int = 0
    undecodable: int = 0


@dataclass
class Hub:
    """This process's subscriptions: one Redis connection, one SUBSCRIBE per channel."""

    redis: Redis
    queue_size: int = LISTENER_QUEUE_SIZE
    stats: HubStats = field(default_factory=HubStats)
    connected: bool = True
    # Held by a subscriber while it re-reads its state after events (see REFRESH_CONCURRENCY).
    refreshes: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(REFRESH_CONCURRENCY)
    )
    _listeners: dict[str, set[Listener]] = field(default_factory=dict)
    _types: dict[str, type[Any]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None
    _resubscribe: bool = False
    # SUBSCRIBEs sent and not yet confirmed: until Redis confirms one, a message published
    # to its channel may not reach this process.
    _unconfirmed: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._pubsub: PubSub = self.redis.pubsub()

    @contextlib.asynccontextmanager
    async def listen(self, channels: Sequence[Channel[Any]]) -> AsyncIterator[Listener]:
        """A listener on ``channels`` until the block ends (however it ends). Its channels are
        subscribed when it is handed out: what is published from then on reaches it, so state
        read after ``listen`` returns misses no change."""
        listener = Listener(channels, self.queue_size)
        try:
            await self._add(listener)
            yield listener
        finally:
            await self._remove(listener)

    @property
    def channel_count(self) -> int:
        return len(self._listeners)

    @property
    def listener_count(self) -> int:
        return len({listener for group in self._listeners.values() for listener in group})

    def report(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "channels": self.channel_count,
            "listeners": self.listener_count,
            "delivered": self.stats.delivered,
            "dropped": self.stats.dropped,
            "reconnects": self.stats.reconnects,
            "undecodable": self.stats.undecodable,
        }

    async def _add(self, listener: Listener) -> None:
        async with self._lock:
            new: list[str] = []
            for channel in listener.channels:
                if channel.name not in self._listeners:
                    new.append(channel.name)
                    self._types[channel.name] = channel.event_type
                self._listeners.setdefault(channel.name, set()).add(listener)
            if new and not self._resubscribe:
                loop = asyncio.get_running_loop()
                for name in new:
                    self._unconfirmed[name] = loop.create_future()
                try:
                    await self._pubsub.subscribe(*new)
                except (RedisError, OSError) as error:
                    logger.warning("live: subscribe failed, will retry: %s", error)
                    self._lost()
            # Another listener's SUBSCRIBE of the same channel may still be unconfirmed too.
            confirmations = [
                self._unconfirmed[channel.name]
                for channel in listener.channels
                if channel.name in self._unconfirmed
            ]
            self._wake.set()
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="live-hub-reader")
        if confirmations:
            try:
                async with asyncio.timeout(CONFIRM_TIMEOUT_SECONDS):
                    await asyncio.gather(*(asyncio.shield(f) for f in confirmations))
            except TimeoutError:
                logger.warning("live: Redis has not confirmed a subscription; going on")

    async def _remove(self, listener: Listener) -> None:
        # Local state first and without awaiting: it is released even if this is cancelled.
        gone: list[str] = []
        for channel in listener.channels:
            group = self._listeners.get(channel.name)
            if group is None:
                continue
            group.discard(listener)
            if not group:
                del self._listeners[channel.name]
                del self._types[channel.name]
                gone.append(channel.name)
        if not gone:
            return
        async with self._lock:
            gone = [name for name in gone if name not in self._listeners]
            if gone and not self._resubscribe:
                try:
                    await self._pubsub.unsubscribe(*gone)
                except (RedisError, OSError) as error:
                    logger.warning("live: unsubscribe failed: %s", error)
                    self._lost()

    def _lost(self) -> None:
        self.connected = False
        self._resubscribe = True
        self._confirm_all()

    def _confirm(self, channel: str) -> None:
        confirmation = self._unconfirmed.pop(channel, None)
        if confirmation is not None and not confirmation.done():
            confirmation.set_result(None)

    def _confirm_all(self) -> None:
        """Release every waiter: after a loss the resubscription's RESYNC covers them."""
        for channel in list(self._unconfirmed):
            self._confirm(channel)

    async def _read(self) -> None:
        """Read messages while anything is subscribed; reconnect and resync after failures."""
        failures = 0
        while True:
            if not self._listeners:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                if self._resubscribe:
                    await self._reconnect()
                message = await self._pubsub.get_message(timeout=READ_TIMEOUT_SECONDS)
            except (RedisError, OSError, TimeoutError) as error:
                REDIS_ERRORS.labels("subscription").inc()
                self._lost()
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                logger.warning("live: Redis connection lost (%s); retrying in %.1f s", error, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            self._handle(message)

    def _handle(self, message: dict[str, Any] | None) -> None:
        if message is None:
            return
        if message["type"] == "message":
            self._deliver(message["channel"].decode(), message["data"])
        elif message["type"] == "subscribe":
            self._confirm(message["channel"].decode())

    async def _reconnect(self) -> None:
        """Subscribe again to every channel and, once Redis confirms them all, send RESYNC:
        state re-read on RESYNC then misses no later change."""
        async with self._lock:
            await self._pubsub.aclose()
            if self._listeners:
                waiting = set(self._listeners)
                await self._pubsub.subscribe(*waiting)
                async with asyncio.timeout(CONFIRM_TIMEOUT_SECONDS):
                    while waiting:
                        message = await self._pubsub.get_message(timeout=READ_TIMEOUT_SECONDS)
                        self._handle(message)
                        if message is not None and message["type"] == "subscribe":
                            waiting.discard(message["channel"].decode())
            self._resubscribe = False
            self.connected = True
            self.stats.reconnects += 1
            listeners = {listener for group in self._listeners.values() for listener in group}
        logger.info("live: resubscribed to %d channels", len(self._listeners))
        for listener in listeners:
            listener.offer(RESYNC)

    def _deliver(self, channel: str, data: bytes) -> None:
        group = self._listeners.get(channel)
        if not group:
            return
        try:
            event = decode(self._types[channel], data)
        except ValueError as error:
            self.stats.undecodable += 1
            logger.error("live: undecodable message on %s: %s", channel, error)
            return
        for listener in tuple(group):
            if listener.offer(event):
                self.stats.delivered += 1
            else:
                self.stats.dropped += 1

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()
