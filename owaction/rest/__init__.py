"""The REST front door: a Flask app that translates HTTP to ``ActionService`` calls.

``create_app`` builds everything; nothing here reads the environment or opens a connection at
import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask

from owaction.auth import TokenVerifier
from owaction.config import Settings, load_settings

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
    from owaction.rest import actions, auth, commands, errors, executions, health, openapi
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

    errors.register(app)
    for module in (auth, actions, commands, executions, health, openapi):
        app.register_blueprint(module.bp)
    return app
