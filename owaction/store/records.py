"""The execution record and its vocabulary: statuses, action types, list limits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

from owaction.store import values


class Status(enum.StrEnum):
    """Where an execution is in its lifecycle.

    ``pending -> accepted -> succeeded | failed | error | timeout | unknown``; a pending row may
    also be completed directly.
    """

    PENDING = "pending"
    ACCEPTED = "accepted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ERROR = "error"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"


class ActionType(enum.StrEnum):
    """What kind of OpenWhisk call an execution records."""

    ACTION = "action"
    ASYNC = "async"
    SEQUENCE = "sequence"
    WEB = "web"
    TRIGGER = "trigger"
    COMMAND = "command"
    WEBHOOK = "webhook"


PENDING, ACCEPTED, SUCCEEDED, FAILED, ERROR, TIMEOUT, UNKNOWN = Status
STATUSES = tuple(s.value for s in Status)
IN_FLIGHT = (PENDING, ACCEPTED)
FINAL = (SUCCEEDED, FAILED, ERROR, TIMEOUT, UNKNOWN)
# What the stats count as a failed execution: every final status but success.
FAILED_STATUSES = (FAILED, ERROR, TIMEOUT, UNKNOWN)
ACTION_TYPES = tuple(t.value for t in ActionType)

# Executions a list returns: by default, and at most.
DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 500


@dataclasses.dataclass(frozen=True)
class ExecutionRecord:
    """One execution row; times are timezone-aware UTC, payload and result decoded JSON."""

    execution_id: str
    namespace: str
    action_name: str
    action_type: str
    payload: Any
    blocking: bool
    timeout: int | None
    activation_id: str | None
    result: Any
    duration_ms: int | None
    status: str
    success: bool | None
    error: str | None
    created_at: dt.datetime
    completed_at: dt.datetime | None
    source: str | None
    caller: str | None
    request_id: str | None
    idempotency_key: str | None
    request_hash: str | None
    status_code: int | None
    updated_at: dt.datetime | None
    trace_id: str | None
    cached: bool
    callback_url: str | None
    lease_owner: str | None
    lease_until: dt.datetime | None
    attempts: int
    callback_state: str | None = None  # pending | delivered | failed
    callback_attempts: int = 0
    callback_next_at: dt.datetime | None = None
    callback_status_code: int | None = None
    error_code: str | None = None
    retry_after: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO-8601 UTC strings (``...Z``)."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, dt.datetime):
                out[key] = iso(value)
        return out

    def public(self, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
        """What callers see of an execution: ``PUBLIC_FIELDS`` (REST and gRPC) by default."""
        everything = self.to_dict()
        return {name: everything[name] for name in fields or PUBLIC_FIELDS}


RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(ExecutionRecord))
# The bookkeeping columns (leases, request hashes, the callback outbox) stay inside the module.
PUBLIC_FIELDS = tuple(name for name in RECORD_FIELDS if name not in (
    "request_hash", "lease_owner", "lease_until", "callback_state", "callback_attempts",
    "callback_next_at", "callback_status_code", "error_code", "retry_after"))
# A callback goes to another endpoint than the caller's, so it does not carry the caller's
# idempotency key (its credential for retries, scrubbed from logs too).
CALLBACK_FIELDS = tuple(name for name in PUBLIC_FIELDS if name != "idempotency_key")
_TIMES = ("created_at", "completed_at", "updated_at", "lease_until", "callback_next_at")
_BOOLEANS = ("blocking", "success", "cached")


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_values(row: tuple) -> ExecutionRecord:
    """The record for a row selected by plain SQL, its columns in ``RECORD_FIELDS`` order:
    decoded as PyDAL would (booleans from 'T'/'F', SQLite's times from text)."""
    fields = dict(zip(RECORD_FIELDS, row, strict=True))
    for name in _BOOLEANS:
        fields[name] = values.read_bool(fields[name])
    for name in _TIMES:
        fields[name] = values.read_time(fields[name])
    return _record(fields)


def from_row(row: Any) -> ExecutionRecord:
    """The record for a row PyDAL selected."""
    return _record({name: row[name] for name in RECORD_FIELDS})


def _record(fields: dict[str, Any]) -> ExecutionRecord:
    fields["payload"] = values.loads(fields["payload"])
    fields["result"] = values.loads(fields["result"])
    for name in _TIMES:
        fields[name] = values.aware(fields[name])
    fields["callback_attempts"] = fields["callback_attempts"] or 0
    fields["blocking"] = bool(fields["blocking"])
    fields["cached"] = bool(fields["cached"])
    fields["attempts"] = fields["attempts"] or 0
    return ExecutionRecord(**fields)
