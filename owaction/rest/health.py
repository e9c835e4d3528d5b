"""``/health`` (unauthenticated, for load balancers) and ``/api/v1/stats``."""

from __future__ import annotations

from flask import current_app

from owaction import __version__
from owaction.auth import PERMISSION_READ
from owaction.rest.api import ApiBlueprint, service
from owaction.rest.errors import retry_after
from owaction.rest.schemas import HealthReply, StatsReply
from owaction.service import timestamp

bp = ApiBlueprint("health", __name__, tag="health")


def _module() -> str:
    return current_app.extensions["owaction"].settings.module_name


@bp.operation("GET", "/health", summary="Health: the database and OpenWhisk reachability",
              responses={200: (HealthReply, "healthy"),
                         503: (HealthReply, "unhealthy: the database is unavailable")})
def health():
    # Only states, never hosts, keys or URLs: this endpoint needs no token.
    checks = service().health()
    healthy = bool(checks["healthy"])
    reply = HealthReply(
        status="healthy" if healthy else "unhealthy",
        module=_module(),
        version=__version__,
        timestamp=timestamp(),
        database=checks["database"],
        openwhisk=checks["openwhisk"],
        breaker=checks["breaker"],
        error=None if healthy else "the database is unavailable",
    )
    if healthy:
        return reply, 200
    return reply, 503, {"Retry-After": retry_after(503, None)}


@bp.operation("GET", "/api/v1/stats", summary="Execution statistics from the store",
              permission=PERMISSION_READ,
              responses={200: (StatsReply, "counts and durations, the same from every worker")},
              errors=(503,))
def stats(claims):
    return StatsReply(module=_module(), version=__version__, stats=service().stats(),
                      timestamp=timestamp()), 200
