"""docker-compose.yml read as data: no Docker engine is needed to catch a broken reference, a
secret missing from .env.example or replicas that drifted apart."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
API_REPLICAS = ("api-1", "api-2")
REQUIRED_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+):?\?")
ENV_EXAMPLE_ENTRY = re.compile(r"^([A-Z0-9_]+)=", re.MULTILINE)  # set, not commented out


def depends_on(service: dict) -> dict:
    targets = service.get("depends_on") or {}
    return targets if isinstance(targets, dict) else {name: {} for name in targets}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_dependency_is_a_service(name):
    for target in depends_on(SERVICES[name]):
        assert target in SERVICES, f"{name} depends on unknown service {target}"


def test_rollcall_services_wait_for_the_one_shot_migration():
    for name in (*API_REPLICAS, "worker", "seed"):
        condition = depends_on(SERVICES[name])["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert SERVICES["migrate"]["restart"] == "no"
    assert "migrate" in SERVICES["migrate"]["command"]


def test_two_api_replicas_share_one_definition():
    first, second = (SERVICES[name] for name in API_REPLICAS)
    assert first == second
    environment = first["environment"]
    assert environment["ROLLCALL_ENV"] == "production"
    assert (
        environment["ROLLCALL_DATABASE_URL"]
        == SERVICES["worker"]["environment"]["ROLLCALL_DATABASE_URL"]
    )
    assert environment["PROMETHEUS_MULTIPROC_DIR"] == "/run/prometheus"
    assert any(mount.startswith("/run/prometheus") for mount in first["tmpfs"])
    assert "ports" not in first, "replicas are reached through the proxy only"


def test_every_required_variable_is_in_env_example():
    required = set(REQUIRED_VARIABLE.findall(COMPOSE_TEXT))
    documented = set(ENV_EXAMPLE_ENTRY.findall((ROOT / ".env.example").read_text()))
    assert {"POSTGRES_PASSWORD", "ROLLCALL_JWT_SECRET", "MINIO_ROOT_USER"} <= required
    assert required - documented == set()


def test_secrets_are_required_not_defaulted():
    for name in (
        "POSTGRES_PASSWORD",
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "ROLLCALL_JWT_SECRET",
    ):
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", COMPOSE_TEXT)
        assert uses, name
        assert all(use.startswith((":?", "?")) for use in uses), f"{name}: {uses}"


def test_cache_redis_evicts_and_queue_redis_never_does():
    cache = " ".join(SERVICES["cache"]["command"])
    queues = " ".join(SERVICES["redis"]["command"])
    assert "--maxmemory 256mb" in cache and "--maxmemory-policy allkeys-lru" in cache
    assert "--maxmemory-policy noeviction" in queues and "--appendonly yes" in queues


def test_proxy_config_exists_and_names_both_replicas():
    proxy = SERVICES["proxy"]
    (mount,) = [volume for volume in proxy["volumes"] if volume.startswith("./deploy/")]
    config = (ROOT / mount.split(":")[0]).read_text()
    for replica in API_REPLICAS:
        assert re.search(rf"^\s*server {replica} {replica}:8000\b", config, re.MULTILINE)
        assert replica in depends_on(proxy)
    assert "option httpchk GET /health" in config
    assert "X-Request-ID" in config
    assert "timeout tunnel" in config  # websockets outlive the HTTP timeouts


def test_clamd_is_optional():
    assert SERVICES["clamd"]["profiles"] == ["clamd"]


def test_connection_pools_fit_in_postgres_max_connections():
    default = re.search(r"\$\{ROLLCALL_DB_POOL_MAX:-(\d+)\}", COMPOSE_TEXT)
    assert default, "the pool size is set for every Rollcall process"
    long_running = [*API_REPLICAS, "worker"]
    command = " ".join(SERVICES["postgres"].get("command") or [])
    limit = re.search(r"max_connections=(\d+)", command)
    max_connections = int(limit.group(1)) if limit else 100  # PostgreSQL's default
    assert len(long_running) * int(default.group(1)) <= max_connections - 3
