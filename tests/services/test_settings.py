import pytest
from arq.connections import RedisSettings

from services.platform.redis_urls import SentinelTarget, parse_sentinel, queue_settings
from services.platform.settings import Environment, Settings, SettingsError, redact

# What production requires, and no more.
PRODUCTION = {
    "ROLLCALL_ENV": "production",
    "ROLLCALL_DATABASE_URL": "postgresql+asyncpg://u@db/rollcall",
    "ROLLCALL_REDIS_URL": "redis://redis:6379/0",
    "ROLLCALL_JWT_SECRET": "7f3c9a1e5b2d8f4a6c0e9b3d7a1f5c2e8b4d6a0f3e9c7b1d5a2f8e4c6b0d9a3f",
}


def test_defaults_are_a_development_setup():
    settings = Settings.from_env({})
    assert settings.env is Environment.DEVELOPMENT
    assert settings.database_url is None and settings.redis_url is None
    assert settings.graphiql is True
    assert (settings.db_pool_min, settings.db_pool_max) == (10, 50)


def test_production_requires_database_redis_and_secret():
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"ROLLCALL_ENV": "production"})
    message = str(raised.value)
    for name in ("ROLLCALL_DATABASE_URL", "ROLLCALL_REDIS_URL", "ROLLCALL_JWT_SECRET"):
        assert f"{name} is required" in message


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "ROLLCALL_ENV": "staging",
                "ROLLCALL_DATABASE_URL": "mysql://x",
                "ROLLCALL_REDIS_URL": "http://x",
                "ROLLCALL_STORAGE_URL": "ftp://x",
                "ROLLCALL_JWT_SECRET": "short",
                "ROLLCALL_DB_POOL_MIN": "many",
                "ROLLCALL_RATE_LIMITS": "dashboard=100",
            }
        )
    lines = str(raised.value).splitlines()[1:]
    assert len(lines) == 7


def test_rate_limits_parse_and_switch_off():
    limits = Settings.from_env({"ROLLCALL_RATE_LIMITS": "dashboard=100/60s,export=5/3600s"})
    assert limits.rate_limits["export"].count == 5 and limits.rate_limits["export"].seconds == 3600
    assert Settings.from_env({"ROLLCALL_RATE_LIMITS": "off"}).rate_limits_enabled is False


def test_pool_bounds_must_be_ordered():
    with pytest.raises(SettingsError, match="DB_POOL_MIN"):
        Settings.from_env({"ROLLCALL_DB_POOL_MIN": "20", "ROLLCALL_DB_POOL_MAX": "10"})


def test_production_graphiql_is_off_unless_enabled():
    assert Settings.from_env(PRODUCTION).graphiql is False
    assert Settings.from_env({**PRODUCTION, "ROLLCALL_GRAPHIQL": "true"}).graphiql is True


def test_audit_archival_defaults_and_bounds():
    defaults = Settings.from_env({})
    assert (defaults.audit_archive_min_rows, defaults.audit_retention_days) == (1_000_000, 90)
    tuned = Settings.from_env(
        {"ROLLCALL_AUDIT_ARCHIVE_MIN_ROWS": "0", "ROLLCALL_AUDIT_RETENTION_DAYS": "365"}
    )
    assert (tuned.audit_archive_min_rows, tuned.audit_retention_days) == (0, 365)
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {"ROLLCALL_AUDIT_ARCHIVE_MIN_ROWS": "-1", "ROLLCALL_AUDIT_RETENTION_DAYS": "0"}
        )
    assert "AUDIT_ARCHIVE_MIN_ROWS must be a whole number" in str(raised.value)
    assert "AUDIT_RETENTION_DAYS must be a whole number from 1 to 36500" in str(raised.value)


def test_logs_are_json_in_production_and_readable_in_development_unless_set():
    assert Settings.from_env(PRODUCTION).json_logs is True
    assert Settings.from_env({}).json_logs is False
    assert Settings.from_env({"ROLLCALL_LOG_FORMAT": "JSON"}).json_logs is True
    assert Settings.from_env({**PRODUCTION, "ROLLCALL_LOG_FORMAT": "text"}).json_logs is False
    assert Settings.from_env({"ROLLCALL_LOG_LEVEL": "debug"}).log_level == "DEBUG"


def test_observability_settings_default_parse_and_are_checked():
    defaults = Settings.from_env({})
    assert (defaults.log_level, defaults.slow_query_ms, defaults.otlp_endpoint) == (
        "INFO",
        200,
        None,
    )
    chosen = Settings.from_env(
        {"ROLLCALL_SLOW_QUERY_MS": "0", "ROLLCALL_OTLP_ENDPOINT": "http://collector:4318"}
    )
    assert (chosen.slow_query_ms, chosen.otlp_endpoint) == (0, "http://collector:4318")
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "ROLLCALL_LOG_FORMAT": "xml",
                "ROLLCALL_LOG_LEVEL": "loud",
                "ROLLCALL_SLOW_QUERY_MS": "-1",
                "ROLLCALL_OTLP_ENDPOINT": "collector:4317",
            }
        )
    message = str(raised.value)
    for name in ("LOG_FORMAT", "LOG_LEVEL", "SLOW_QUERY_MS", "OTLP_ENDPOINT"):
        assert f"ROLLCALL_{name} must" in message


def test_resilience_defaults():
    settings = Settings.from_env({})
    assert settings.db_statement_timeout_ms == 5000
    assert settings.db_job_statement_timeout_ms == 30 * 60 * 1000
    assert settings.db_breaker_reset_seconds == 5
    assert (settings.degrade_cpu_percent, settings.degrade_memory_percent) == (80, 85)


def test_resilience_settings_parse_and_are_bounded():
    settings = Settings.from_env(
        {
            "ROLLCALL_DB_STATEMENT_TIMEOUT_MS": "250",
            "ROLLCALL_DB_JOB_STATEMENT_TIMEOUT_MS": "0",
            "ROLLCALL_DB_BREAKER_RESET_SECONDS": "2",
            "ROLLCALL_DEGRADE_CPU_PERCENT": "95",
            "ROLLCALL_DEGRADE_MEMORY_PERCENT": "70",
        }
    )
    assert settings.db_statement_timeout_ms == 250 and settings.db_job_statement_timeout_ms == 0
    assert settings.db_breaker_reset_seconds == 2
    assert (settings.degrade_cpu_percent, settings.degrade_memory_percent) == (95, 70)
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "ROLLCALL_DB_STATEMENT_TIMEOUT_MS": "-1",
                "ROLLCALL_DEGRADE_CPU_PERCENT": "0",
                "ROLLCALL_DEGRADE_MEMORY_PERCENT": "101",
            }
        )
    message = str(raised.value)
    for name in ("DB_STATEMENT_TIMEOUT_MS", "DEGRADE_CPU_PERCENT", "DEGRADE_MEMORY_PERCENT"):
        assert f"ROLLCALL_{name} must be a whole number" in message


def test_sentinel_urls_name_their_sentinels_primary_and_database():
    url = "redis+sentinel://s3cret@10.0.0.1:26379,[::1]:26380/queue/2"
    settings = Settings.from_env({"ROLLCALL_REDIS_URL": url, "ROLLCALL_CACHE_REDIS_URL": url})
    assert settings.redis_url == settings.cache_redis_url == url
    assert parse_sentinel(url) == SentinelTarget(
        (("10.0.0.1", 26379), ("::1", 26380)), "queue", 2, "s3cret"
    )
    plain = parse_sentinel("redis+sentinel://:pw@h:1/m")
    assert (plain.db, plain.password) == (0, "pw")
    queue = queue_settings(url)
    assert (queue.sentinel, queue.sentinel_master, queue.database) == (True, "queue", 2)
    assert queue.host == [("10.0.0.1", 26379), ("::1", 26380)] and queue.password == "s3cret"
    assert queue_settings("redis://h:7/3") == RedisSettings.from_dsn("redis://h:7/3")
    assert redact(url) == "redis+sentinel://***@10.0.0.1:26379,[::1]:26380/queue/2"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://h:26379", "names no primary"),
        ("redis+sentinel://h:26379,h/queue", "Sentinel address 'h'"),
        ("redis+sentinel://h:99999/queue", "Sentinel address 'h:99999'"),
        ("redis+sentinel://h:1/queue/zero", "database 'zero'"),
        ("sentinel://h:1/queue", "redis+sentinel://host:port"),
    ],
)
def test_bad_sentinel_urls_say_what_is_wrong_without_the_password(url, problem):
    secret = url.replace("redis+sentinel://", "redis+sentinel://hunter2@")
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"ROLLCALL_CACHE_REDIS_URL": secret})
    assert "ROLLCALL_CACHE_REDIS_URL" in str(raised.value) and problem in str(raised.value)
    assert "hunter2" not in str(raised.value)
