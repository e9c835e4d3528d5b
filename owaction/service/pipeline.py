"""The invocation pipeline every invoking use case runs through, once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from owaction import errors, tracing
from owaction.openwhisk import errors as ow
from owaction.service.context import CallContext
from owaction.service.idempotency import Replays, hash_request
from owaction.service.results import ExecutionResult, completed_record


class Pipeline(Replays):
    """The steps every invoking use case takes, in one order."""

    def _execute(self, ctx: CallContext, *, op: str, action_type: str, target: str,
                 namespace: str, body: dict, blocking: bool, timeout_ms: int | None,
                 call: Callable[[str, float], ExecutionResult],
                 fingerprint: tuple | None = (), replay: Callable[..., Any] | None = None,
                 record_request_id: str | None = None) -> Any:
        """Rate limits, cache, record (a repeated idempotency key replays), call, audit: in that
        order, once.

        ``call(execution_id, started)`` talks to OpenWhisk and completes the record. A repeated
        idempotency key answers ``replay(record, request_hash)`` (default: the first request's
        ExecutionResult) and, since it runs nothing, is not counted against the rate limits.
        ``fingerprint`` None means a repeated key need not repeat the request (the router's
        session ids); ``record_request_id`` is recorded instead of the context's request id.
        """
        replay = replay or self._replay
        callback_url = self._callback_url(ctx.callback_url)
        cache_ttl = self._cache_ttl(action_type, target, blocking)
        # Only idempotency and the cache compare requests; the rest skip the hashing.
        compares = cache_ttl or (ctx.idempotency_key and fingerprint is not None)
        request_hash = hash_request(op, namespace, target, body, blocking, timeout_ms,
                                    *(fingerprint or ())) if compares else None
        try:
            self._check_limits(ctx, target)
        except errors.Throttled:
            # A repeated key runs nothing, so it is answered even while its caller is throttled.
            existing = self._idempotent_record(ctx) if ctx.idempotency_key else None
            if existing is None:
                raise
            return replay(existing, request_hash)
        if cache_ttl:
            hit = self.store.find_cached(target, request_hash, max_age=cache_ttl)
            if hit is not None:
                return self._serve_cached(ctx, op, hit, target, body, request_hash,
                                          callback_url, replay)
        record, existing = self._create_or_existing(
            namespace=namespace, action_name=target, action_type=action_type,
            payload=body, blocking=blocking, timeout=timeout_ms, source=ctx.source,
            caller=ctx.caller, request_id=record_request_id or ctx.request_id,
            idempotency_key=ctx.idempotency_key,
            trace_id=ctx.trace_id or tracing.current_trace_id(),
            request_hash=request_hash, callback_url=callback_url,
        )
        if existing is not None:
            # A repeated key (or another request with it won the race): answer what the first
            # request answers; it ran nothing, so it is not counted against the rate limits.
            self._refund_limits(ctx, target)
            return replay(existing, request_hash)
        execution_id = record.execution_id
        started = self._clock()
        try:
            with tracing.span(f"openwhisk {op}", kind="client", action=target,
                              execution_id=execution_id):
                result = call(execution_id, started)
        except ow.OpenWhiskError as exc:
            error = self._fail(ctx, execution_id, action_type, op, exc, target)
            if ctx.idempotency_key and not getattr(exc, "request_sent", True):
                # Nothing reached OpenWhisk, so a retry with the same key must be free to run.
                self.store.forget_idempotency_key(execution_id)
            raise error from None
        self._audit(ctx, op, result, target)
        if result.completed_at is not None:
            result = replace(result, record=completed_record(record, result))
        return result
