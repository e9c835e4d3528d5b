"""OpenTelemetry tracing: on when the standard ``OTEL_*`` exporter settings are present.

``configure()`` is called once per process by each entry point (a gunicorn worker after it
forks, the gRPC process, the worker). Without ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER`` it does nothing and never
imports OpenTelemetry, and ``span()`` is an empty context manager: tracing costs nothing.

Spans: one per REST request and per RPC (continuing a caller's W3C ``traceparent``), one per
OpenWhisk call (whose ``traceparent`` is sent on to OpenWhisk) and one per database session.
The trace id is stored on the execution.

OpenTelemetry keeps its tracer provider process-global by design, so the tracer here is too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_TRACER: Any = None  # set once by configure(); None means tracing is off
_ENV_SWITCHES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_TRACES_EXPORTER")


def wanted(environ=None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").lower() == "none":
        return False
    return any(env.get(name) for name in _ENV_SWITCHES)


def configure(service_name: str, *, exporter: Any = None, environ=None) -> bool:
    """Install a tracer provider when the environment asks for one (or an exporter is given,
    as tests do). True when tracing is on."""
    global _TRACER
    if exporter is None and not wanted(environ):
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    env = os.environ if environ is None else environ
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif env.get("OTEL_TRACES_EXPORTER", "").lower() == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _TRACER = provider.get_tracer("owaction")
    trace.set_tracer_provider(provider)
    return True


def enabled() -> bool:
    return _TRACER is not None


def _parent(traceparent: str | None):
    if not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


@contextmanager
def span(name: str, *, traceparent: str | None = None, kind: str = "internal",
         **attributes: Any) -> Iterator[Any]:
    """A span named ``name`` (a child of ``traceparent`` when given); nothing when off."""
    if _TRACER is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    span_kind = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT}.get(kind,
                                                                          SpanKind.INTERNAL)
    clean = {k: v for k, v in attributes.items() if v is not None}
    with _TRACER.start_as_current_span(name, context=_parent(traceparent), kind=span_kind,
                                       attributes=clean) as current:
        yield current


def current_traceparent() -> str | None:
    """The W3C traceparent of the active span, to send on to OpenWhisk."""
    if _TRACER is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def current_trace_id() -> str | None:
    if _TRACER is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
