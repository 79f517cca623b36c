"""Optional OpenTelemetry tracing, on when ``ROLLCALL_OTLP_ENDPOINT`` is set.

The packages come with the ``otel`` extra (``pip install 'rollcall[otel]'``) and are imported
only then; the endpoint set without them stops start-up with a message saying so. Spans: each
GraphQL operation and its phases and resolvers (strawberry's extension, argument values and the
document's text left out, since either may hold a password), every SQL statement (SQLAlchemy)
and every Redis command (redis-py), exported over OTLP/HTTP. A tracer provider set up before
(``opentelemetry-instrument``, or a test's) is used as it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.extensions import SchemaExtension

from services.platform.settings import Settings

EXTRA_HINT = "pip install 'rollcall[otel]'"
TRACES_PATH = "/v1/traces"
SERVICE_NAME = "rollcall"


class TracingUnavailable(RuntimeError):
    """ROLLCALL_OTLP_ENDPOINT is set but the OpenTelemetry packages are not installed."""


def _missing(error: ImportError) -> TracingUnavailable:
    return TracingUnavailable(
        f"ROLLCALL_OTLP_ENDPOINT is set but OpenTelemetry is not installed ({error}): "
        f"{EXTRA_HINT}, or unset ROLLCALL_OTLP_ENDPOINT"
    )


def tracing_extensions(settings: Settings | None) -> list[type[SchemaExtension]]:
    """Strawberry's OpenTelemetry extension when tracing is on; nothing (and no import) else."""
    if settings is None or settings.otlp_endpoint is None:
        return []
    try:
        from strawberry.extensions.tracing import OpenTelemetryExtension
        from strawberry.extensions.tracing.opentelemetry import LifecycleStep
    except ImportError as error:
        raise _missing(error) from error

    class RedactedOpenTelemetryExtension(OpenTelemetryExtension):
        """Strawberry's spans without argument values or the document's text."""

        def __init__(self, **options: Any) -> None:
            super().__init__(**options, arg_filter=lambda arguments, info: {})

        def on_operation(self) -> Iterator[None]:
            steps = super().on_operation()
            next(steps)
            self._span_holder[LifecycleStep.OPERATION].set_attribute("query", "(not recorded)")
            yield
            with suppress(StopIteration):
                next(steps)

    return [RedactedOpenTelemetryExtension]


def start_tracing(settings: Settings, *, engine: AsyncEngine) -> Callable[[], None] | None:
    """Export spans to ``settings.otlp_endpoint`` and instrument ``engine`` and redis-py; the
    function that flushes and stops the exporter (None when tracing is off)."""
    if settings.otlp_endpoint is None:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as error:
        raise _missing(error) from error

    stop: Callable[[], None] | None = None
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        endpoint = settings.otlp_endpoint.rstrip("/")
        if not endpoint.endswith(TRACES_PATH):
            endpoint += TRACES_PATH
        name = os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME)
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        trace.set_tracer_provider(provider)
        stop = provider.shutdown
    # The instrumentation declares sqlalchemy < 2.1 and would silently do nothing on 2.1; the
    # engine events it listens to are unchanged (a test checks that SQL spans are made).
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, skip_dep_check=True)
    redis = RedisInstrumentor()
    if not redis.is_instrumented_by_opentelemetry:
        redis.instrument()
    return stop
