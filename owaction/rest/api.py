"""Declaring an endpoint once: its route, auth, request models and responses.

``ApiBlueprint.operation`` registers the view with Flask, wraps it with authentication and
pydantic validation, and keeps an ``Operation`` record that ``openapi.py`` turns into the
document. One declaration serves both, so the document cannot describe an endpoint that behaves
otherwise.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, g, request
from gunicorn.http.errors import ParseException as FramingError
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from owaction.errors import InvalidInput
from owaction.rest.security import authenticate
from owaction.service import CallContext, sane_request_id

REQUEST_ID_HEADER = "X-Request-ID"


@dataclass(frozen=True)
class Operation:
    """One endpoint as the OpenAPI document describes it."""

    method: str
    rule: str
    name: str
    summary: str
    description: str  # the view's docstring
    tag: str
    permission: str | None
    service_key: bool  # the router's X-Service-Key is accepted instead of a token
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    responses: Mapping[int, tuple[type[BaseModel], str]]  # status -> (model, description)
    errors: tuple[int, ...]  # statuses answered with the error body


class ApiBlueprint(Blueprint):
    """A Blueprint whose routes are declared with ``operation``."""

    def __init__(self, name: str, import_name: str, *, tag: str, **kw: Any):
        super().__init__(name, import_name, **kw)
        self.tag = tag
        self.operations: list[Operation] = []

    def operation(
        self, method: str, rule: str, *, summary: str,
        responses: Mapping[int, tuple[type[BaseModel], str]],
        errors: tuple[int, ...] = (), permission: str | None = None, service_key: bool = False,
        body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
        max_body: int | None = None,
    ) -> Callable:
        """Route ``method rule`` to the view; it receives ``claims``, ``body`` and ``query``
        as declared and returns ``(reply_model, status)`` or ``(reply_model, status, headers)``.
        ``max_body`` raises the app's body limit for this endpoint alone (action code)."""
        implied = set(errors)
        if body or query:
            implied.add(400)
        if body:
            implied.add(413)
        if permission:
            implied.update((401, 403))

        def decorator(view: Callable) -> Callable:
            op = Operation(
                method=method.upper(), rule=self.url_prefix_rule(rule), name=view.__name__,
                summary=summary, description=inspect.cleandoc(view.__doc__ or ""),
                tag=self.tag, permission=permission, service_key=service_key, body=body,
                query=query, responses=dict(responses), errors=tuple(sorted(implied)),
            )

            @functools.wraps(view)
            def handler(**kwargs: Any):
                # Authenticate before reading a body: strangers' bodies are not parsed.
                if permission:
                    kwargs["claims"] = authenticate(permission, service_key=service_key)
                if query:
                    kwargs["query"] = parse_query(query)
                if max_body:
                    request.max_content_length = max_body
                if body:
                    kwargs["body"] = parse_body(body)
                reply, status, *headers = view(**kwargs)
                # pydantic writes the JSON itself (what jsonify would send, in one step).
                text = reply.model_dump_json() + "\n"
                return (current_app.response_class(text, mimetype="application/json"),
                        status, *headers)

            self.add_url_rule(rule, view.__name__, handler, methods=[op.method])
            self.operations.append(op)
            return handler

        return decorator

    def url_prefix_rule(self, rule: str) -> str:
        return (self.url_prefix or "").rstrip("/") + rule


# --- validation ---------------------------------------------------------------------------------


def invalid_input(exc: ValidationError, where: str) -> InvalidInput:
    """A 400 naming every invalid field, without echoing the values sent."""
    fields, parts = [], []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        if err["type"] == "json_invalid":
            message = f"not valid JSON ({err['msg'].removeprefix('Invalid JSON: ')})"
        else:
            message = err["msg"]
        loc = ".".join(str(part) for part in err["loc"])
        fields.append({"field": loc or where, "message": message})
        parts.append(f"{loc}: {message}" if loc else message)
    return InvalidInput(f"invalid request {where}: {'; '.join(parts)}",
                        details={"fields": fields})


def read_body(*, cache: bool = True) -> bytes:
    """The raw body, whatever its framing: 413 past the body limit, 400 for broken chunking."""
    limit = request.max_content_length
    if limit is not None:
        # A body without Content-Length (chunked) is cut off at the limit by werkzeug, silently:
        # reading one byte more is how a longer one shows.
        request.max_content_length = limit + 1
    try:
        raw = request.get_data(cache=cache)
    except FramingError:
        raise InvalidInput("the request body's chunked framing is malformed") from None
    finally:
        request.max_content_length = limit
    if limit is not None and len(raw) > limit:
        raise RequestEntityTooLarge()
    return raw


def parse_body(model: type[BaseModel]) -> BaseModel:
    raw = read_body()
    if not raw.strip():
        raise InvalidInput("a JSON object body is required")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid_input(exc, "body") from None


def parse_query(model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise invalid_input(exc, "query") from None


# --- per-request context ------------------------------------------------------------------------


def request_id() -> str:
    """This request's id: the caller's sane X-Request-ID, or a new one."""
    rid = g.get("request_id")
    if rid is None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        rid = sane_request_id(given)
        g.request_id = rid
    return rid


def call_context(claims, body: BaseModel | None = None) -> CallContext:
    """The service's view of this request (headers, and the body's callback_url)."""
    return CallContext.for_request(
        source="rest",
        caller=claims.service,
        request_id=request_id(),
        idempotency_key=request.headers.get("Idempotency-Key"),
        traceparent=request.headers.get("traceparent"),
        callback_url=(request.headers.get("X-Callback-Url")
                      or getattr(body, "callback_url", None)),
    )


def service():
    """The app's ActionService."""
    return current_app.extensions["owaction"].service
