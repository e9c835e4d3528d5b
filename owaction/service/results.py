"""What an operation produced (ExecutionResult), and how a stored execution answers again."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

from owaction import errors
from owaction.openwhisk.models import (
    Activation,
)
from owaction.store.records import ACCEPTED, PENDING, SUCCEEDED, TIMEOUT


@dataclass(frozen=True)
class ExecutionResult:
    """What an invoking operation produced, for either front door to translate."""

    execution_id: str
    action_type: str
    outcome: str  # succeeded | failed | accepted | error | timeout
    status: str  # OpenWhisk's response status, "accepted", or "no active rule"
    activation_id: str | None = None
    result: Any = None
    error: str | None = None
    duration_ms: int | None = None
    start_time: int | None = None
    end_time: int | None = None
    activation: Activation | None = None
    # web actions only
    status_code: int | None = None
    response_body: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    cached: bool = False
    # When the record was completed as written (its final state is then known unread), and
    # that stored row, as the pipeline returns it.
    completed_at: dt.datetime | None = None
    record: Any = None

    @property
    def success(self) -> bool:
        return self.outcome in (SUCCEEDED, ACCEPTED)


# Recorded status code -> the error a replay raises again.
_REPLAYED_ERRORS: dict[int, type[errors.ServiceError]] = {
    400: errors.InvalidInput, 403: errors.PermissionDenied, 404: errors.NotFound,
    409: errors.Conflict, 413: errors.PayloadTooLarge, 429: errors.Throttled,
    503: errors.Unavailable, 504: errors.UpstreamTimeout,
}


def _error_classes(base: type[errors.ServiceError]) -> dict[str, type[errors.ServiceError]]:
    found = {base.code: base}
    for sub in base.__subclasses__():
        for code, cls in _error_classes(sub).items():
            found.setdefault(code, cls)
    return found


def error_from_record(record) -> errors.ServiceError:
    """The error the first request raised, from its recorded code and Retry-After; rows from
    before the code was recorded fall back to their status code."""
    cls = _error_classes(errors.ServiceError).get(record.error_code or "")
    if cls is not None:
        return cls(record.error or "the original request failed", code=record.error_code,
                   retry_after=record.retry_after, execution_id=record.execution_id)
    if record.status == TIMEOUT:
        cls: type[errors.ServiceError] = errors.UpstreamTimeout
    else:
        cls = _REPLAYED_ERRORS.get(record.status_code or 0, errors.UpstreamFailure)
    return cls(record.error or "the original request failed", execution_id=record.execution_id)


def result_from_record(record) -> ExecutionResult:
    """An ExecutionResult rebuilt from a stored execution (replays and cache hits)."""
    status = {SUCCEEDED: "success", ACCEPTED: "accepted", PENDING: "accepted"}.get(record.status)
    if status is None:
        developer = (record.error or "").startswith("The action")
        status = "action developer error" if developer else "application error"
    outcome = ACCEPTED if record.status == PENDING else record.status
    start = int(record.created_at.timestamp() * 1000)
    end = int(record.completed_at.timestamp() * 1000) if record.completed_at else None
    web_body = None
    if record.action_type == "web" and record.result is not None:
        web_body = json.dumps(record.result)
    return ExecutionResult(
        execution_id=record.execution_id, action_type=record.action_type, outcome=outcome,
        status=status, activation_id=record.activation_id, result=record.result,
        error=record.error, duration_ms=record.duration_ms, start_time=start, end_time=end,
        status_code=record.status_code if record.action_type == "web" else None,
        response_body=web_body, cached=bool(record.cached),
    )


def completed_record(pending, result: ExecutionResult):
    """The row ``pending`` became once ``result`` completed it: what a read would give."""
    return replace(
        pending, status=result.outcome, success=result.outcome == SUCCEEDED,
        activation_id=result.activation_id or pending.activation_id, result=result.result,
        duration_ms=result.duration_ms, error=result.error,
        status_code=200 if result.outcome == SUCCEEDED else 502,
        completed_at=result.completed_at, updated_at=result.completed_at,
    )


def timestamp() -> str:
    """Now as every reply shows it: ISO-8601 UTC with milliseconds and a Z."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
