"""Server interceptors: authentication, and undecodable requests as INVALID_ARGUMENT.

Both wrap the method handler rather than answering from ``intercept_service``: grpcio calls
``intercept_service`` on its polling thread, while the wrapped behaviour runs on the worker thread
that serves the call, where a context variable set for the call is visible to the servicer.

grpcio asks the interceptors for a handler on every call, on its one polling thread; a method's
wrapped handler is built once and kept, so that each call costs a dictionary look-up there.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from owaction import errors, tracing
from owaction.auth import Claims, TokenVerifier, authorize, bearer_token
from owaction.logs import aaa
from owaction.metrics import IN_FLIGHT, child

log = logging.getLogger("owaction.rpc")

# The verified claims of the call being served; set by AuthInterceptor around the servicer.
CURRENT_CLAIMS: contextvars.ContextVar[Claims | None] = contextvars.ContextVar(
    "owaction_rpc_claims", default=None
)
# The call's text metadata (the first value of each key), read once by AuthInterceptor for the
# servicer; None outside a call.
CURRENT_METADATA: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "owaction_rpc_metadata", default=None
)

# Standard services any client may call without a token.
EXEMPT_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
# Wrapped handlers kept per interceptor: far more than this service has methods.
MAX_CACHED_HANDLERS = 256

_GRPC_IN_FLIGHT = child(IN_FLIGHT, "grpc")


def text_metadata(context: grpc.ServicerContext) -> dict[str, str]:
    """The call's metadata as a dict: the first value of each key; binary values left out."""
    out: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str) and key not in out:
            out[key] = value
    return out


def _wrap_unary(handler: grpc.RpcMethodHandler,
                behaviour: Callable[[Any, grpc.ServicerContext], Any],
                request_deserializer: Callable[[bytes], Any] | None = None,
                ) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class _HandlerCache:
    """A method's wrapped handler, built once per (method, handler) pair."""

    def __init__(self, wrap: Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]):
        self._wrap = wrap
        self._kept: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def get(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        kept = self._kept.get(method)
        if kept is not None and kept[0] is handler:
            return kept[1]
        wrapped = self._wrap(method, handler)
        if len(self._kept) < MAX_CACHED_HANDLERS or method in self._kept:
            self._kept[method] = (handler, wrapped)
        return wrapped


def abort_with(context: grpc.ServicerContext, exc: errors.ServiceError) -> None:
    """End the call with the status of a domain error; its code, Retry-After and execution id
    travel as trailing metadata, after what the call has already put there (its request id)."""
    trailing = list(context.trailing_metadata() or ())
    trailing.append(("error-code", exc.code))
    if exc.retry_after is not None:
        trailing.append(("retry-after", str(max(0, round(exc.retry_after)))))
    if exc.execution_id:
        trailing.append(("execution-id", exc.execution_id))
    context.set_trailing_metadata(tuple(trailing))
    context.abort(getattr(grpc.StatusCode, exc.grpc_status), exc.message)


class AuthInterceptor(grpc.ServerInterceptor):
    """``authorization: Bearer <jwt>`` on every method but health and reflection.

    ``permissions`` maps full method names to the permission each needs; a method of ours that is
    missing from it is refused, so a new RPC cannot ship unguarded by accident.
    """

    def __init__(self, verifier: TokenVerifier, permissions: Mapping[str, str]):
        self._verifier = verifier
        self._permissions = dict(permissions)
        self._handlers = _HandlerCache(self._authenticated)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(EXEMPT_PREFIXES):
            return handler
        if handler.unary_unary is None:  # every RPC of this service is unary
            return handler
        return self._handlers.get(method, handler)

    def _authenticated(self, method: str, handler: grpc.RpcMethodHandler
                       ) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        permission = self._permissions.get(method)
        span_name = f"gRPC {method}"

        def authenticated(request, context):
            metadata = text_metadata(context)
            try:
                claims = self._check(context, method, permission,
                                     metadata.get("authorization"))
            except errors.ServiceError as exc:
                abort_with(context, exc)
            claims_token = CURRENT_CLAIMS.set(claims)
            metadata_token = CURRENT_METADATA.set(metadata)
            _GRPC_IN_FLIGHT.inc()
            try:
                if not tracing.enabled():
                    return inner(request, context)
                with tracing.span(span_name, kind="server",
                                  traceparent=metadata.get("traceparent"), rpc=method,
                                  caller=claims.service):
                    return inner(request, context)
            finally:
                _GRPC_IN_FLIGHT.dec()
                CURRENT_METADATA.reset(metadata_token)
                CURRENT_CLAIMS.reset(claims_token)

        return _wrap_unary(handler, authenticated)

    def _check(self, context: grpc.ServicerContext, method: str, permission: str | None,
               header: str | None) -> Claims:
        rpc = method.rsplit("/", 1)[-1]
        try:
            claims = self._verifier.verify(bearer_token(header))
        except errors.Unauthenticated as exc:
            aaa("AUTH", rpc, "DENIED", level=logging.WARNING, reason=exc.code,
                peer=context.peer(), source="grpc")
            raise
        if permission is None:
            aaa("AUTHZ", rpc, "DENIED", level=logging.WARNING, user=claims.service,
                reason="no permission is defined for this method", source="grpc")
            raise errors.PermissionDenied(f"{rpc} is not open to any permission")
        try:
            authorize(claims, permission)
        except errors.PermissionDenied:
            aaa("AUTHZ", rpc, "DENIED", level=logging.WARNING, user=claims.service,
                permission=permission, source="grpc")
            raise
        return claims


class _Undecodable:
    """Stands in for a request protobuf could not parse, so the call can answer
    INVALID_ARGUMENT instead of grpcio's INTERNAL "Exception deserializing request!"."""

    def __init__(self, reason: str):
        self.reason = reason


class DecodeGuardInterceptor(grpc.ServerInterceptor):
    """Requests that do not parse (invalid UTF-8 in a string field, truncated bytes) answer
    INVALID_ARGUMENT. Placed after the auth interceptor, so an anonymous caller learns nothing
    about the request format."""

    def __init__(self):
        self._handlers = _HandlerCache(self._guarded)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if (handler is None or handler.unary_unary is None
                or handler.request_deserializer is None
                or handler_call_details.method.startswith(EXEMPT_PREFIXES)):
            return handler
        return self._handlers.get(handler_call_details.method, handler)

    @staticmethod
    def _guarded(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        parse = handler.request_deserializer
        inner = handler.unary_unary

        def lenient(data: bytes):
            try:
                return parse(data)
            except (DecodeError, UnicodeDecodeError, ValueError) as exc:
                return _Undecodable(str(exc) or type(exc).__name__)

        def guarded(request, context):
            if isinstance(request, _Undecodable):
                abort_with(context, errors.InvalidInput(
                    f"the request is not a valid protobuf message: {request.reason}",
                    code="malformed_request",
                ))
            return inner(request, context)

        return _wrap_unary(handler, guarded, request_deserializer=lenient)
