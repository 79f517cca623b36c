"""Redis URLs, plain or Sentinel-managed, and the one place their clients are made.

``redis://``, ``rediss://`` and ``unix://`` name one server. ``redis+sentinel://[password@]
host:port[,host:port…]/<master name>[/db]`` names the primary that the Sentinels at those
addresses agree on: clients ask them for it on every new connection, so after a failover a
dropped connection reconnects to the promoted replica by itself. The password (also written
``:password@``) is the Redis servers'; the Sentinels are asked without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from arq.connections import RedisSettings
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel"
PLAIN_SCHEMES = frozenset({"redis", "rediss", "unix"})
# How long a Sentinel may take to say who the primary is before the next one is asked.
SENTINEL_TIMEOUT_SECONDS = 0.5
R = TypeVar("R", bound=Redis)


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """The primary called ``master`` as the ``sentinels`` see it, and its database number."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    password: str | None = None


def is_sentinel(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME + "://")


def parse_sentinel(url: str) -> SentinelTarget:
    """The Sentinels, primary, database and password of ``url``; ValueError saying what is
    wrong (without the password) otherwise."""
    rest = url.removeprefix(SENTINEL_SCHEME + "://")
    userinfo, _, rest = rest.rpartition("@")
    addresses, _, path = rest.partition("/")
    sentinels: list[tuple[str, int]] = []
    for address in addresses.split(","):
        host, _, port = address.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"holds a Sentinel address {address.strip()!r} that is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    master, _, db = path.partition("/")
    if not master:
        raise ValueError("names no primary: redis+sentinel://host:port,…/<master name>[/db]")
    if db and not db.isdigit():
        raise ValueError(f"has a database {db!r} that is not a number")
    password = userinfo.partition(":")[2] if ":" in userinfo else userinfo
    return SentinelTarget(tuple(sentinels), master, int(db or 0), password or None)


def redis_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a Redis URL (to follow the setting's name), else None."""
    if is_sentinel(url):
        try:
            parse_sentinel(url)
        except ValueError as error:
            return str(error)
        return None
    if url.partition("://")[0] not in PLAIN_SCHEMES:
        return (
            "must be a redis://, rediss://, unix:// or "
            "redis+sentinel://host:port[,host:port…]/<master name>[/db] URL"
        )
    return None


def redis_client(url: str, *, redis_class: type[R], **options: Any) -> R:
    """A ``redis_class`` client on ``url`` with ``options`` (timeouts, connect hook…): through
    its Sentinels for a Sentinel URL, where each new connection asks them for the primary."""
    if not is_sentinel(url):
        return redis_class.from_url(url, **options)
    target = parse_sentinel(url)
    sentinel = Sentinel(
        target.sentinels,
        sentinel_kwargs={
            "socket_timeout": SENTINEL_TIMEOUT_SECONDS,
            "socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS,
        },
    )
    client: R = sentinel.master_for(
        target.master, redis_class=redis_class, db=target.db, password=target.password, **options
    )
    return client


def queue_settings(url: str) -> RedisSettings:
    """arq's settings for the queue Redis at ``url`` (its pools and workers)."""
    if not is_sentinel(url):
        return RedisSettings.from_dsn(url)
    target = parse_sentinel(url)
    return RedisSettings(
        host=list(target.sentinels),
        sentinel=True,
        sentinel_master=target.master,
        database=target.db,
        password=target.password,
    )
