"""Errors raised by the OpenWhisk client. ``requests`` exceptions never leave the client.

    OpenWhiskError
    ├── InvalidName (also a ValueError)   misuse: a name OpenWhisk would refuse; nothing was sent
    ├── InvalidRequest (also a ValueError) a payload or header HTTP cannot carry; nothing was sent
    ├── TransportError                    no HTTP answer
    │   ├── ConnectFailed                 the connection was never made (nothing was sent)
    │   ├── ConnectionDropped             the connection broke after the request may have been sent
    │   ├── RequestTimedOut               no answer within the read timeout
    │   └── CircuitOpen                   the breaker is open; nothing was sent   .retry_after
    └── HTTPStatusError                   OpenWhisk answered with an error status
        ├── BadRequest            400 (and 415)
        ├── Unauthorized          401
        │   └── WebActionAuthRequired   a web action's require-whisk-auth refused the call
        ├── Forbidden             403
        ├── NotFound              404
        ├── Conflict              409
        ├── PayloadTooLarge       413
        ├── Throttled             429   .retry_after
        ├── ServerError           500 and any other 5xx not below
        ├── BadGateway            502   (only when the body is not an activation)
        └── Unavailable           503, 504

A blocking invoke whose action failed is not an error: it returns an ``Activation`` whose
``success`` is False (OpenWhisk's 502 with the activation record).
"""

from __future__ import annotations

from owaction.names import InvalidName as _InvalidName


class OpenWhiskError(Exception):
    """Base of every client error."""


class InvalidName(_InvalidName, OpenWhiskError):
    """A name or id OpenWhisk would refuse; raised before any request."""


class InvalidRequest(OpenWhiskError, ValueError):
    """The request cannot be sent as given (e.g. NaN in a JSON payload); nothing was sent."""


class TransportError(OpenWhiskError):
    """No HTTP response was received."""

    #: True when the request certainly never reached OpenWhisk (safe to retry even a POST).
    request_sent = True
    #: True when no answer came within the time allowed (connecting or reading).
    timed_out = False


class ConnectFailed(TransportError):
    request_sent = False


class ConnectionDropped(TransportError):
    pass


class RequestTimedOut(TransportError):
    timed_out = True


class CircuitOpen(TransportError):
    """The circuit breaker is open: OpenWhisk has been failing, so nothing was sent."""

    request_sent = False

    def __init__(self, message: str = "OpenWhisk is failing; the circuit breaker is open",
                 *, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class HTTPStatusError(OpenWhiskError):
    status_code = 0

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        body: object = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.request_id = request_id
        self.body = body
        self.retry_after = retry_after


class BadRequest(HTTPStatusError):
    status_code = 400


class Unauthorized(HTTPStatusError):
    status_code = 401


class WebActionAuthRequired(Unauthorized):
    """OpenWhisk refused a web action call for its ``require-whisk-auth`` annotation."""


class Forbidden(HTTPStatusError):
    status_code = 403


class NotFound(HTTPStatusError):
    status_code = 404


class Conflict(HTTPStatusError):
    status_code = 409


class PayloadTooLarge(HTTPStatusError):
    status_code = 413


class Throttled(HTTPStatusError):
    status_code = 429


class ServerError(HTTPStatusError):
    status_code = 500


class BadGateway(ServerError):
    status_code = 502


class Unavailable(ServerError):
    status_code = 503


# The one table from status to exception class (stripe-python's pattern).
STATUS_ERRORS: dict[int, type[HTTPStatusError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: BadRequest,
    429: Throttled,
    500: ServerError,
    502: BadGateway,
    503: Unavailable,
    504: Unavailable,
}


def error_for_status(status: int) -> type[HTTPStatusError]:
    if status in STATUS_ERRORS:
        return STATUS_ERRORS[status]
    if status >= 500:
        return ServerError
    return BadRequest
