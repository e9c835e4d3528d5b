"""The OpenWhisk client, its error tree and its typed results."""

from owaction.openwhisk import errors
from owaction.openwhisk.client import OpenWhiskClient
from owaction.openwhisk.errors import (
    BadGateway,
    BadRequest,
    CircuitOpen,
    Conflict,
    ConnectFailed,
    ConnectionDropped,
    Forbidden,
    HTTPStatusError,
    InvalidName,
    NotFound,
    OpenWhiskError,
    PayloadTooLarge,
    RequestTimedOut,
    ServerError,
    Throttled,
    TransportError,
    Unauthorized,
    Unavailable,
    error_for_status,
)
from owaction.openwhisk.models import (
    ActionInfo,
    ActionResult,
    Activation,
    ActivationPending,
    Listing,
    TriggerFired,
    WebActionResponse,
)
from owaction.openwhisk.transport import make_session

__all__ = [
    "ActionInfo", "ActionResult", "Activation", "ActivationPending", "BadGateway", "BadRequest",
    "CircuitOpen", "Conflict", "ConnectFailed", "ConnectionDropped", "Forbidden",
    "HTTPStatusError", "InvalidName", "Listing", "NotFound", "OpenWhiskClient", "OpenWhiskError",
    "PayloadTooLarge", "RequestTimedOut", "ServerError", "Throttled", "TransportError",
    "TriggerFired", "Unauthorized", "Unavailable", "WebActionResponse", "error_for_status",
    "errors", "make_session",
]
