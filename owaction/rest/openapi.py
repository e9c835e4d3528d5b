"""The OpenAPI 3.1 document, generated from the endpoints' declarations and pydantic models.

Every path, method, parameter, body and status comes from ``ApiBlueprint.operation``; every
schema from the models the views validate and answer with. OpenAPI 3.1 uses JSON Schema 2020-12,
which is what pydantic emits, so the schemas go in unchanged.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, current_app
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

from owaction import __version__
from owaction.inputs import EXECUTION_ID_PATTERN, callback_url_pattern
from owaction.names import ACTIVATION_ID_PATTERN, NAME_PATTERN, QUALIFIED_NAME_PATTERN
from owaction.rest import webhooks
from owaction.rest.api import ApiBlueprint, Operation
from owaction.rest.schemas import ErrorBody
from owaction.service.context import IDEMPOTENCY_KEY_PATTERN, MAX_CALLBACK_URL

REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"<(?:[a-z]+:)?([A-Za-z_][A-Za-z0-9_]*)>")
_PATH_CONVERTER = re.compile(r"<(?:([a-z]+):)?([A-Za-z_][A-Za-z0-9_]*)>")

ERROR_DESCRIPTIONS = {
    400: "invalid input",
    401: "no token, or an invalid or expired one",
    403: "the token lacks the permission",
    404: "unknown action, activation, execution or endpoint",
    409: "a conflicting entity or idempotency key",
    413: "the body or payload is larger than allowed",
    422: "the idempotency key was used for a different request",
    429: "throttled; retry after Retry-After seconds",
    500: "internal error",
    502: "OpenWhisk failed or answered nonsense",
    503: "OpenWhisk or the database is unavailable; retry after Retry-After seconds",
    504: "OpenWhisk did not answer in time",
}

_HEADERS = {
    "X-Request-ID": {
        "description": "the request's id: the caller's, when 1-128 of [A-Za-z0-9._-]",
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "seconds to wait before retrying",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "WWW-Authenticate": {"description": 'Bearer realm="owaction", with error="invalid_token" '
                                        "for a bad token", "schema": {"type": "string"}},
}


# Path parameters by name (or converter:name); the service checks them by the same patterns. An
# entity's <name> is an OpenWhisk name, a <path:name> may be package/name.
PATH_PARAMETERS = {
    "activation_id": {"type": "string", "pattern": ACTIVATION_ID_PATTERN},
    "execution_id": {"type": "string", "pattern": EXECUTION_ID_PATTERN},
    "name": {"type": "string", "pattern": NAME_PATTERN},
    "path:name": {"type": "string", "pattern": QUALIFIED_NAME_PATTERN},
}

# What a schema's "x-from-settings" names: rules that depend on this server's configuration.
_FROM_SETTINGS = {
    "max_action_timeout": lambda settings: settings.max_action_timeout,
    "callback_url_pattern": lambda settings: callback_url_pattern(
        settings.callback_allowed_hosts),
}


def _fill_settings(node: Any, settings) -> Any:
    """``node`` with every ``x-from-settings`` marker replaced by this server's values."""
    if isinstance(node, list):
        return [_fill_settings(item, settings) for item in node]
    if not isinstance(node, dict):
        return node
    filled = {key: _fill_settings(value, settings) for key, value in node.items()
              if key != "x-from-settings"}
    for key, name in node.get("x-from-settings", {}).items():
        filled[key] = _FROM_SETTINGS[name](settings)
    return filled


class OpenApiDocument(BaseModel):
    """This document."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


def operations(app: Flask) -> list[Operation]:
    return [op for bp in app.blueprints.values() if isinstance(bp, ApiBlueprint)
            for op in bp.operations]


def _response_headers(status: int) -> dict:
    headers = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
    if status in (429, 503):
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    if status == 401:
        headers["WWW-Authenticate"] = {"$ref": "#/components/headers/WWW-Authenticate"}
    return headers


def _security(op: Operation) -> list[dict]:
    if not op.permission:
        return []
    if op.service_key:
        return [{"serviceKey": []}, {"bearerAuth": []}]
    return [{"bearerAuth": []}]


def _query_parameters(model: type[BaseModel], defs: dict) -> list[dict]:
    schema = model.model_json_schema(ref_template=REF)
    defs.update(schema.pop("$defs", {}))
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema["properties"].items():
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if "description" in prop:
            param["description"] = prop["description"]
        params.append(param)
    return params


def build(app: Flask) -> dict:
    """The OpenAPI document of ``app``."""
    ops = operations(app)
    keys: list[tuple[type[BaseModel], str]] = [(ErrorBody, "serialization"),
                                               (OpenApiDocument, "serialization")]
    for op in ops:
        if op.body:
            keys.append((op.body, "validation"))
        keys.extend((model, "serialization") for model, _ in op.responses.values())
    keys = list(dict.fromkeys(keys))
    refs, top = models_json_schema(keys, ref_template=REF)
    schemas: dict = dict(top.get("$defs", {}))

    def ref(model: type[BaseModel], mode: str) -> dict:
        return refs[(model, mode)]

    error_ref = ref(ErrorBody, "serialization")
    paths: dict[str, dict] = {}
    for op in ops:
        path = _PATH_PARAM.sub(r"{\1}", op.rule)
        params: list[dict] = [
            {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS.get(
                f"{converter}:{name}", PATH_PARAMETERS.get(name, {"type": "string"}))}
            for converter, name in _PATH_CONVERTER.findall(op.rule)
        ]
        if op.query:
            params += _query_parameters(op.query, schemas)
        # Any value is accepted (an insane one is replaced), so no pattern: one would declare
        # requests the server serves as invalid.
        params.append({"name": "X-Request-ID", "in": "header", "required": False,
                       "schema": {"type": "string"},
                       "description": "kept when 1-128 of [A-Za-z0-9._-], else a new one is "
                                      "made"})
        if op.body and op.permission == "execute_actions":
            params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                           "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                           "description": "a repeat with the same key and caller returns the "
                                          "first response without running again; the same "
                                          "key with a different request gets 422"})
        if op.body and "callback_url" in op.body.model_fields:
            params.append({"name": "X-Callback-Url", "in": "header", "required": False,
                           "schema": {"type": "string", "maxLength": MAX_CALLBACK_URL,
                                      "x-from-settings": {"pattern": "callback_url_pattern"}},
                           "description": "like the body's callback_url"})
        responses: dict[str, dict] = {}
        for status in sorted(set(op.responses) | set(op.errors)):
            if status in op.responses:
                model, description = op.responses[status]
                schema = ref(model, "serialization")
                if status in op.errors:
                    schema = {"anyOf": [schema, error_ref]}
            else:
                description, schema = ERROR_DESCRIPTIONS[status], error_ref
            responses[str(status)] = {
                "description": description,
                "headers": _response_headers(status),
                "content": {"application/json": {"schema": schema}},
            }
        entry: dict[str, Any] = {
            "operationId": op.name,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": params,
            "responses": responses,
            "security": _security(op),
        }
        description = [op.description] if op.description else []
        if op.permission:
            description.append(f"Needs the `{op.permission}` permission.")
            entry["x-permission"] = op.permission
        if description:
            entry["description"] = "\n\n".join(description)
        if op.body:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(op.body, "validation")}},
            }
        paths.setdefault(path, {})[op.method.lower()] = entry

    # Prometheus text, served by a plain Flask route (see create_app).
    paths["/metrics"] = {"get": {
        "operationId": "metrics",
        "summary": "Prometheus metrics, aggregated over every worker",
        "tags": ["meta"],
        "parameters": [],
        "responses": {"200": {"description": "the exposition text",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}},
        "security": [],
    }}

    paths[_PATH_PARAM.sub(r"{\1}", webhooks.RULE)] = webhooks.openapi_path(error_ref)

    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "owaction: WaddleBot's OpenWhisk action module",
            "version": __version__,
            "description": "Every error body is ErrorBody. Every response carries X-Request-ID.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "headers": _HEADERS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "HS256, from POST /api/v1/auth/token or minted by "
                                   "WaddleBot's router",
                },
                "serviceKey": {
                    "type": "apiKey", "in": "header", "name": "X-Service-Key",
                    "description": "WaddleBot router's key (SERVICE_KEY), for /api/v1/execute",
                },
            },
        },
    }
    return _fill_settings(document, app.extensions["owaction"].settings)


bp = ApiBlueprint("openapi", __name__, tag="meta")


@bp.operation("GET", "/openapi.json", summary="This OpenAPI 3.1 document",
              responses={200: (OpenApiDocument, "the document")})
def openapi_json():
    state = current_app.extensions["owaction"]
    if state.openapi is None:
        state.openapi = build(current_app)
    return OpenApiDocument.model_validate(state.openapi), 200
