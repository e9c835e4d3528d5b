"""The REST front door: a Flask app that translates HTTP to ``ActionService`` calls.

``create_app`` builds everything; nothing here reads the environment or opens a connection at
import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g

from owaction import tracing
from owaction.auth import TokenVerifier
from owaction.config import Settings, load_settings
from owaction.metrics import IN_FLIGHT, child, render

# Room for the envelope around a payload (names, options, JSON framing), so that a payload just
# over MAX_PAYLOAD_BYTES reaches the service and is refused with the service's own message.
BODY_OVERHEAD_BYTES = 64 * 1024


@dataclass
class RestState:
    """What the views need, kept in ``app.extensions["owaction"]``."""

    settings: Settings
    service: Any
    verifier: TokenVerifier
    openapi: dict | None = None


def create_app(settings: Settings | None = None, *, service: Any = None) -> Flask:
    """The WSGI app; settings from the environment and a service from the settings by default."""
    from owaction.rest import (
        actions,
        auth,
        commands,
        entities,
        errors,
        executions,
        health,
        openapi,
        webhooks,
    )
    from owaction.rest.api import REQUEST_ID_HEADER, request_id

    settings = settings if settings is not None else load_settings()
    if service is None:
        from owaction.service import ActionService

        service = ActionService.from_settings(settings)

    app = Flask("owaction.rest")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes + BODY_OVERHEAD_BYTES
    app.json.sort_keys = False  # keep fields in the models' order
    app.extensions["owaction"] = RestState(settings=settings, service=service,
                                           verifier=TokenVerifier(settings))

    @app.before_request
    def _assign_request_id() -> None:
        request_id()

    @app.after_request
    def _echo_request_id(response):
        response.headers[REQUEST_ID_HEADER] = request_id()
        return response

    @app.before_request
    def _count_in():
        child(IN_FLIGHT, "rest").inc()
        g.owaction_counted = True

    @app.teardown_request
    def _count_out(_exc):
        if g.pop("owaction_counted", False):
            child(IN_FLIGHT, "rest").dec()

    errors.register(app)
    for module in (auth, actions, commands, entities, executions, health, openapi, webhooks):
        app.register_blueprint(module.bp)
    app.add_url_rule("/metrics", "metrics", _metrics)
    if tracing.enabled():
        app.wsgi_app = _traced(app.wsgi_app)  # type: ignore[method-assign]
    if settings.router_url:
        # Every worker tries; the registration lock lets exactly one of them send.
        from owaction.registration import Registrar

        Registrar(settings, service.commands).start()
    return app


def _traced(wsgi_app):
    """A server span per request, continuing the caller's W3C traceparent."""

    def app(environ, start_response):
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        with tracing.span(f"HTTP {method} {path}", kind="server",
                          traceparent=environ.get("HTTP_TRACEPARENT"),
                          **{"http.method": method, "http.target": path}):
            return wsgi_app(environ, start_response)

    return app


def _metrics():
    """Prometheus metrics, aggregated over every gunicorn worker."""
    body, content_type = render()
    return Response(body, content_type=content_type)
