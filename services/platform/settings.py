"""Settings read once from ``ROLLCALL_*`` environment variables and validated as a whole."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from services.platform.redis_urls import is_sentinel, redis_url_problem
from services.platform.signing_secret import DEVELOPMENT_JWT_SECRET, secret_problem

PREFIX = "ROLLCALL_"
DEFAULT_POOL_MIN = 10
DEFAULT_POOL_MAX = 50
# Degradation thresholds of design property 47: above either, non-critical work is deferred.
DEFAULT_DEGRADE_CPU_PERCENT = 80
DEFAULT_DEGRADE_MEMORY_PERCENT = 85
_RATE_LIMIT_ITEM = re.compile(r"^(?P<name>[a-z_]+)=(?P<count>\d+)/(?P<seconds>\d+)s$")
# Soft TTLs in seconds of each cached read (the design's table: student metrics 2 min, class
# figures and weekly attendance 5 min; the weekly history as the weekly view); an entry may be
# served stale for as long again.
DEFAULT_CACHE_TTLS: Mapping[str, int] = {
    "dashboard": 120,
    "weekly": 300,
    "history": 300,
    "student_ranking": 300,
    "class_statistics": 300,
    "class_rankings": 300,
    "credentials": 300,
    "own_classrooms": 300,
    # A whole answer (graph/response_cache.py) lives at most this long, and never longer than
    # the first of the reads it was made of.
    "response": 120,
}
_CACHE_TTL_ITEM = re.compile(r"^(?P<name>[a-z_]+)=(?P<seconds>\d+)s?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Pooler(StrEnum):
    """What stands between the API and PostgreSQL: nothing, or PgBouncer in transaction mode
    (then no statement outlives its transaction: services/platform/db.py)."""

    NONE = "none"
    PGBOUNCER = "pgbouncer"


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """One or more settings are invalid; the message lists every problem, one per line."""


class TrustMode(StrEnum):
    """Who must run registered (trusted) documents only: partner tokens (``partners``), partner
    tokens while everyone else's unregistered documents are logged (``log``), or everyone
    (``enforce``)."""

    PARTNERS = "partners"
    LOG = "log"
    ENFORCE = "enforce"


@dataclass(frozen=True, slots=True)
class RateLimit:
    count: int
    seconds: int


# The design's per-user limits; ROLLCALL_RATE_LIMITS overrides any of them (or turns all off).
DEFAULT_RATE_LIMITS: Mapping[str, RateLimit] = {
    "dashboard": RateLimit(100, 60),
    "export": RateLimit(5, 3600),
    "upload": RateLimit(10, 3600),
    "subscription": RateLimit(10, 60),
    # Failed logins per (account, IP address): the design's 5 per 15 min, for one address.
    "login": RateLimit(5, 900),
    # Failed logins per IP address: looser than per account, as a whole school may share one.
    "login_ip": RateLimit(50, 900),
    # Failed logins per account from every address: slower, and applied only at addresses
    # that have failed for the account, so that strangers cannot lock its owner out.
    "login_account": RateLimit(30, 3600),
    # Reset mails per account, and reset requests plus bad reset tokens per IP address.
    "password_reset": RateLimit(3, 3600),
    "password_reset_ip": RateLimit(30, 3600),
}


@dataclass(frozen=True, slots=True)
class Settings:
    env: Environment = Environment.DEVELOPMENT
    database_url: str | None = None
    # Behind PgBouncer in transaction mode, migrations (DDL, a session of their own) may go
    # to PostgreSQL directly: this URL when set, else DATABASE_URL.
    migration_database_url: str | None = None
    database_pooler: Pooler = Pooler.NONE
    redis_url: str | None = None
    cache_redis_url: str | None = None
    cache_ttls: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CACHE_TTLS))
    cache_l1_size: int = 1000
    cache_breaker_reset_seconds: int = 30
    # Whole answers of cacheable queries served without running them (graph/response_cache.py).
    response_cache: bool = True
    storage_url: str = "file://.rollcall/storage"
    jwt_secret: str = DEVELOPMENT_JWT_SECRET
    jwt_ttl_seconds: int = 8 * 3600
    clamd_url: str | None = None
    scan_deny_sha256: frozenset[str] = frozenset()
    # Peers (addresses or networks) whose X-Forwarded-For is believed: the reverse proxies in
    # front. None by default: then a client's address is its connection's, whatever it claims.
    trusted_proxies: tuple[str, ...] = ()
    public_url: str | None = None
    smtp_url: str | None = None
    email_from: str = "Rollcall <no-reply@rollcall.invalid>"
    rate_limits_enabled: bool = True
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    trusted_documents: TrustMode = TrustMode.PARTNERS
    trusted_documents_clients: Mapping[str, TrustMode] = field(default_factory=dict)
    graphiql: bool = True
    introspection: bool = True
    query_max_depth: int = 12
    query_max_aliases: int = 30
    query_max_tokens: int = 5000
    # Characters of a document, padding included: tokens alone let whitespace through.
    query_max_length: int = 100_000
    # Bytes of a request body that is not a multipart upload (those have their own cap).
    max_body_bytes: int = 1024 * 1024
    query_max_cost: int = 5000
    query_max_batch: int = 10
    db_pool_min: int = DEFAULT_POOL_MIN
    db_pool_max: int = DEFAULT_POOL_MAX
    # A request's statement runs at most this long; jobs (exports, the statistics refresh,
    # audit archival) get the longer job timeout. 0: no limit.
    db_statement_timeout_ms: int = 5000
    db_job_statement_timeout_ms: int = 30 * 60 * 1000
    # As long as the Retry-After a refused client is given (5 s): its retry meets the probe.
    db_breaker_reset_seconds: int = 5
    degrade_cpu_percent: int = DEFAULT_DEGRADE_CPU_PERCENT
    degrade_memory_percent: int = DEFAULT_DEGRADE_MEMORY_PERCENT
    statistics_refresh_delay_seconds: int = 60
    export_retention_days: int = 7
    ws_connections_per_user: int = 5
    ws_operations_per_connection: int = 20
    ws_init_timeout_seconds: int = 10
    # Connections of one client address not yet past connection_init, per process.
    ws_unauthenticated_per_address: int = 50
    ws_ping_interval_seconds: int = 10
    # How long an idle HTTP connection is kept open: longer than the idle timeouts of the
    # proxies and load balancers in front (60 s is common), so that they close first and never
    # send a request down a connection the API is closing (uvicorn's own default is 5 s).
    http_keep_alive_seconds: int = 75
    audit_archive_min_rows: int = 1_000_000
    audit_retention_days: int = 90
    data_dir: Path = Path(".rollcall")
    # Observability: log format (JSON in production unless set), level, slow-query threshold,
    # OpenTelemetry collector (tracing off when unset).
    log_format: LogFormat | None = None
    log_level: str = "INFO"
    slow_query_ms: int = 200
    otlp_endpoint: str | None = None

    @property
    def production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def json_logs(self) -> bool:
        """JSON log lines: when asked for, else in production."""
        if self.log_format is None:
            return self.production
        return self.log_format is LogFormat.JSON

    @property
    def live_redis_url(self) -> str | None:
        """The Redis of ephemeral data: cache entries, pub/sub, connection leases."""
        return self.cache_redis_url or self.redis_url

    def rate_limit(self, name: str) -> RateLimit | None:
        """The limit called ``name`` (the default unless overridden); None when limits are off."""
        if not self.rate_limits_enabled:
            return None
        return self.rate_limits.get(name, DEFAULT_RATE_LIMITS.get(name))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read and validate every ``ROLLCALL_*`` variable; SettingsError names each bad one."""
        problems: list[str] = []
        values: dict[str, object] = {}

        def raw(name: str) -> str | None:
            value = environ.get(PREFIX + name)
            return value.strip() if value is not None and value.strip() != "" else None

        env_text = raw("ENV") or Environment.DEVELOPMENT.value
        try:
            env = Environment(env_text.lower())
        except ValueError:
            problems.append(f"{PREFIX}ENV must be 'development' or 'production', got {env_text!r}")
            env = Environment.DEVELOPMENT
        values["env"] = env

        for name, attribute in (
            ("DATABASE_URL", "database_url"),
            ("MIGRATION_DATABASE_URL", "migration_database_url"),
        ):
            if (url := raw(name)) is not None:
                if not url.startswith("postgresql+asyncpg://"):
                    problems.append(
                        f"{PREFIX}{name} must start with postgresql+asyncpg://, got {redact(url)!r}"
                    )
                values[attribute] = url
        if (pooler := raw("DATABASE_POOLER")) is not None:
            try:
                values["database_pooler"] = Pooler(pooler.strip().lower())
            except ValueError:
                problems.append(f"{PREFIX}DATABASE_POOLER must be 'none' or 'pgbouncer'")
        if "database_url" not in values and env is Environment.PRODUCTION:
            problems.append(f"{PREFIX}DATABASE_URL is required when {PREFIX}ENV=production")

        for name, attribute in (("REDIS_URL", "redis_url"), ("CACHE_REDIS_URL", "cache_redis_url")):
            if (url := raw(name)) is not None:
                if (problem := redis_url_problem(url)) is not None:
                    problems.append(f"{PREFIX}{name} {problem}, got {redact(url)!r}")
                values[attribute] = url
        if "redis_url" not in values and env is Environment.PRODUCTION:
            problems.append(f"{PREFIX}REDIS_URL is required when {PREFIX}ENV=production")

        if (ttls := raw("CACHE_TTLS")) is not None:
            parsed_ttls = dict(DEFAULT_CACHE_TTLS)
            for item in ttls.split(","):
                match = _CACHE_TTL_ITEM.match(item.strip())
                if match is None or int(match["seconds"]) == 0:
                    problems.append(
                        f"{PREFIX}CACHE_TTLS item {item.strip()!r} is not like dashboard=120s"
                    )
                    continue
                if match["name"] not in DEFAULT_CACHE_TTLS:
                    problems.append(
                        f"{PREFIX}CACHE_TTLS names an unknown entry {match['name']!r} (known: "
                        + ", ".join(DEFAULT_CACHE_TTLS)
                        + ")"
                    )
                    continue
                parsed_ttls[match["name"]] = int(match["seconds"])
            values["cache_ttls"] = parsed_ttls

        if (storage_url := raw("STORAGE_URL")) is not None:
            parts = urlsplit(storage_url)
            if parts.scheme not in {"file", "s3"} or (
                parts.scheme == "s3"
                and not (
                    parts.username
                    and parts.password
                    and parts.hostname
                    and parts.path != "/"
                    and parts.path
                )
            ):
                problems.append(
                    f"{PREFIX}STORAGE_URL must be file:///path or s3://ACCESS:SECRET@host:port/bucket"
                )
            values["storage_url"] = storage_url

        if (secret := raw("JWT_SECRET")) is not None:
            if len(secret) < 32:
                problems.append(f"{PREFIX}JWT_SECRET must be at least 32 characters long")
            elif env is Environment.PRODUCTION and (problem := secret_problem(secret)):
                problems.append(f"{PREFIX}JWT_SECRET {problem}")
            values["jwt_secret"] = secret
        elif env is Environment.PRODUCTION:
            problems.append(f"{PREFIX}JWT_SECRET is required when {PREFIX}ENV=production")

        for name, attribute, low, high in (
            ("JWT_TTL_SECONDS", "jwt_ttl_seconds", 60, 30 * 24 * 3600),
            ("DB_POOL_MIN", "db_pool_min", 1, 500),
            ("DB_POOL_MAX", "db_pool_max", 1, 1000),
            ("DB_STATEMENT_TIMEOUT_MS", "db_statement_timeout_ms", 0, 24 * 3600 * 1000),
            ("DB_JOB_STATEMENT_TIMEOUT_MS", "db_job_statement_timeout_ms", 0, 24 * 3600 * 1000),
            ("DB_BREAKER_RESET_SECONDS", "db_breaker_reset_seconds", 1, 3600),
            ("DEGRADE_CPU_PERCENT", "degrade_cpu_percent", 1, 100),
            ("DEGRADE_MEMORY_PERCENT", "degrade_memory_percent", 1, 100),
            ("STATISTICS_REFRESH_DELAY_SECONDS", "statistics_refresh_delay_seconds", 0, 300),
            ("EXPORT_RETENTION_DAYS", "export_retention_days", 1, 365),
            ("CACHE_L1_SIZE", "cache_l1_size", 0, 1_000_000),
            ("CACHE_BREAKER_RESET_SECONDS", "cache_breaker_reset_seconds", 1, 3600),
            ("WS_CONNECTIONS_PER_USER", "ws_connections_per_user", 1, 1000),
            ("WS_OPERATIONS_PER_CONNECTION", "ws_operations_per_connection", 1, 1000),
            ("WS_INIT_TIMEOUT_SECONDS", "ws_init_timeout_seconds", 1, 300),
            ("WS_UNAUTHENTICATED_PER_ADDRESS", "ws_unauthenticated_per_address", 1, 10_000),
            ("WS_PING_INTERVAL_SECONDS", "ws_ping_interval_seconds", 1, 300),
            ("HTTP_KEEP_ALIVE_SECONDS", "http_keep_alive_seconds", 1, 3600),
            ("QUERY_MAX_DEPTH", "query_max_depth", 2, 100),
            ("QUERY_MAX_ALIASES", "query_max_aliases", 0, 1000),
            ("QUERY_MAX_TOKENS", "query_max_tokens", 100, 1_000_000),
            ("QUERY_MAX_LENGTH", "query_max_length", 1_000, 10_000_000),
            ("MAX_BODY_BYTES", "max_body_bytes", 1024, 64 * 1024 * 1024),
            ("QUERY_MAX_COST", "query_max_cost", 10, 10_000_000),
            ("QUERY_MAX_BATCH", "query_max_batch", 1, 100),
            ("AUDIT_ARCHIVE_MIN_ROWS", "audit_archive_min_rows", 0, 10**12),
            ("AUDIT_RETENTION_DAYS", "audit_retention_days", 1, 36500),
            ("SLOW_QUERY_MS", "slow_query_ms", 0, 600_000),
        ):
            if (text := raw(name)) is None:
                continue
            if not text.isdigit() or not low <= int(text) <= high:
                problems.append(f"{PREFIX}{name} must be a whole number from {low} to {high}")
            else:
                values[attribute] = int(text)
        pool_min = values.get("db_pool_min", DEFAULT_POOL_MIN)
        pool_max = values.get("db_pool_max", DEFAULT_POOL_MAX)
        if isinstance(pool_min, int) and isinstance(pool_max, int) and pool_min > pool_max:
            problems.append(
                f"{PREFIX}DB_POOL_MIN ({pool_min}) exceeds {PREFIX}DB_POOL_MAX ({pool_max})"
            )

        if (text := raw("CLAMD_URL")) is not None:
            parts = urlsplit(text)
            if parts.scheme != "tcp" or not parts.hostname or not parts.port:
                problems.append(f"{PREFIX}CLAMD_URL must be tcp://host:port")
            values["clamd_url"] = text
        if (text := raw("SCAN_DENY_SHA256")) is not None:
            digests = {item.strip().lower() for item in text.split(",") if item.strip()}
            if bad := sorted(d for d in digests if not _SHA256.match(d)):
                problems.append(
                    f"{PREFIX}SCAN_DENY_SHA256 holds what is not a SHA-256 hex digest: {bad[0]!r}"
                )
            values["scan_deny_sha256"] = frozenset(digests)
        if (text := raw("TRUSTED_PROXIES")) is not None:
            networks = [item.strip() for item in text.split(",") if item.strip()]
            for network in networks:
                try:
                    ipaddress.ip_network(network, strict=False)
                except ValueError:
                    problems.append(
                        f"{PREFIX}TRUSTED_PROXIES holds what is not an address or network: "
                        f"{network!r}"
                    )
            values["trusted_proxies"] = tuple(networks)
        if (text := raw("PUBLIC_URL")) is not None:
            if urlsplit(text).scheme not in {"http", "https"} or not urlsplit(text).hostname:
                problems.append(f"{PREFIX}PUBLIC_URL must be an http:// or https:// URL")
            values["public_url"] = text.rstrip("/")
        if (text := raw("SMTP_URL")) is not None:
            if urlsplit(text).scheme not in {"smtp", "smtps"} or not urlsplit(text).hostname:
                problems.append(
                    f"{PREFIX}SMTP_URL must be smtp://[user:pass@]host:port (STARTTLS when offered)"
                    " or smtps://… (TLS)"
                )
            values["smtp_url"] = text
        if (text := raw("EMAIL_FROM")) is not None:
            values["email_from"] = text

        if (limits := raw("RATE_LIMITS")) is not None:
            if limits.lower() == "off":
                values["rate_limits_enabled"] = False
            else:
                parsed: dict[str, RateLimit] = {}
                for item in limits.split(","):
                    match = _RATE_LIMIT_ITEM.match(item.strip())
                    if match is None or int(match["count"]) == 0 or int(match["seconds"]) == 0:
                        problems.append(
                            f"{PREFIX}RATE_LIMITS item {item.strip()!r} is not like "
                            "dashboard=100/60s"
                        )
                        continue
                    parsed[match["name"]] = RateLimit(int(match["count"]), int(match["seconds"]))
                values["rate_limits"] = parsed

        modes = ", ".join(mode.value for mode in TrustMode)
        if (text := raw("TRUSTED_DOCUMENTS")) is not None:
            try:
                values["trusted_documents"] = TrustMode(text.lower())
            except ValueError:
                problems.append(f"{PREFIX}TRUSTED_DOCUMENTS must be one of {modes}, got {text!r}")
        if (text := raw("TRUSTED_DOCUMENTS_CLIENTS")) is not None:
            clients: dict[str, TrustMode] = {}
            for item in text.split(","):
                client, _, mode = item.strip().rpartition("=")
                if not client or mode.lower() not in {m.value for m in TrustMode}:
                    problems.append(
                        f"{PREFIX}TRUSTED_DOCUMENTS_CLIENTS item {item.strip()!r} is not like "
                        f"web=enforce (modes: {modes})"
                    )
                    continue
                clients[client] = TrustMode(mode.lower())
            values["trusted_documents_clients"] = clients

        for name, attribute in (("GRAPHIQL", "graphiql"), ("INTROSPECTION", "introspection")):
            if (flag := raw(name)) is not None:
                if flag.lower() not in {"true", "false", "1", "0"}:
                    problems.append(f"{PREFIX}{name} must be true or false")
                values[attribute] = flag.lower() in {"true", "1"}
            else:
                values[attribute] = env is Environment.DEVELOPMENT

        if (flag := raw("RESPONSE_CACHE")) is not None:
            if flag.lower() not in {"on", "off", "true", "false", "1", "0"}:
                problems.append(f"{PREFIX}RESPONSE_CACHE must be on or off")
            values["response_cache"] = flag.lower() in {"on", "true", "1"}

        if (data_dir := raw("DATA_DIR")) is not None:
            values["data_dir"] = Path(data_dir)

        if (text := raw("LOG_FORMAT")) is not None:
            try:
                values["log_format"] = LogFormat(text.lower())
            except ValueError:
                problems.append(f"{PREFIX}LOG_FORMAT must be json or text, got {text!r}")
        if (text := raw("LOG_LEVEL")) is not None:
            if text.upper() not in LOG_LEVELS:
                problems.append(f"{PREFIX}LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
            values["log_level"] = text.upper()
        if (text := raw("OTLP_ENDPOINT")) is not None:
            if urlsplit(text).scheme not in {"http", "https"} or not urlsplit(text).hostname:
                problems.append(
                    f"{PREFIX}OTLP_ENDPOINT must be an http:// or https:// URL (OTLP over HTTP)"
                )
            values["otlp_endpoint"] = text

        if problems:
            raise SettingsError("invalid configuration:\n" + "\n".join(f"- {p}" for p in problems))
        return cls(**values)  # type: ignore[arg-type]


def redact(url: str) -> str:
    """The URL with any password replaced, for error messages."""
    parts = urlsplit(url)
    # A Sentinel URL's password may stand alone before the @, where a username would be.
    secret = parts.password or (parts.username if is_sentinel(url) else None)
    return url.replace(f"{secret}@", "***@") if secret else url
