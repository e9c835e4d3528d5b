"""OpenWhisk client errors as domain errors, with the status each leaves on the record."""

from __future__ import annotations

from owaction import errors
from owaction.openwhisk import errors as ow
from owaction.store.records import ERROR, TIMEOUT

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
