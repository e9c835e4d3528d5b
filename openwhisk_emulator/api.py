"""The emulator's Flask app: OpenWhisk's controller routes under ``/api/v1``."""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, request

from openwhisk_emulator import problems as m
from openwhisk_emulator.alarms import AlarmProvider, register_alarm_routes
from openwhisk_emulator.apigateway import ApiGateway, register_gateway_routes
from openwhisk_emulator.catalog import install_catalog
from openwhisk_emulator.problems import ApiError
from openwhisk_emulator.quotas import Throttles
from openwhisk_emulator.records import ActivationStore, extended, summary
from openwhisk_emulator.registry import (
    ACTIONS,
    LOGS_MAX,
    LOGS_MIN,
    MAX_PARAMETER_BYTES,
    MEMORY_MAX,
    MEMORY_MIN,
    PACKAGES,
    RULES,
    SEQUENCE_MAX_LENGTH,
    TIMEOUT_MAX,
    TIMEOUT_MIN,
    TRIGGERS,
    Entity,
    Registry,
    check_entity_name,
    check_namespace_name,
)
from openwhisk_emulator.running import MAX_PAYLOAD_BYTES, Invoker
from owaction import __version__
from owaction.config import GUEST_AUTH_KEY
from owaction.openwhisk.models import STATUS_SUCCESS, STATUS_WHISK_ERROR

MAX_CODE_BYTES = 48 * 1024 * 1024
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 30, 200
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, DELETE, POST, PUT, HEAD",
    "Access-Control-Allow-Headers": (
        "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent"
    ),
}
ACTIVATION_HEADER = "x-openwhisk-activation-id"
_HEX32 = re.compile(r"\A[0-9a-f]{32}\Z")


@dataclass(frozen=True)
class EmulatorConfig:
    auth: str = GUEST_AUTH_KEY
    namespace: str = "guest"
    api_host: str = "http://127.0.0.1:3233"
    max_blocking_wait_ms: int = 60_000
    concurrent_limit: int = 10_000
    per_minute_limit: int = 600_000
    fires_per_minute: int = 600_000


class Emulator:
    """Everything one emulator holds: entities, activations, throttles, the runtime."""

    def __init__(self, config: EmulatorConfig, runtime: Any):
        self.config = config
        self.runtime = runtime
        self.registry = Registry(config.namespace, runtime.kinds())
        self.activations = ActivationStore()
        self.throttles = Throttles(
            concurrent=config.concurrent_limit,
            per_minute=config.per_minute_limit,
            fires_per_minute=config.fires_per_minute,
        )
        self.invoker = Invoker(
            registry=self.registry,
            runtime=runtime,
            store=self.activations,
            throttles=self.throttles,
            subject=config.namespace,
            api_host=config.api_host,
            api_key=config.auth,
        )
        self.alarms = AlarmProvider(self)
        self.gateway = ApiGateway(config.api_host)

    def authenticated(self, header: str | None) -> bool | None:
        """True for our key, False for other credentials, None when none were sent."""
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(decoded.encode(), self.config.auth.encode())

    def limits(self) -> dict:
        return {
            "concurrentInvocations": self.throttles.concurrent.allowed,
            "invocationsPerMinute": self.throttles.invocations.allowed,
            "firesPerMinute": self.throttles.fires.allowed,
            "minActionMemory": MEMORY_MIN * 1024 * 1024,
            "maxActionMemory": MEMORY_MAX * 1024 * 1024,
            "minActionLogs": LOGS_MIN * 1024 * 1024,
            "maxActionLogs": LOGS_MAX * 1024 * 1024,
            "minActionTimeout": TIMEOUT_MIN,
            "maxActionTimeout": TIMEOUT_MAX,
            "minActionConcurrency": 1,
            "maxActionConcurrency": 1,
            "maxParameterSize": MAX_PARAMETER_BYTES,
            "maxPayloadSize": MAX_PAYLOAD_BYTES,
            "maxActionInstances": self.throttles.concurrent.allowed,
            "sequenceMaxActions": SEQUENCE_MAX_LENGTH,
        }


# --- request helpers ----------------------------------------------------------------------


def emulator() -> Emulator:
    return current_app.extensions["openwhisk_emulator"]


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    mimetype="application/json")


def read_body(limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """The raw body, refused with 413 past ``limit`` (before reading when the size is known)."""
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, m.too_large(length, limit))
    data = request.get_data(cache=True)
    if len(data) > limit:
        raise ApiError(413, m.too_large(len(data), limit))
    return data


def json_object(limit: int = MAX_PAYLOAD_BYTES) -> dict:
    """The body as a JSON object; empty is ``{}`` (RestApiCommons.emptyEntityToJsObject)."""
    data = read_body(limit)
    if not data.strip():
        return {}
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(415, m.UNSUPPORTED_MEDIA)
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, m.malformed(f"the body is not valid JSON: {exc}")) from None
    if not isinstance(body, dict):
        raise ApiError(400, m.malformed("Object expected in field 'payload'"))
    return body


def flag(name: str) -> bool:
    return request.args.get(name, "false").lower() == "true"


def own_namespace(namespace: str, entity: str | None = None) -> str:
    """``_`` or our namespace; any other is OpenWhisk's 403 (never a 404 that would leak)."""
    check_namespace_name(namespace)
    ours = emulator().config.namespace
    if namespace in ("_", ours):
        return ours
    resource = namespace if entity is None else f"{namespace}/{entity}"
    raise ApiError(403, m.not_authorized(resource))


def readable_namespace(namespace: str) -> str:
    """``_`` is ours; another namespace is read through its public packages (check_read)."""
    check_namespace_name(namespace)
    return emulator().config.namespace if namespace == "_" else namespace


def list_window(collection: str) -> tuple[int, int, bool]:
    """``skip``, ``limit`` (0 means the maximum) and ``count``, with OpenWhisk's 400s."""

    def whole(name: str, default: int) -> int:
        raw = request.args.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ApiError(400, f"The value '{raw}' is not an integer for {collection}.") from None

    limit = whole("limit", LIST_LIMIT_DEFAULT)
    if not 0 <= limit <= LIST_LIMIT_MAX:
        raise ApiError(400, f"The value '{limit}' is not in the range of 0 to {LIST_LIMIT_MAX} "
                       f"for {collection}.")
    skip = whole("skip", 0)
    if skip < 0:
        raise ApiError(400, f"The value '{skip}' is not greater than or equal to 0 for "
                       f"{collection}.")
    return skip, limit or LIST_LIMIT_MAX, flag("count")


def page(collection: str, items: list) -> Response:
    skip, limit, count = list_window(collection)
    if count:
        return json_response({collection: max(0, len(items) - skip)})
    return json_response(items[skip:skip + limit])


def split_action_path(rest: str) -> tuple[str | None, str]:
    parts = rest.split("/")
    if len(parts) == 1:
        return None, check_entity_name(parts[0])
    if len(parts) == 2:
        return check_entity_name(parts[0]), check_entity_name(parts[1])
    raise ApiError(404, m.ROUTE_NOT_FOUND)


def invoke_status(record: dict) -> int:
    status = record["response"]["status"]
    if status == STATUS_SUCCESS:
        return 200
    if status == STATUS_WHISK_ERROR:
        return 500
    return 502


def require_auth() -> None:
    ok = emulator().authenticated(request.headers.get("Authorization"))
    if ok is None:
        raise ApiError(401, m.AUTH_MISSING)
    if not ok:
        raise ApiError(401, m.AUTH_INVALID)


# --- the app ------------------------------------------------------------------------------


def create_app(config: EmulatorConfig | None = None, *, runtime: Any = None) -> Flask:
    """The emulator app; ``runtime`` is an ``openwhisk_emulator.runtime.Runtime``."""
    config = config or EmulatorConfig()
    if runtime is None:
        from openwhisk_emulator.runtime import Runtime

        runtime = Runtime()
    app = Flask(__name__)
    app.url_map.strict_slashes = False
    emu = Emulator(config, runtime)
    app.extensions["openwhisk_emulator"] = emu
    install_catalog(emu)
    register_alarm_routes(app, emu.alarms)
    register_gateway_routes(app, emu, emu.gateway)

    @app.before_request
    def begin() -> None:
        g.request_id = request.headers.get("X-Request-ID") or secrets.token_hex(16)

    @app.after_request
    def finish(resp: Response) -> Response:
        resp.headers["X-Request-ID"] = g.get("request_id", "")
        if not request.path.startswith("/api/v1/web/"):
            resp.headers.update(CORS_HEADERS)
        return resp

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        headers = dict(exc.headers)
        if exc.status == 401 and not request.path.startswith("/api/v1/web/"):
            headers["WWW-Authenticate"] = 'Basic realm="OpenWhisk secure realm"'
        return json_response({"error": exc.message, "code": g.request_id}, exc.status, headers)

    @app.errorhandler(404)
    def no_route(_exc) -> Response:
        return json_response({"error": m.ROUTE_NOT_FOUND, "code": g.request_id}, 404)

    @app.errorhandler(405)
    def wrong_method(exc) -> Response:
        # The OPTIONS catch-all matches every path; only it matching means "no such route".
        if set(exc.valid_methods or ()) <= {"OPTIONS"}:
            return no_route(exc)
        allowed = ", ".join(exc.valid_methods or [])
        return json_response({"error": f"HTTP method not allowed, supported methods: {allowed}",
                              "code": g.request_id}, 405)

    @app.errorhandler(500)
    def internal(_exc) -> Response:
        return json_response({"error": "An internal error occurred.", "code": g.request_id}, 500)

    @app.route("/api/v1", methods=["GET"])
    @app.route("/", methods=["GET"])
    def info():
        return json_response({
            "description": "OpenWhisk API (owaction emulator)",
            "api_version": "1.0.0",
            "api_version_path": "v1",
            "api_paths": ["/api/v1"],
            "build": "owaction-emulator",
            "buildno": __version__,
            "swagger_paths": {"ui": "/docs", "api-docs": "/api/v1/api-docs"},
        })

    @app.route("/api/v1", methods=["OPTIONS"])
    @app.route("/api/v1/<path:anything>", methods=["OPTIONS"])
    def preflight(anything: str = ""):
        return Response(status=200)

    @app.route("/api/v1/namespaces", methods=["GET"])
    def namespaces():
        require_auth()
        return json_response([config.namespace])

    @app.route("/api/v1/namespaces/<namespace>/limits", methods=["GET"])
    def limits(namespace: str):
        require_auth()
        own_namespace(namespace)
        return json_response(emu.limits())

    # --- actions --------------------------------------------------------------------------

    @app.route("/api/v1/namespaces/<namespace>/actions", methods=["GET"])
    def list_actions(namespace: str):
        require_auth()
        own_namespace(namespace)
        return page(ACTIONS, [e.brief() for e in emu.registry.listing(ACTIONS)])

    @app.route("/api/v1/namespaces/<namespace>/actions/<path:rest>",
               methods=["GET", "PUT", "DELETE", "POST"])
    def action(namespace: str, rest: str):
        require_auth()
        if rest.endswith("/") and request.method == "GET":
            package = check_entity_name(rest[:-1])
            key = f"{readable_namespace(namespace)}/{package}"
            emu.registry.check_read(key)
            emu.registry.get(PACKAGES, key)
            return page(ACTIONS, [e.brief() for e in emu.registry.package_actions(key)])
        package, name = split_action_path(rest)
        if request.method in ("PUT", "DELETE"):
            key = f"{own_namespace(namespace, rest)}/{rest}"
            if request.method == "DELETE":
                return json_response(emu.registry.delete(ACTIONS, key).to_json())
            body = json_object(MAX_CODE_BYTES)
            entity = emu.registry.put_action(package, name, body, flag("overwrite"))
            return json_response(entity.to_json())
        key = f"{readable_namespace(namespace)}/{rest}"
        if request.method == "POST":
            return invoke(key)
        found, binding = emu.registry.resolve_action(key)
        code = request.args.get("code", "true").lower() != "false"
        doc = found.to_json(code=code)
        if binding is not None:
            merged = emu.invoker.action_params(found, binding)
            doc["parameters"] = [{"key": k, "value": v} for k, v in merged.items()]
        return json_response(doc)

    def invoke(key: str) -> Response:
        blocking, result_only = flag("blocking"), flag("result")
        max_wait = config.max_blocking_wait_ms
        wait_ms = max_wait
        raw_timeout = request.args.get("timeout")
        if raw_timeout is not None:
            try:
                wait_ms = int(raw_timeout)
            except ValueError:
                wait_ms = -1
            if not 0 < wait_ms <= max_wait:
                raise ApiError(400, "The query parameter 'timeout' was malformed:\n"
                               f"Timeout must be number of milliseconds up to {max_wait}.")
        body = json_object()
        # OpenWhisk throttles before it looks the action up, so a 429 wins over a 404.
        emu.throttles.admit_invocation()
        action, binding = emu.registry.resolve_action(key)
        params = emu.invoker.merge_request(action, body, binding)
        started = emu.invoker.start(action, params, request_id=g.request_id, binding=binding)
        headers = {ACTIVATION_HEADER: started.activation_id}
        record = started.wait(wait_ms / 1000.0) if blocking else None
        if record is None:
            return json_response({"activationId": started.activation_id}, 202, headers)
        result = record["response"]["result"]
        if isinstance(result, list) or result_only:
            out: Any = result
        else:
            # A blocking answer leaves an action's logs out; a sequence's are its components' ids.
            out = extended(record, logs=action.kind == "sequence")
        return json_response(out, invoke_status(record), headers)

    # --- packages, triggers, rules --------------------------------------------------------

    def collection_list(collection: str, namespace: str) -> Response:
        require_auth()
        ns = readable_namespace(namespace)
        if collection == PACKAGES and ns != config.namespace:
            # Another namespace shows only what it shares (PackagesApi list: publish).
            shared = [e for e in emu.registry.listing(PACKAGES, ns) if e.publish]
            return page(collection, [e.brief() for e in shared])
        own_namespace(namespace)
        return page(collection, [e.brief() for e in emu.registry.listing(collection)])

    for collection in (PACKAGES, TRIGGERS, RULES):
        app.add_url_rule(
            f"/api/v1/namespaces/<namespace>/{collection}",
            f"list_{collection}",
            lambda namespace, _c=collection: collection_list(_c, namespace),
            methods=["GET"],
        )

    def entity_key(namespace: str, name: str) -> str:
        check_entity_name(name)
        return f"{own_namespace(namespace, name)}/{name}"

    @app.route("/api/v1/namespaces/<namespace>/packages/<name>", methods=["GET", "PUT", "DELETE"])
    def package(namespace: str, name: str):
        require_auth()
        if request.method == "GET":
            key = f"{readable_namespace(namespace)}/{check_entity_name(name)}"
            emu.registry.check_read(key)
        else:
            key = entity_key(namespace, name)
        if request.method == "PUT":
            entity = emu.registry.put_package(name, json_object(MAX_CODE_BYTES),
                                              flag("overwrite"))
            return json_response(entity.to_json())
        if request.method == "DELETE":
            return json_response(emu.registry.delete_package(name, flag("force")).to_json())
        entity = emu.registry.get(PACKAGES, key)
        doc = entity.to_json()
        contents = emu.registry.package_actions(key)
        doc["actions"] = [
            {"name": a.name, "version": a.version, "annotations": a.annotations}
            for a in contents if a.annotation("feed") is None
        ]
        doc["feeds"] = [
            {"name": a.name, "version": a.version, "annotations": a.annotations}
            for a in contents if a.annotation("feed") is not None
        ]
        return json_response(doc)

    def trigger_json(entity: Entity) -> dict:
        doc = entity.to_json()
        rules = emu.registry.rules_of(entity.key)
        if rules:
            doc["rules"] = {
                r.key: {"action": {"name": r.action.rsplit("/", 1)[1],
                                   "path": r.action.rsplit("/", 1)[0]},
                        "status": r.status}
                for r in rules
            }
        return doc

    @app.route("/api/v1/namespaces/<namespace>/triggers/<name>",
               methods=["GET", "PUT", "DELETE", "POST"])
    def trigger(namespace: str, name: str):
        require_auth()
        key = entity_key(namespace, name)
        if request.method == "PUT":
            entity = emu.registry.put_trigger(name, json_object(MAX_CODE_BYTES),
                                              flag("overwrite"))
            return json_response(trigger_json(entity))
        if request.method == "DELETE":
            return json_response(trigger_json(emu.registry.delete(TRIGGERS, key)))
        if request.method == "GET":
            return json_response(trigger_json(emu.registry.get(TRIGGERS, key)))
        payload = json_object()
        entity = emu.registry.get(TRIGGERS, key)
        # The caller's credentials stay out of the rule actions' arguments and records.
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"}
        activation_id = emu.invoker.fire(entity, payload, headers, request_id=g.request_id)
        if activation_id is None:
            return Response(status=204)
        return json_response({"activationId": activation_id}, 202,
                             {ACTIVATION_HEADER: activation_id})

    @app.route("/api/v1/namespaces/<namespace>/rules/<name>",
               methods=["GET", "PUT", "DELETE", "POST"])
    def rule(namespace: str, name: str):
        require_auth()
        key = entity_key(namespace, name)
        if request.method == "PUT":
            entity = emu.registry.put_rule(name, json_object(), flag("overwrite"))
            return json_response(entity.to_json())
        if request.method == "DELETE":
            return json_response(emu.registry.delete(RULES, key).to_json())
        if request.method == "POST":
            status = json_object().get("status")
            return json_response(emu.registry.set_rule_state(name, status).to_json())
        return json_response(emu.registry.get(RULES, key).to_json())

    # --- activations ----------------------------------------------------------------------

    @app.route("/api/v1/namespaces/<namespace>/activations", methods=["GET"])
    def list_activations(namespace: str):
        require_auth()
        own_namespace(namespace)
        name = request.args.get("name")
        if name is not None:
            parts = name.split("/")
            if len(parts) > 2:
                raise ApiError(400, "Parameter may be a 'simple' name or 'package-name/simple' "
                               f"name: {name}")
            for part in parts:
                check_entity_name(part)

        def epoch(param: str) -> int | None:
            raw = request.args.get(param)
            if raw is None:
                return None
            try:
                return int(raw)
            except ValueError:
                raise ApiError(
                    400, f"Parameter is not a valid value for epoch seconds: {raw}"
                ) from None

        since, upto = epoch("since"), epoch("upto")
        docs = flag("docs")
        skip, limit, count = list_window("activations")
        if docs and count:
            raise ApiError(400, "The parameter 'docs' is not permitted with 'count'.")
        rows = emu.activations.query(name=name, since=since, upto=upto)
        if count:
            return json_response({"activations": max(0, len(rows) - skip)})
        shown = rows[skip:skip + limit]
        return json_response([extended(r) if docs else summary(r) for r in shown])

    def activation_record(namespace: str, activation_id: str) -> dict:
        require_auth()
        own_namespace(namespace)
        if len(activation_id) != 32:
            raise ApiError(400, f"Activation id length is {len(activation_id)} but must be 32.")
        if not _HEX32.match(activation_id):
            raise ApiError(400, "The activation id is not valid.")
        record = emu.activations.get(activation_id)
        if record is None:
            raise ApiError(404, m.NOT_FOUND)
        return extended(record)

    @app.route("/api/v1/namespaces/<namespace>/activations/<activation_id>", methods=["GET"])
    def get_activation(namespace: str, activation_id: str):
        return json_response(activation_record(namespace, activation_id))

    @app.route("/api/v1/namespaces/<namespace>/activations/<activation_id>/result",
               methods=["GET"])
    def activation_result(namespace: str, activation_id: str):
        return json_response(activation_record(namespace, activation_id)["response"])

    @app.route("/api/v1/namespaces/<namespace>/activations/<activation_id>/logs",
               methods=["GET"])
    def activation_logs(namespace: str, activation_id: str):
        return json_response({"logs": activation_record(namespace, activation_id)["logs"]})

    # --- web actions ----------------------------------------------------------------------

    @app.route("/api/v1/web/<path:rest>", provide_automatic_options=False,
               methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
    def web_route(rest: str):
        return web(rest)

    def web(rest: str) -> Response:
        from openwhisk_emulator.webcalls import handle_web

        return handle_web(emu, rest)

    return app
