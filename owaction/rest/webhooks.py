"""``POST /api/v1/webhooks/<hook>``: signed deliveries from Twitch, GitHub and others.

No Bearer token: the delivery's signature is its authentication, checked by the service before
the body is parsed. The view only hands over the raw body and headers and translates the reply.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from owaction.rest.api import read_body, request_id, service

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1")
RULE = "/api/v1/webhooks/<hook>"


@bp.route("/webhooks/<hook>", methods=["POST"])
def receive(hook: str):
    try:
        body = read_body(cache=False)
    except RequestEntityTooLarge:
        body = None  # past the app's own limit: the service refuses it with its AUTH line
    reply = service().webhooks.receive(hook, request.headers, body, request_id=request_id())
    if reply.text is not None:
        return Response(reply.text, status=reply.status_code, mimetype="text/plain")
    response = jsonify(reply.body)
    response.status_code = reply.status_code
    return response


def openapi_path(error_ref: dict) -> dict:
    """The endpoint's OpenAPI entry (a plain route: one reply is text/plain)."""
    ack = {"type": "object", "required": ["hook", "delivery_id", "execution_id", "status"],
           "properties": {"hook": {"type": "string"}, "delivery_id": {"type": "string"},
                          "execution_id": {"type": "string"},
                          "status": {"type": "string"},
                          "activation_id": {"type": ["string", "null"]},
                          "duplicate": {"type": "boolean"}}}
    headers = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}

    def error(description: str, retry: bool = False) -> dict:
        h = dict(headers)
        if retry:
            h["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
        return {"description": description, "headers": h,
                "content": {"application/json": {"schema": error_ref}}}

    return {"post": {
        "operationId": "receive_webhook",
        "summary": "A signed webhook delivery (Twitch EventSub, GitHub, generic HMAC)",
        "description": "Authenticated by the delivery's signature, not a token. A Twitch "
                       "verification challenge is answered with the challenge as text/plain; "
                       "a repeated delivery id is acknowledged without running anything.",
        "tags": ["webhooks"],
        "parameters": [{"name": "hook", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"*/*": {"schema": {}}}},
        "responses": {
            "200": {"description": "recorded (and run, if its target answered in time), or a "
                                   "duplicate; the challenge as text/plain",
                    "headers": headers,
                    "content": {"application/json": {"schema": ack},
                                "text/plain": {"schema": {"type": "string"}}}},
            "202": {"description": "recorded; the target is still running", "headers": headers,
                    "content": {"application/json": {"schema": ack}}},
            "400": error("the body is not UTF-8"),
            "403": error("a missing or wrong signature, or a stale timestamp"),
            "404": error("no such hook"),
            "413": error("the body is larger than MAX_PAYLOAD_BYTES"),
            "429": error("the hook's rate limit; retry after Retry-After seconds", True),
            "503": error("nothing reached OpenWhisk or the database is down; the sender's "
                         "retry will run", True),
        },
        "security": [],
    }}
