"""Every error leaves as the same JSON body: ``{"error": {"code", "message"}, "request_id",
"execution_id"?}``.

Domain errors carry their own HTTP status (``owaction.errors``); werkzeug's (unknown route, wrong
method, body too large) are mapped by one table. Anything unexpected is logged with its traceback
and answered with a bare 500: a traceback never reaches a caller.
"""

from __future__ import annotations

import logging
import math

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from owaction.errors import PayloadTooLarge, ServiceError, Unauthenticated
from owaction.rest.api import request_id
from owaction.rest.security import www_authenticate

log = logging.getLogger("owaction.rest")

# Seconds to suggest when the cause gave no Retry-After of its own.
DEFAULT_RETRY_AFTER = {429: 10, 503: 5}

# werkzeug status -> our machine code.
_HTTP_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: PayloadTooLarge.code,
    415: "unsupported_media_type",
}


def retry_after(status: int, seconds: float | None) -> str | None:
    if seconds is None:
        seconds = DEFAULT_RETRY_AFTER.get(status)
    if seconds is None:
        return None
    return str(max(1, math.ceil(seconds)))


def error_response(status: int, body: dict, *, retry: float | None = None,
                   headers: dict[str, str] | None = None):
    response = jsonify(body)
    response.status_code = status
    after = retry_after(status, retry)
    if after:
        response.headers["Retry-After"] = after
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _service_error(exc: ServiceError):
    headers = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = www_authenticate(exc)
    return error_response(exc.http_status, exc.to_body(request_id()), retry=exc.retry_after,
                          headers=headers)


def http_error_body(status: int, name: str, message: str, rid: str | None) -> dict:
    """The body of an error answered below the service (werkzeug's routing and limits, gunicorn's
    parser, ``owaction.rest.gunicorn_worker``): a 500 says no more than any other."""
    if status == 500:
        return ServiceError("internal error").to_body(rid)
    code = _HTTP_CODES.get(status) or name.lower().replace(" ", "_")
    return ServiceError(message, code=code).to_body(rid)


def _http_error(exc: HTTPException):
    status = exc.code or 500
    message = {
        404: "no such endpoint",
        405: "method not allowed on this endpoint",
        413: "the request body is larger than allowed",
    }.get(status, exc.description or exc.name)
    headers = {}
    if status == 405 and exc.response is None:
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    body = http_error_body(status, exc.name or "error", message, request_id())
    return error_response(status, body, headers=headers)


def _unexpected(exc: Exception):
    log.exception("unhandled error in request %s", request_id())
    return error_response(500, http_error_body(500, "Internal Server Error", "", request_id()))


def register(app: Flask) -> None:
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
