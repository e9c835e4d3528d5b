"""Idempotency keys (replay or mismatch) and the result cache."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from typing import Any

from owaction import errors
from owaction.logs import aaa
from owaction.service.context import CallContext
from owaction.service.recording import Recording
from owaction.service.results import ExecutionResult, error_from_record, result_from_record
from owaction.store import DuplicateIdempotencyKey
from owaction.store.records import ERROR, PENDING, SUCCEEDED, TIMEOUT, UNKNOWN


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def hash_request(*parts: Any) -> str:
    """A stable hash of what a request asks for (idempotency and the result cache)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Replays(Recording):
    """A repeated key answers what the first request answered; a cache hit is its own execution."""

    def _idempotent_record(self, ctx: CallContext):
        """The live execution holding the context's key, else None (an expired key is freed)."""
        existing = self.store.find_by_idempotency_key(ctx.caller, ctx.idempotency_key)
        if existing is None or self._expired(existing):
            return None
        return existing

    def _expired(self, record) -> bool:
        """True, and the expired keys freed, when ``record`` holds its key past the TTL."""
        age = (_utcnow() - record.created_at).total_seconds()
        if age <= self.settings.idempotency_ttl:
            return False
        self.store.purge_idempotency(self.settings.idempotency_ttl)
        return True

    def _create_or_existing(self, **fields):
        """``(record, None)`` for a new pending row, or ``(None, existing)`` when a live
        execution already holds the idempotency key.

        The insert goes first and the unique index decides, so the common case (a new key) is
        one round trip; only a taken key is read, and an expired one is freed and tried again.
        """
        for attempt in (1, 2):
            try:
                return self.store.create_pending(**fields), None
            except DuplicateIdempotencyKey as dup:
                if attempt == 2 or not self._expired(dup.existing):
                    return None, dup.existing
        raise AssertionError("unreachable")  # pragma: no cover

    def _replay(self, record, request_hash: str) -> ExecutionResult:
        """The first request's answer for a repeated idempotency key."""
        if record.request_hash and record.request_hash != request_hash:
            raise errors.IdempotencyMismatch(
                "this Idempotency-Key was used for a different request",
                execution_id=record.execution_id,
            )
        deadline = time.monotonic() + self.settings.openwhisk_blocking_wait_ms / 1000 + 5
        while record.status == PENDING and time.monotonic() < deadline:
            time.sleep(0.1)
            record = self.store.get(record.execution_id) or record
        aaa("AUDIT", "idempotent_replay", record.status.upper(),
            execution_id=record.execution_id, caller=record.caller)
        if record.status in (ERROR, TIMEOUT, UNKNOWN) and record.status_code not in (200, 202):
            raise error_from_record(record)
        return result_from_record(record)

    def _cache_ttl(self, action_type: str, target: str, blocking: bool) -> int | None:
        if not blocking or action_type not in ("action", "sequence"):
            return None
        return self.settings.cacheable_action_map.get(target)

    def _serve_cached(self, ctx: CallContext, op: str, hit, target: str, body: dict,
                      request_hash: str, callback_url: str | None, replay) -> Any:
        """Record a cache hit as its own execution (``cached=true``) and answer from it."""
        record, existing = self._create_or_existing(
            namespace=hit.namespace, action_name=target, action_type=hit.action_type,
            payload=body, blocking=True, timeout=hit.timeout, source=ctx.source,
            caller=ctx.caller, request_id=ctx.request_id,
            idempotency_key=ctx.idempotency_key, trace_id=ctx.trace_id,
            request_hash=request_hash, callback_url=callback_url, cached=True,
        )
        if existing is not None:
            self._refund_limits(ctx, target)
            return replay(existing, request_hash)
        self._finish(record.execution_id, status=SUCCEEDED, success=True,
                     activation_id=hit.activation_id, result=hit.result, duration_ms=0,
                     status_code=200)
        result = ExecutionResult(
            execution_id=record.execution_id, action_type=hit.action_type, outcome=SUCCEEDED,
            status="success", activation_id=hit.activation_id, result=hit.result,
            duration_ms=0, cached=True,
        )
        self._audit(ctx, op, result, target)
        return result
