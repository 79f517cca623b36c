"""The platform: adapters and cross-cutting concerns every domain module builds on.

PostgreSQL (``db``), the tagged cache (``cache``, ``codec``, ``recording``), object storage
(``storage``), e-mail, virus scanning, persisted queries, the embedded servers, settings, logs,
telemetry, resource pressure, the circuit breaker and the service errors. Nothing here knows
the school: platform modules never import the domain modules beside this package (an
import-linter contract in pyproject.toml says so, and ``make test`` checks it).
"""
