"""The execution store: one row per execution in ``openwhisk_action_executions`` (PyDAL).

Works on SQLite and PostgreSQL. ``ExecutionStore`` is the one object the rest of the module
uses; its parts each have one job:

- ``records``: ``ExecutionRecord`` and the vocabulary (statuses, action types, list limits)
- ``values``: how Python values are written to and read from the table
- ``errors``: ``StoreUnavailable``, ``DuplicateIdempotencyKey``
- ``session``: the bounded session pool, the only module that touches PyDAL's internals
- ``writer``: group commit of the single-statement writes, off the gevent hub for SQLite
- ``schema``: the table, defined once, its indexes and its migration
- ``executions``: create, accept, complete, get, find, list
- ``leases``: the worker's claims on in-flight rows
- ``outbox``: callbacks still owed
- ``stats``: counts and durations
"""

from __future__ import annotations

from owaction.store.errors import DuplicateIdempotencyKey, StoreUnavailable
from owaction.store.executions import Executions
from owaction.store.leases import Leases
from owaction.store.outbox import CallbackOutbox
from owaction.store.records import (
    ACCEPTED,
    ACTION_TYPES,
    DEFAULT_LIST_LIMIT,
    ERROR,
    FAILED,
    FINAL,
    IN_FLIGHT,
    MAX_LIST_LIMIT,
    PENDING,
    STATUSES,
    SUCCEEDED,
    TIMEOUT,
    UNKNOWN,
    ActionType,
    ExecutionRecord,
    Status,
)
from owaction.store.schema import TABLE
from owaction.store.session import Database
from owaction.store.stats import Stats

__all__ = [
    "ACCEPTED", "ACTION_TYPES", "DEFAULT_LIST_LIMIT", "ERROR", "FAILED", "FINAL", "IN_FLIGHT",
    "MAX_LIST_LIMIT",
    "PENDING", "STATUSES", "SUCCEEDED", "TABLE", "TIMEOUT", "UNKNOWN", "ActionType",
    "Database", "DuplicateIdempotencyKey", "ExecutionRecord", "ExecutionStore", "Status",
    "StoreUnavailable",
]


class ExecutionStore(Executions, Leases, CallbackOutbox, Stats):
    """Executions in SQLite or PostgreSQL, with bounded sessions per process."""
