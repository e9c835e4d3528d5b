"""The action service: the one place where the steps of every operation live.

Each invoking use case validates its input, records the execution as ``pending``, calls
OpenWhisk, completes the record, and returns an ``ExecutionResult`` that the REST and gRPC doors
translate. No database session is held while OpenWhisk is working: the store's methods each take
and give back their own session. ``ActionService`` is composed of one part per concern:

- ``context``: ``CallContext`` and the caller-input rules
- ``validation``: payloads, web methods, extensions, headers, list limits
- ``results``: ``ExecutionResult`` and answers rebuilt from a stored execution
- ``translation``: OpenWhisk client errors as domain errors
- ``core``: the parts (settings, client, store, limiter) and the shared input checks
- ``ports``: what the service needs of those parts, as Protocols
- ``recording``: completing records, the AUDIT line and metrics
- ``idempotency``: replays of a repeated key, and the result cache
- ``pipeline``: the one invocation pipeline
- ``invocations``, ``router``, ``reads``, ``health``, ``tokens``: the use cases
- ``entities``: managing OpenWhisk entities (``ActionService.management``)
- ``webhooks``: signed inbound webhooks, once per delivery (``ActionService.webhooks``)
"""

from __future__ import annotations

from owaction.openwhisk.client import WEB_METHODS
from owaction.service.context import MAX_CALLBACK_URL, CallContext, sane_request_id
from owaction.service.health import Health
from owaction.service.invocations import Invocations
from owaction.service.reads import Reads
from owaction.service.results import ExecutionResult, result_from_record, timestamp
from owaction.service.router import RouterCommands
from owaction.service.tokens import IssuedToken, Tokens
from owaction.service.translation import translate_client_error
from owaction.service.validation import (
    ACTION_LIST_DEFAULT,
    HEADER_NAME_PATTERN,
    HEADER_VALUE_PATTERN,
    LIST_LIMIT_MAX,
    WEB_EXTENSIONS,
    parse_payload,
)
from owaction.store.records import ACCEPTED, ERROR, FAILED, PENDING, SUCCEEDED, TIMEOUT, UNKNOWN

__all__ = [
    "ACCEPTED", "ACTION_LIST_DEFAULT", "ERROR", "FAILED", "HEADER_NAME_PATTERN",
    "HEADER_VALUE_PATTERN",
    "LIST_LIMIT_MAX", "MAX_CALLBACK_URL", "PENDING", "SUCCEEDED", "TIMEOUT", "UNKNOWN",
    "WEB_EXTENSIONS", "WEB_METHODS", "ActionService", "CallContext", "ExecutionResult",
    "IssuedToken",
    "parse_payload", "result_from_record", "sane_request_id", "timestamp",
    "translate_client_error",
]


class ActionService(Invocations, RouterCommands, Reads, Health, Tokens):
    """Validates, records, calls OpenWhisk and completes the record, for every operation."""
