"""Prometheus metrics, all named ``owaction_*``.

Under gunicorn every worker is a process, so the REST server uses prometheus_client's
multiprocess mode: owaction.gunicorn_conf points ``PROMETHEUS_MULTIPROC_DIR`` at an empty
directory before any worker imports this module, and ``/metrics`` aggregates every worker's
files. The gRPC process and the worker are single processes and serve their own metrics port.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

_MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

INVOCATIONS = Counter(
    "owaction_invocations_total", "Executions by type, action and outcome",
    ["type", "action", "outcome"],
)
DURATION = Histogram(
    "owaction_invocation_duration_seconds", "Time from request to answer, by type",
    ["type"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
IN_FLIGHT = Gauge(
    "owaction_in_flight_requests", "Requests being served now, by front door", ["door"],
    multiprocess_mode="livesum",
)
DB_SESSIONS_IN_USE = Gauge(
    "owaction_db_sessions_in_use", "Database sessions in use", multiprocess_mode="livesum",
)
DB_SESSIONS_WAITING = Gauge(
    "owaction_db_sessions_waiting", "Callers waiting for a database session",
    multiprocess_mode="livesum",
)
BREAKER_STATE = Gauge(
    "owaction_breaker_state", "OpenWhisk circuit breaker: 0 closed, 1 half-open, 2 open",
    multiprocess_mode="max",
)
RATE_LIMITED = Counter(
    "owaction_rate_limited_total", "Requests refused by a rate limit, by scope", ["scope"],
)
CALLBACKS = Counter(
    "owaction_callback_deliveries_total", "Callback deliveries by outcome", ["outcome"],
)

BREAKER_VALUES = {"closed": 0, "half-open": 1, "open": 2}


# Labelled children by (metric, labels), and the value each gauge was last set to in this
# process: ``labels()`` takes the metric's lock and checks its labels on every call, and under
# gunicorn every change is a write to the worker's mmapped file, so the per-request path looks a
# child up once and writes a gauge only when its value changes.
_children: dict[tuple, object] = {}
_gauges: dict[object, float] = {}


def child(metric, *labels: str):
    """``metric.labels(*labels)``, looked up once per process."""
    key = (id(metric), labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def set_gauge(gauge, value: float) -> None:
    """``gauge.set(value)`` unless this process last set it to that already."""
    if _gauges.get(gauge) != value:
        gauge.set(value)
        _gauges[gauge] = value


def observe_execution(action_type: str, action: str, outcome: str, seconds: float | None) -> None:
    child(INVOCATIONS, action_type, action, outcome).inc()
    if seconds is not None:
        child(DURATION, action_type).observe(max(0.0, seconds))


def observe_store(store) -> None:
    set_gauge(DB_SESSIONS_IN_USE, getattr(store, "sessions_in_use", 0))
    set_gauge(DB_SESSIONS_WAITING, getattr(store, "sessions_waiting", 0))


def render() -> tuple[bytes, str]:
    """The exposition text for this process (aggregated over workers in multiprocess mode)."""
    if _MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def start_metrics_server(port: int, *, settings=None) -> bool:
    """Serve /metrics on ``port`` (0: off) from a daemon thread."""
    if not port:
        return False
    host = settings.bind_host if settings is not None else "127.0.0.1"
    start_http_server(port, addr=host)
    return True
