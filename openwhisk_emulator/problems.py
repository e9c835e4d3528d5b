"""The emulator's HTTP errors and OpenWhisk's exact messages for them."""

from __future__ import annotations

# Wording follows OpenWhisk's ErrorResponse.Messages, because clients and people match on it.
NOT_FOUND = "The requested resource does not exist."
ROUTE_NOT_FOUND = "The requested resource could not be found."
WRONG_COLLECTION = "Resource by this name exists but is not in this collection."
ALREADY_EXISTS = "resource already exists"
AUTH_INVALID = "The supplied authentication is invalid"
AUTH_MISSING = "The resource requires authentication, which was not supplied with the request"
PARAMS_NOT_ALLOWED = "Request defines parameters that are not allowed (e.g., reserved properties)."
UNSUPPORTED_MEDIA = "The request's Content-Type is not supported. Expected:\napplication/json"
NAME_ILLEGAL = "The name of the entity contains illegal characters."
NAMESPACE_ILLEGAL = "The namespace contains illegal characters."
WEB_ERROR = "There was an error processing your request."
WEB_NOT_READY = "Response not yet ready."


def not_authorized(resource: str) -> str:
    return f"The supplied authentication is not authorized to access '{resource}'."


def too_large(size: int, limit: int) -> str:
    return f"Request larger than allowed: {size} > {limit} bytes."


def malformed(reason: str) -> str:
    return f"The request content was malformed:\n{reason}"


class ApiError(Exception):
    """Answered as ``{"error": message, "code": <request id>}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
