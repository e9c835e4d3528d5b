"""The action service: the one place where the steps of every operation live.

Each invoking method validates its input, records the execution as ``pending``, calls OpenWhisk,
completes the record, and returns an ``ExecutionResult`` that the REST and gRPC doors translate.
No database session is held while OpenWhisk is working: the store's methods each take and give
back their own session.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from owaction import errors, tracing
from owaction.commands import CommandMap, action_payload, reply_fields
from owaction.config import Settings
from owaction.inputs import (
    COMMAND_FIELD_LENGTHS,
    MAX_ACTION_NAME_FILTER,
    check_execution_id,
    check_text,
    parse_instant,
)
from owaction.logs import aaa
from owaction.metrics import BREAKER_STATE, BREAKER_VALUES, observe_execution, observe_store
from owaction.names import (
    InvalidName,
    check_activation_id,
    check_name,
    check_namespace,
    split_action,
)
from owaction.openwhisk import errors as ow
from owaction.openwhisk.client import DEFAULT_WEB_EXTENSION, reserved_header
from owaction.openwhisk.models import (
    STATUS_WHISK_ERROR,
    ActionInfo,
    ActionResult,
    Activation,
    ActivationPending,
    TriggerFired,
    WebActionResponse,
)
from owaction.store import DuplicateIdempotencyKey
from owaction.webhooks.deliveries import WebhookDeliveries
from owaction.webhooks.hooks import HookMap

log = logging.getLogger("owaction.service")

WEB_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
WEB_EXTENSIONS = ("", ".json", ".http", ".html", ".svg", ".text")
# An HTTP field name (RFC 9110 token) and a value of visible ASCII without outer whitespace:
# anything else cannot be sent, and must be the caller's error, not "OpenWhisk unreachable".
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HEADER_VALUE_PATTERN = r"^([!-~]([ -~]*[!-~])?)?$"
_HEADER_NAME = re.compile(HEADER_NAME_PATTERN)
_HEADER_VALUE = re.compile(HEADER_VALUE_PATTERN)
LIST_LIMIT_MAX = 200  # OpenWhisk's query limit; 0 means "the maximum"

# Store statuses.
PENDING, ACCEPTED, SUCCEEDED, FAILED, ERROR, TIMEOUT, UNKNOWN = (
    "pending", "accepted", "succeeded", "failed", "error", "timeout", "unknown",
)
FINAL_STATUSES = (SUCCEEDED, FAILED, ERROR, TIMEOUT, UNKNOWN)


MAX_CALLBACK_URL = 2048
_REQUEST_ID = re.compile(r"\A[A-Za-z0-9._-]{1,128}\Z")
_IDEMPOTENCY_KEY = re.compile(r"\A[\x21-\x7e]{1,255}\Z")
_TRACEPARENT = re.compile(r"\A[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}\Z")


def sane_request_id(given: str | None) -> str:
    """A caller's request id when it is safe to log and pass on to OpenWhisk, else a new one."""
    return given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex


@dataclass(frozen=True)
class CallContext:
    """Who is calling and under what constraints; built by a front door."""

    source: str = "rest"  # rest | grpc | router | worker | cli
    caller: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None
    deadline: float | None = None  # a time.monotonic() instant bounding the whole call
    trace_id: str | None = None
    traceparent: str | None = None
    community: str | None = None
    user: str | None = None
    callback_url: str | None = None

    @classmethod
    def for_request(cls, *, source: str, caller: str | None, request_id: str | None,
                    idempotency_key: str | None = None, traceparent: str | None = None,
                    callback_url: str | None = None,
                    deadline: float | None = None) -> CallContext:
        """A context from what a caller sent, by the same rules on every door: a sane request
        id is kept (else one is made), an idempotency key must be 1-255 visible ASCII
        characters, an invalid W3C traceparent is ignored (as Trace Context asks of a
        receiver), and a callback URL is at most MAX_CALLBACK_URL characters."""
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise errors.InvalidInput(
                "Idempotency-Key (idempotency_key) must be 1-255 visible ASCII characters")
        if callback_url is not None and len(callback_url) > MAX_CALLBACK_URL:
            raise errors.InvalidInput(f"X-Callback-Url (callback_url) must be at most "
                                      f"{MAX_CALLBACK_URL} characters")
        parent = (traceparent or "").strip().lower()
        trace = _TRACEPARENT.match(parent)
        return cls(
            source=source, caller=caller, request_id=sane_request_id(request_id),
            idempotency_key=idempotency_key, deadline=deadline,
            trace_id=trace.group(1) if trace else None,
            traceparent=parent if trace else None, callback_url=callback_url or None,
        )

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()


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

    @property
    def success(self) -> bool:
        return self.outcome in (SUCCEEDED, ACCEPTED)


_NOT_FINITE = ("payload holds NaN, Infinity or a number too large for a double, which JSON "
               "cannot carry")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise errors.InvalidInput(_NOT_FINITE)
    return value


def _no_constant(name: str) -> Any:
    raise errors.InvalidInput(_NOT_FINITE)


def parse_payload(payload: Any, max_bytes: int) -> dict:
    """A JSON object from a dict, None, or JSON text; InvalidInput or PayloadTooLarge if not.

    Python's json reads NaN, Infinity and 1e400 (as inf), which OpenWhisk's JSON cannot hold:
    they are the caller's error here, before anything is recorded or sent."""
    if payload is None or payload == "":
        return {}
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.InvalidInput("payload is not valid UTF-8") from None
    if isinstance(payload, str):
        if len(payload.encode("utf-8")) > max_bytes:
            raise errors.PayloadTooLarge(f"payload is larger than {max_bytes} bytes")
        try:
            payload = json.loads(payload, parse_float=_finite, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise errors.InvalidInput(f"payload is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise errors.InvalidInput("payload must be a JSON object")
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        if "Out of range float" in str(exc):
            raise errors.InvalidInput(_NOT_FINITE) from None
        raise errors.InvalidInput(f"payload is not JSON-serialisable: {exc}") from None
    except (TypeError, RecursionError) as exc:
        raise errors.InvalidInput(f"payload is not JSON-serialisable: {exc}") from None
    size = len(text)  # ASCII, as sent to OpenWhisk
    if "\\ud" in text:
        # A lone surrogate is a legal JSON escape that no database can store as text.
        try:
            json.dumps(payload, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise errors.InvalidInput("payload is not valid Unicode (a lone surrogate)") from None
    if size > max_bytes:
        raise errors.PayloadTooLarge(f"payload is larger than {max_bytes} bytes ({size})")
    return payload


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _error_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


# One table: client exception -> (domain exception, store status, status code to record).
_CLIENT_ERRORS: tuple[tuple[type[Exception], type[errors.ServiceError], str, str], ...] = (
    (ow.InvalidName, errors.InvalidInput, ERROR, "invalid name"),
    (ow.InvalidRequest, errors.InvalidInput, ERROR, "the request cannot be sent as given"),
    (ow.WebActionAuthRequired, errors.PermissionDenied, ERROR, ""),
    (ow.CircuitOpen, errors.Unavailable, ERROR, "OpenWhisk is failing; the circuit is open"),
    (ow.ConnectFailed, errors.Unavailable, ERROR, "OpenWhisk is unreachable"),
    (ow.RequestTimedOut, errors.UpstreamTimeout, TIMEOUT, "OpenWhisk did not answer in time"),
    (ow.ConnectionDropped, errors.Unavailable, ERROR,
     "the connection to OpenWhisk broke before it answered; the action may have run"),
    (ow.BadRequest, errors.InvalidInput, ERROR, ""),
    (ow.Unauthorized, errors.UpstreamFailure, ERROR, "OpenWhisk refused the module's credentials"),
    (ow.Forbidden, errors.PermissionDenied, ERROR, ""),
    (ow.NotFound, errors.NotFound, ERROR, ""),
    (ow.Conflict, errors.Conflict, ERROR, ""),
    (ow.PayloadTooLarge, errors.PayloadTooLarge, ERROR, ""),
    (ow.Throttled, errors.Throttled, ERROR, "OpenWhisk is throttling this namespace"),
    (ow.Unavailable, errors.Unavailable, ERROR, "OpenWhisk is unavailable"),
    (ow.ServerError, errors.UpstreamFailure, ERROR, "OpenWhisk failed"),
    (ow.TransportError, errors.Unavailable, ERROR, "OpenWhisk is unreachable"),
    (ow.OpenWhiskError, errors.UpstreamFailure, ERROR, "OpenWhisk failed"),
)


def translate_client_error(exc: Exception) -> tuple[errors.ServiceError, str, int | None]:
    """The domain error, store status and recorded status code for a client exception."""
    for client_cls, domain_cls, status, default_message in _CLIENT_ERRORS:
        if isinstance(exc, client_cls):
            message = default_message
            upstream = getattr(exc, "message", None) or str(exc)
            if not message:
                message = f"OpenWhisk: {upstream}" if upstream else "OpenWhisk refused the call"
            error = domain_cls(message, retry_after=getattr(exc, "retry_after", None))
            code = getattr(exc, "status_code", None) or error.http_status
            return error, status, code
    raise TypeError(f"not a client error: {exc!r}")  # pragma: no cover - the last row catches all


class ActionService:
    """Validates, records, calls OpenWhisk and completes the record, for every operation."""

    def __init__(self, *, settings: Settings, client: Any, store: Any,
                 commands: CommandMap | None = None, rate_limiter: Any = None,
                 webhooks: HookMap | None = None, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.client = client
        self.store = store
        self.commands = commands if commands is not None else CommandMap()
        self.rate_limiter = rate_limiter
        self._clock = clock
        # The webhook use case lives in its own module; it shares this service's parts.
        self.webhooks = WebhookDeliveries(self, webhooks if webhooks is not None else HookMap())
        self._openwhisk_seen: tuple[float, bool] = (0.0, False)
        self._probe_lock = threading.Lock()
        from owaction.management import EntityManager  # it uses this module's error table

        # Creating, changing and deleting OpenWhisk entities (the `manage` permission).
        self.management = EntityManager(settings=settings, client=client)

    @classmethod
    def from_settings(cls, settings: Settings) -> ActionService:
        from owaction.openwhisk.client import OpenWhiskClient
        from owaction.ratelimit import RateLimiter
        from owaction.store import ExecutionStore

        commands = CommandMap(settings.commands_file,
                              unmapped_package=settings.unmapped_command_package,
                              max_timeout_ms=settings.max_action_timeout)
        return cls(
            settings=settings,
            client=OpenWhiskClient.from_settings(settings),
            store=ExecutionStore.from_settings(settings),
            commands=commands,
            rate_limiter=RateLimiter(settings),
            webhooks=HookMap(settings.webhooks_file),
        )

    def close(self) -> None:
        for part in (self.client, self.store):
            close = getattr(part, "close", None)
            if close:
                close()

    # --- validation ----------------------------------------------------------------------

    def _namespace(self, namespace: str | None) -> str:
        ns = namespace or self.settings.openwhisk_namespace
        try:
            return check_namespace(ns)
        except InvalidName as exc:
            raise errors.InvalidInput(str(exc)) from None

    @staticmethod
    def _action(name: str, what: str = "action_name") -> str:
        try:
            package, action = split_action(name)
        except InvalidName as exc:
            raise errors.InvalidInput(f"{what}: {exc}") from None
        return f"{package}/{action}" if package else action

    def _timeout(self, timeout_ms: int | None) -> int | None:
        if timeout_ms is None or timeout_ms == 0:
            return None
        if not _whole(timeout_ms):
            raise errors.InvalidInput("timeout must be whole milliseconds")
        if not 1 <= timeout_ms <= self.settings.max_action_timeout:
            raise errors.InvalidInput(
                f"timeout must be between 1 and {self.settings.max_action_timeout} ms"
            )
        return timeout_ms

    def _payload(self, payload: Any) -> dict:
        return parse_payload(payload, self.settings.max_payload_bytes)

    def _bounds(self, ctx: CallContext, timeout_ms: int | None) -> tuple[int | None, float | None]:
        """The blocking wait to ask OpenWhisk for and the read timeout, within the deadline."""
        remaining = ctx.remaining()
        if remaining is None:
            return timeout_ms, None
        if remaining <= 0:
            raise errors.UpstreamTimeout("the caller's deadline has passed")
        # Ask OpenWhisk to answer (202 if need be) a little before our caller gives up.
        wait_ms = max(1, int((remaining - 0.25) * 1000))
        wanted = timeout_ms or self.settings.openwhisk_blocking_wait_ms
        return min(wanted, wait_ms), remaining

    # --- recording -----------------------------------------------------------------------

    def _start(self, ctx: CallContext, *, namespace: str, action_name: str, action_type: str,
               payload: dict, blocking: bool, timeout_ms: int | None) -> str:
        record = self.store.create_pending(
            namespace=namespace,
            action_name=action_name,
            action_type=action_type,
            payload=payload,
            blocking=blocking,
            timeout=timeout_ms,
            source=ctx.source,
            caller=ctx.caller,
            request_id=ctx.request_id,
            idempotency_key=ctx.idempotency_key,
            trace_id=ctx.trace_id,
        )
        return record.execution_id

    def _finish(self, execution_id: str, **fields: Any) -> None:
        """Complete a record; a failing write is retried briefly and logged, never raised,
        because OpenWhisk already did the work and the caller must still get its answer."""
        delay = 0.05
        for attempt in range(4):
            try:
                if fields.get("status") == ACCEPTED:
                    self.store.mark_accepted(
                        execution_id,
                        activation_id=fields["activation_id"],
                        status_code=fields.get("status_code", 202),
                    )
                else:
                    self.store.complete(execution_id, **fields)
                return
            except errors.ServiceError as exc:
                if attempt == 3:
                    log.error("could not complete execution %s: %s", execution_id, exc)
                    return
                time.sleep(delay)
                delay *= 2

    def _audit(self, ctx: CallContext, action: str, result: ExecutionResult,
               target: str) -> None:
        """One AUDIT line and the metrics for a finished operation."""
        observe_execution(result.action_type, target, result.outcome,
                          result.duration_ms / 1000 if result.duration_ms is not None else None)
        observe_store(self.store)
        self.breaker_state()
        aaa(
            "AUDIT", action, result.outcome.upper(),
            community=ctx.community, user=ctx.user,
            time=f"{result.duration_ms}ms" if result.duration_ms is not None else None,
            execution_id=result.execution_id, activation_id=result.activation_id,
            caller=ctx.caller, source=ctx.source, status=result.status, target=target,
        )

    def _fail(self, ctx: CallContext, execution_id: str, action_type: str, op: str,
              exc: Exception, target: str) -> errors.ServiceError:
        error, status, code = translate_client_error(exc)
        error.execution_id = execution_id
        self._finish(execution_id, status=status, success=False, error=error.message,
                     status_code=code)
        self._audit(ctx, op, ExecutionResult(
            execution_id=execution_id, action_type=action_type, outcome=status,
            status=status, error=error.message,
        ), target if not isinstance(exc, ow.NotFound) else "(not found)")
        return error

    def _from_activation(self, execution_id: str, action_type: str,
                         outcome: Activation | ActivationPending | ActionResult,
                         started: float) -> ExecutionResult:
        if isinstance(outcome, ActivationPending):
            self._finish(execution_id, status=ACCEPTED, activation_id=outcome.activation_id,
                         status_code=202)
            return ExecutionResult(execution_id=execution_id, action_type=action_type,
                                   outcome=ACCEPTED, status="accepted",
                                   activation_id=outcome.activation_id)
        if isinstance(outcome, ActionResult):
            end = int(self._clock() * 1000)
            duration = int((self._clock() - started) * 1000)
            activation = None
            status, success = ("success", True) if outcome.success else ("application error", False)
            result, activation_id = outcome.result, outcome.activation_id
            start_ms = int(started * 1000)
        else:
            activation = outcome
            status, success = activation.status, activation.success
            result, activation_id = activation.result, activation.activation_id
            duration, start_ms, end = activation.duration, activation.start, activation.end
        if success:
            final, error = SUCCEEDED, None
        elif status == STATUS_WHISK_ERROR:
            final, error = ERROR, _error_text(activation.error if activation else result)
        else:
            final = FAILED
            error = _error_text(activation.error if activation else (result or {}).get("error"))
        self._finish(execution_id, status=final, success=success, activation_id=activation_id,
                     result=result, duration_ms=duration, error=error,
                     status_code=200 if success else 502)
        return ExecutionResult(
            execution_id=execution_id, action_type=action_type, outcome=final, status=status,
            activation_id=activation_id, result=result, error=error, duration_ms=duration,
            start_time=start_ms, end_time=end, activation=activation,
        )

    # --- the pipeline every invoking operation shares ------------------------------------

    def _execute(self, ctx: CallContext, *, op: str, action_type: str, target: str,
                 namespace: str, body: dict, blocking: bool, timeout_ms: int | None,
                 call: Callable[[str, float], ExecutionResult],
                 fingerprint: tuple = ()) -> ExecutionResult:
        """Rate limits, idempotency, cache, record, call, audit: in that order, once.

        ``call(execution_id, started)`` talks to OpenWhisk and completes the record.
        """
        self._check_limits(ctx, target)
        callback_url = self._callback_url(ctx.callback_url)
        cache_ttl = self._cache_ttl(action_type, target, blocking)
        # Only idempotency and the cache compare requests; the rest skip the hashing.
        request_hash = _fingerprint(op, namespace, target, body, blocking, timeout_ms,
                                    *fingerprint) if ctx.idempotency_key or cache_ttl else None
        if ctx.idempotency_key:
            existing = self._idempotent_record(ctx)
            if existing is not None:
                return self._replay(existing, request_hash)
        if cache_ttl:
            hit = self.store.find_cached(target, request_hash, max_age=cache_ttl)
            if hit is not None:
                return self._serve_cached(ctx, op, hit, target, body, request_hash,
                                          callback_url)
        try:
            record = self.store.create_pending(
                namespace=namespace, action_name=target, action_type=action_type,
                payload=body, blocking=blocking, timeout=timeout_ms, source=ctx.source,
                caller=ctx.caller, request_id=ctx.request_id,
                idempotency_key=ctx.idempotency_key,
                trace_id=ctx.trace_id or tracing.current_trace_id(),
                request_hash=request_hash, callback_url=callback_url,
            )
        except DuplicateIdempotencyKey as dup:
            # Another request with this key won the race; answer what it answers.
            return self._replay(dup.existing, request_hash)
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
        return result

    def _check_limits(self, ctx: CallContext, target: str) -> None:
        """Count an invocation against the caller's and the action's rate limits."""
        if self.rate_limiter is not None:
            self.rate_limiter.check_invocation(ctx.caller, target)

    def _idempotent_record(self, ctx: CallContext):
        existing = self.store.find_by_idempotency_key(ctx.caller, ctx.idempotency_key)
        if existing is None:
            return None
        age = (_utcnow() - existing.created_at).total_seconds()
        if age > self.settings.idempotency_ttl:
            self.store.purge_idempotency(self.settings.idempotency_ttl)
            return None
        return existing

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
            raise _error_from_record(record)
        return result_from_record(record)

    def _cache_ttl(self, action_type: str, target: str, blocking: bool) -> int | None:
        if not blocking or action_type not in ("action", "sequence"):
            return None
        return self.settings.cacheable_action_map.get(target)

    def _serve_cached(self, ctx: CallContext, op: str, hit, target: str, body: dict,
                      request_hash: str, callback_url: str | None) -> ExecutionResult:
        """Record a cache hit as its own execution (``cached=true``) and answer from it."""
        try:
            record = self.store.create_pending(
                namespace=hit.namespace, action_name=target, action_type=hit.action_type,
                payload=body, blocking=True, timeout=hit.timeout, source=ctx.source,
                caller=ctx.caller, request_id=ctx.request_id,
                idempotency_key=ctx.idempotency_key, trace_id=ctx.trace_id,
                request_hash=request_hash, callback_url=callback_url, cached=True,
            )
        except DuplicateIdempotencyKey as dup:
            return self._replay(dup.existing, request_hash)
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

    def _callback_url(self, url: str | None) -> str | None:
        """A callback URL the operator allows, or InvalidInput; SSRF stops here."""
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.InvalidInput("callback_url must be an http(s) URL")
        allowed = {h.lower() for h in self.settings.callback_allowed_hosts}
        if parts.hostname.lower() not in allowed:
            raise errors.InvalidInput(
                f"callback_url host {parts.hostname!r} is not allowed (CALLBACK_ALLOWED_HOSTS)"
            )
        return url

    def _invoke(self, ctx: CallContext, *, op: str, action_type: str, name: str,
                namespace: str | None, payload: Any, blocking: bool,
                timeout_ms: int | None) -> ExecutionResult:
        ns = self._namespace(namespace)
        name = self._action(name, "sequence_name" if action_type == "sequence" else "action_name")
        body = self._payload(payload)
        timeout_ms = self._timeout(timeout_ms)
        wait_ms, read_timeout = self._bounds(ctx, timeout_ms) if blocking else (None, None)

        def call(execution_id: str, started: float) -> ExecutionResult:
            if blocking:
                outcome = self.client.invoke_action(
                    name, body, namespace=ns, blocking=True, timeout_ms=wait_ms,
                    request_id=ctx.request_id, read_timeout=read_timeout,
                    headers=self._trace_headers(ctx),
                )
            else:
                outcome = self.client.invoke_action_async(
                    name, body, namespace=ns, request_id=ctx.request_id,
                )
            return self._from_activation(execution_id, action_type, outcome, started)

        return self._execute(ctx, op=op, action_type=action_type, target=name, namespace=ns,
                             body=body, blocking=blocking, timeout_ms=timeout_ms, call=call)

    @staticmethod
    def _trace_headers(ctx: CallContext) -> dict[str, str] | None:
        """The traceparent OpenWhisk gets: our client span's when tracing, else the caller's."""
        traceparent = tracing.current_traceparent() or ctx.traceparent
        return {"traceparent": traceparent} if traceparent else None

    # --- operations ----------------------------------------------------------------------

    def invoke_action(self, ctx: CallContext, *, action_name: str, namespace: str | None = None,
                      payload: Any = None, blocking: bool = True,
                      timeout_ms: int | None = None) -> ExecutionResult:
        return self._invoke(ctx, op="invoke_action", action_type="action" if blocking else "async",
                            name=action_name, namespace=namespace, payload=payload,
                            blocking=blocking, timeout_ms=timeout_ms)

    def invoke_action_async(self, ctx: CallContext, *, action_name: str,
                            namespace: str | None = None, payload: Any = None) -> ExecutionResult:
        return self._invoke(ctx, op="invoke_action_async", action_type="async", name=action_name,
                            namespace=namespace, payload=payload, blocking=False, timeout_ms=None)

    def invoke_sequence(self, ctx: CallContext, *, sequence_name: str,
                        namespace: str | None = None, payload: Any = None, blocking: bool = True,
                        timeout_ms: int | None = None) -> ExecutionResult:
        return self._invoke(ctx, op="invoke_sequence", action_type="sequence", name=sequence_name,
                            namespace=namespace, payload=payload, blocking=blocking,
                            timeout_ms=timeout_ms)

    def invoke_web_action(self, ctx: CallContext, *, action_name: str,
                          package_name: str | None = "default", namespace: str | None = None,
                          payload: Any = None, method: str = "POST",
                          headers: dict[str, str] | None = None,
                          extension: str | None = DEFAULT_WEB_EXTENSION) -> ExecutionResult:
        ns = self._namespace(namespace)
        package = package_name or "default"
        try:
            split_action(f"{package}/{action_name}")
        except InvalidName as exc:
            raise errors.InvalidInput(str(exc)) from None
        method = (method or "POST").upper()
        if method not in WEB_METHODS:
            raise errors.InvalidInput(f"method must be one of {', '.join(WEB_METHODS)}")
        extension = extension if extension is not None else DEFAULT_WEB_EXTENSION
        if extension and not extension.startswith("."):
            extension = "." + extension
        if extension not in WEB_EXTENSIONS:
            raise errors.InvalidInput(f"extension must be one of {', '.join(WEB_EXTENSIONS[1:])}")
        headers = dict(headers or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise errors.InvalidInput("headers must map strings to strings")
        for name, value in headers.items():
            if not _HEADER_NAME.match(name) or not _HEADER_VALUE.match(value):
                raise errors.InvalidInput(
                    f"header {name[:64]!r} cannot be sent: names are HTTP tokens, values "
                    "visible ASCII without leading or trailing spaces")
            if reserved_header(name):
                raise errors.InvalidInput(
                    f"header {name!r} cannot be sent: hop-by-hop and framing headers (Host, "
                    "Connection, Content-Length, Transfer-Encoding, TE, Trailer, Upgrade, "
                    "Keep-Alive, Expect, Proxy-*) are the module's own")
        body = self._payload(payload)
        target = f"{package}/{action_name}"

        def call(execution_id: str, started: float) -> ExecutionResult:
            response: WebActionResponse = self.client.invoke_web_action(
                action_name, body, namespace=ns, package=package, method=method,
                headers=headers, extension=extension, request_id=ctx.request_id,
            )
            duration = int((self._clock() - started) * 1000)
            success = response.status_code < 400
            text = response.text()
            if response.status_code == 202:
                outcome = ACCEPTED if response.activation_id else SUCCEEDED
            else:
                outcome = SUCCEEDED if success else FAILED
            error = None if success else (text[:1000] or f"HTTP {response.status_code}")
            if outcome == ACCEPTED:
                self._finish(execution_id, status=ACCEPTED,
                             activation_id=response.activation_id, status_code=202)
            else:
                self._finish(execution_id, status=outcome, success=success,
                             activation_id=response.activation_id,
                             result=_web_result(response), duration_ms=duration, error=error,
                             status_code=response.status_code)
            return ExecutionResult(
                execution_id=execution_id, action_type="web", outcome=outcome,
                status="success" if success else "error", activation_id=response.activation_id,
                result=_web_result(response), error=error, duration_ms=duration,
                start_time=int(started * 1000), end_time=int(self._clock() * 1000),
                status_code=response.status_code, response_body=text,
                response_headers=dict(response.headers),
            )

        return self._execute(ctx, op="invoke_web_action", action_type="web", target=target,
                             namespace=ns, body=body, blocking=True, timeout_ms=None, call=call,
                             fingerprint=(method, extension, tuple(sorted(headers.items()))))

    def fire_trigger(self, ctx: CallContext, *, trigger_name: str, namespace: str | None = None,
                     payload: Any = None) -> ExecutionResult:
        ns = self._namespace(namespace)
        try:
            check_name(trigger_name, "trigger_name")
        except InvalidName as exc:
            raise errors.InvalidInput(str(exc)) from None
        body = self._payload(payload)

        def call(execution_id: str, started: float) -> ExecutionResult:
            fired: TriggerFired = self.client.fire_trigger(
                trigger_name, body, namespace=ns, request_id=ctx.request_id,
            )
            duration = int((self._clock() - started) * 1000)
            if fired.fired:
                self._finish(execution_id, status=ACCEPTED, activation_id=fired.activation_id,
                             status_code=202)
                return ExecutionResult(execution_id=execution_id, action_type="trigger",
                                       outcome=ACCEPTED, status="accepted",
                                       activation_id=fired.activation_id, duration_ms=duration)
            self._finish(execution_id, status=SUCCEEDED, success=True, duration_ms=duration,
                         status_code=204)
            return ExecutionResult(execution_id=execution_id, action_type="trigger",
                                   outcome=SUCCEEDED, status="no active rule",
                                   duration_ms=duration)

        return self._execute(ctx, op="fire_trigger", action_type="trigger", target=trigger_name,
                             namespace=ns, body=body, blocking=False, timeout_ms=None, call=call)

    def get_activation(self, ctx: CallContext, *, activation_id: str,
                       namespace: str | None = None) -> Activation:
        ns = self._namespace(namespace)
        try:
            check_activation_id(activation_id)
        except InvalidName as exc:
            raise errors.InvalidInput(str(exc)) from None
        try:
            return self.client.get_activation(activation_id, namespace=ns)
        except ow.NotFound:
            raise errors.NotFound(f"activation {activation_id} does not exist") from None
        except ow.OpenWhiskError as exc:
            raise translate_client_error(exc)[0] from None

    def list_actions(self, ctx: CallContext, *, namespace: str | None = None, limit: int = 30,
                     skip: int = 0) -> list[ActionInfo]:
        ns = self._namespace(namespace)
        if not _whole(limit) or not 0 <= limit <= LIST_LIMIT_MAX:
            raise errors.InvalidInput(f"limit must be between 0 and {LIST_LIMIT_MAX}")
        if not _whole(skip) or skip < 0:
            raise errors.InvalidInput("skip must be 0 or more")
        try:
            return self.client.list_actions(namespace=ns, limit=limit, skip=skip)
        except ow.OpenWhiskError as exc:
            raise translate_client_error(exc)[0] from None

    # --- WaddleBot #commands --------------------------------------------------------------

    def execute_command(self, ctx: CallContext, *, command: str, args: str = "",
                        user_id: str = "", entity_id: str = "", community_id: str = "",
                        session_id: str = "", message: str = "") -> dict:
        """Run the action a router #command maps to; always a ModuleResponse dict.

        A repeat of a ``session_id`` (the router retries) never invokes the action again: it gets
        the first request's reply, waiting for it while it is still running. That holds across
        processes because the session id is the execution's idempotency key in the store.
        """
        started = self._clock()
        fields = {"command": command, "args": args, "user_id": user_id, "entity_id": entity_id,
                  "community_id": community_id, "session_id": session_id, "message": message}
        for name, value in fields.items():
            fields[name] = check_text("" if value is None else value, name,
                                      COMMAND_FIELD_LENGTHS[name])
        command = fields["command"].strip()
        # The router always sends both; without a session id its retries would run the action
        # again, so a call lacking either is refused rather than run unprotected.
        missing = [name for name, value in (("command", command),
                                            ("session_id", fields["session_id"].strip()))
                   if not value]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise errors.InvalidInput(f"{' and '.join(missing)} {verb} required")
        session_id = fields["session_id"]
        ctx = replace(ctx, community=community_id or None, user=user_id or None,
                      request_id=ctx.request_id)
        found = self.commands.lookup(command)
        shown = command.split(" ", 1)[0]
        if found is None or not found.enabled:
            text = (f"Unknown command {shown}." if found is None
                    else f"The command {shown} is disabled.")
            aaa("AUDIT", "execute_command", "UNKNOWN" if found is None else "DISABLED",
                community=community_id, user=user_id, command=shown, session_id=session_id)
            return self._module_response(session_id=session_id, success=False,
                                         error_message=text, started=started)
        key = f"session:{session_id}" if session_id else None
        if key:
            existing = self.store.find_by_idempotency_key(ctx.caller, key)
            if existing is not None:
                return self._replay_command(existing, found)
        self._check_limits(ctx, found.action)  # a replay runs nothing, so only new calls count
        payload = action_payload(
            command=shown, args=fields["args"], user_id=user_id, entity_id=entity_id,
            community_id=community_id, session_id=session_id, message=fields["message"],
            timestamp=_iso_now(),
        )
        wait_ms, read_timeout = self._bounds(ctx, found.timeout_ms)
        ns = self._namespace(None)
        try:
            record = self.store.create_pending(
                namespace=ns, action_name=found.action, action_type="command",
                payload=payload, blocking=True, timeout=found.timeout_ms, source=ctx.source,
                caller=ctx.caller, request_id=session_id or ctx.request_id,
                idempotency_key=key, trace_id=ctx.trace_id,
            )
        except DuplicateIdempotencyKey as dup:
            return self._replay_command(dup.existing, found)
        execution_id = record.execution_id
        try:
            outcome = self.client.invoke_action(
                found.action, payload, namespace=ns, blocking=True, timeout_ms=wait_ms,
                request_id=ctx.request_id, read_timeout=read_timeout,
                headers=self._trace_headers(ctx),
            )
        except ow.Throttled as exc:
            raise self._fail(ctx, execution_id, "command", "execute_command", exc,
                             found.action) from None
        except ow.OpenWhiskError as exc:
            self._fail(ctx, execution_id, "command", "execute_command", exc, found.action)
        else:
            result = self._from_activation(execution_id, "command", outcome, started)
            self._audit(ctx, "execute_command", result, found.action)
        return self._reply_from_record(self.store.get(execution_id), found)

    def _replay_command(self, record, found) -> dict:
        """The reply of an earlier request for the same session, once it is final (bounded)."""
        wait_s = (found.timeout_ms or self.settings.openwhisk_blocking_wait_ms) / 1000 + 2
        deadline = time.monotonic() + wait_s
        while not record.is_final and time.monotonic() < deadline:
            time.sleep(0.1)
            record = self.store.get(record.execution_id) or record
        aaa("AUDIT", "execute_command", "REPLAYED", execution_id=record.execution_id,
            session_id=record.request_id)
        return self._reply_from_record(record, found)

    def _reply_from_record(self, record, found) -> dict:
        """The ModuleResponse for an execution, built only from the stored record so that a
        replay answers exactly what the first request answered."""
        command = ((record.payload or {}).get("trigger") or {}).get("command") or found.command
        finished = record.completed_at or record.updated_at or record.created_at
        base = {
            "execution_id": record.execution_id,
            "session_id": (record.payload or {}).get("session_id", record.request_id or ""),
            "processing_time_ms": max(0, int(
                (finished - record.created_at).total_seconds() * 1000)),
            "timestamp": finished.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
        if record.status == SUCCEEDED:
            fields = reply_fields(record.result)
            success = fields.pop("success", True)
            return self._module_response(success=success, error_message=None if success else
                                         f"Sorry, {command} could not answer.", **base, **fields)
        if record.status in (PENDING, ACCEPTED) or "time limit" in (record.error or ""):
            text = f"Sorry, {command} took too long to answer. Please try again later."
        elif record.status == FAILED:
            text = f"Sorry, {command} failed. Please try again later."
        else:
            text = f"Sorry, {command} is unavailable right now. Please try again later."
        return self._module_response(success=False, error_message=text, **base)

    def _module_response(self, *, success: bool, started: float | None = None,
                         **fields: Any) -> dict:
        reply = {
            "execution_id": None,
            "session_id": "",
            "module_name": self.settings.module_name,
            "success": success,
            "response_action": "chat",
            "response_data": {},
            "media_type": None,
            "media_url": None,
            "ticker_text": None,
            "ticker_duration": 10,
            "chat_message": None,
            "error_message": None,
            "processing_time_ms": (int((self._clock() - started) * 1000)
                                   if started is not None else 0),
            "timestamp": _iso_now(),
        }
        reply.update({k: v for k, v in fields.items() if k in reply})
        return reply

    # --- executions ----------------------------------------------------------------------

    def get_execution(self, execution_id: str, *, refresh: bool = True):
        check_execution_id(execution_id)
        record = self.store.get(execution_id)
        if record is None:
            raise errors.NotFound(f"execution {execution_id} does not exist")
        if refresh and record.status == ACCEPTED and record.activation_id:
            refreshed = self.refresh_execution(record)
            if refreshed is not None:
                return refreshed
        return record

    def refresh_execution(self, record):
        """Complete an accepted execution from its activation, if OpenWhisk has it; the new
        record, or None when the outcome is still unknown."""
        try:
            activation = self.client.get_activation(
                record.activation_id, namespace=record.namespace or None
            )
        except ow.NotFound:
            return None
        except ow.OpenWhiskError as exc:
            log.info("could not refresh execution %s: %s", record.execution_id, exc)
            return None
        self._from_activation(record.execution_id, record.action_type, activation,
                              started=self._clock())
        return self.store.get(record.execution_id)

    def list_executions(self, *, action_name: str | None = None, action_type: str | None = None,
                        status: str | None = None, since: Any = None, until: Any = None,
                        limit: int = 50, cursor: str | None = None):
        if not _whole(limit) or not 1 <= limit <= 500:
            raise errors.InvalidInput("limit must be between 1 and 500")
        if action_name is not None:
            check_text(action_name, "action_name", MAX_ACTION_NAME_FILTER)
        since, until = parse_instant(since, "since"), parse_instant(until, "until")
        try:
            return self.store.list(action_name=action_name, action_type=action_type,
                                   status=status, since=since, until=until, limit=limit,
                                   cursor=cursor)
        except ValueError as exc:
            raise errors.InvalidInput(str(exc)) from None

    def stats(self) -> dict:
        """The store's figures, plus the original module's field names callers read."""
        stats = self.store.stats()
        by_status = stats.get("by_status", {})
        stats["total_executions"] = stats.get("total", 0)
        stats["successful_executions"] = by_status.get(SUCCEEDED, 0)
        stats["failed_executions"] = sum(
            by_status.get(s, 0) for s in (FAILED, ERROR, TIMEOUT, UNKNOWN)
        )
        return stats

    def health(self) -> dict:
        """Database by ``SELECT 1``; OpenWhisk reachability cached for a few seconds."""
        database = self.store.ping(timeout=1.0)
        return {
            "database": "connected" if database else "unavailable",
            "openwhisk": "reachable" if self._openwhisk_reachable() else "unreachable",
            "breaker": self.breaker_state(),
            "healthy": database,
        }

    def breaker_state(self) -> str:
        """closed, open or half-open; also published as a metric."""
        breaker = getattr(self.client, "breaker", None)
        state = str(getattr(breaker, "current_state", "closed")) if breaker else "closed"
        BREAKER_STATE.set(BREAKER_VALUES.get(state, 0))
        return state

    def _openwhisk_reachable(self) -> bool:
        """Cached for 10 s; one probe at a time (the others answer the last known state), and
        outside the circuit breaker, so a flood of health checks can never open it."""
        checked_at, ok = self._openwhisk_seen
        if time.monotonic() - checked_at < 10 or not self._probe_lock.acquire(blocking=False):
            return ok
        try:
            try:
                self.client.info(timeout=1.0, guarded=False)
                ok = True
            except ow.OpenWhiskError:
                ok = False
            self._openwhisk_seen = (time.monotonic(), ok)
        finally:
            self._probe_lock.release()
        return ok


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _fingerprint(*parts: Any) -> str:
    """A stable hash of what a request asks for (idempotency and the result cache)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Recorded status code -> the error a replay raises again.
_REPLAYED_ERRORS: dict[int, type[errors.ServiceError]] = {
    400: errors.InvalidInput, 403: errors.PermissionDenied, 404: errors.NotFound,
    409: errors.Conflict, 413: errors.PayloadTooLarge, 429: errors.Throttled,
    503: errors.Unavailable, 504: errors.UpstreamTimeout,
}


def _error_from_record(record) -> errors.ServiceError:
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


def _iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _web_result(response: WebActionResponse) -> Any:
    if "json" in response.content_type:
        try:
            return json.loads(response.body or b"null")
        except ValueError:
            pass
    return {"body": response.text()[:4096], "content_type": response.content_type}
