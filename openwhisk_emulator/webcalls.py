"""Web actions: ``/api/v1/web/{ns}/{pkg}/{action}[.ext][/path]`` (docs/webactions.md)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from flask import Response, g, request

from openwhisk_emulator import problems as m
from openwhisk_emulator.problems import ApiError
from openwhisk_emulator.registry import ACTIONS
from owaction.openwhisk.models import STATUS_APPLICATION_ERROR, STATUS_SUCCESS

EXTENSIONS = (".http", ".json", ".html", ".svg", ".text")
ACTIVATION_HEADER = "x-openwhisk-activation-id"
WEB_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH",
}
DEFAULT_ALLOW_HEADERS = "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent"
# Which result field each extension shows when the result is an object.
_FIELD = {".html": ("html", "text/html"), ".svg": ("svg", "image/svg+xml"),
          ".text": ("text", "text/plain")}


def _textual(content_type: str) -> bool:
    """Whether a body of this type travels as text; anything else is base64 in ``body``."""
    ctype = content_type.split(";")[0].strip().lower()
    return (
        ctype.startswith("text/")
        or ctype.endswith(("+json", "+xml"))
        or ctype in ("application/json", "application/javascript", "application/xml",
                     "application/x-www-form-urlencoded")
    )


def split_web_path(rest: str) -> tuple[str, str, str, str, str]:
    """``ns/pkg/action.ext/extra`` into (ns, pkg, action, ext, extra path)."""
    parts = rest.split("/")
    if len(parts) < 3 or not all(parts[:3]):
        raise ApiError(404, m.NOT_FOUND)
    namespace, package, last = parts[0], parts[1], parts[2]
    extension = ".http"
    for ext in EXTENSIONS:
        if last.endswith(ext) and len(last) > len(ext):
            last, extension = last[: -len(ext)], ext
            break
    extra = "/" + "/".join(parts[3:]) if len(parts) > 3 else ""
    return namespace, package, last, extension, extra


@dataclass(frozen=True)
class GatewayCall:
    """A web action called by the API gateway for a route: authenticated as the route's owner
    (whose key the gateway sends, and the action never sees), with the request's own path."""

    path: str
    params: dict


def handle_web(emu: Any, rest: str, gateway: GatewayCall | None = None) -> Response:
    namespace, package, name, extension, extra = split_web_path(rest)
    key = f"{namespace}/{name}" if package == "default" else f"{namespace}/{package}/{name}"
    action = emu.registry.find(key)
    # Unknown, not an action, or not exported: all the same 404, so nothing leaks.
    if (
        action is None
        or action.collection != ACTIONS
        or action.annotation("web-export") is not True
    ):
        raise ApiError(404, m.NOT_FOUND)
    authenticated = gateway is not None or emu.authenticated(
        request.headers.get("Authorization")) is True
    required = action.annotation("require-whisk-auth")
    if required is True and not authenticated:
        raise ApiError(401, m.AUTH_INVALID)
    if required not in (None, False, True) and gateway is None:
        if request.headers.get("X-Require-Whisk-Auth") != str(required):
            raise ApiError(401, m.AUTH_INVALID)
    if request.method == "OPTIONS" and action.annotation("web-custom-options") is not True:
        allow = request.headers.get("Access-Control-Request-Headers", DEFAULT_ALLOW_HEADERS)
        return Response(status=200, headers={**WEB_CORS, "Access-Control-Allow-Headers": allow})

    from openwhisk_emulator.api import read_body

    params = _web_params(emu, action, read_body(), extra, authenticated)
    if gateway is not None:
        # The path is the route's, not a projection of the result; the owner's key stays out.
        extra = ""
        params.update(gateway.params, __ow_path=gateway.path)
        params["__ow_headers"].pop("authorization", None)
    emu.throttles.admit_invocation()
    merged = emu.invoker.merge_request(action, params)
    started = emu.invoker.start(action, merged, request_id=g.request_id)
    headers = {ACTIVATION_HEADER: started.activation_id}
    record = started.wait(emu.config.max_blocking_wait_ms / 1000.0)
    if record is None:
        body = {"error": m.WEB_NOT_READY, "code": g.request_id}
        return Response(json.dumps(body), 202, headers, mimetype="application/json")
    resp = record["response"]
    if resp["status"] == STATUS_SUCCESS:
        result = resp["result"]
    elif resp["status"] == STATUS_APPLICATION_ERROR and isinstance(resp["result"], dict):
        result = resp["result"].get("error")
    else:
        raise ApiError(400, m.WEB_ERROR, headers)
    if extension != ".http":
        result = _project(result, extra)
    try:
        return _render(result, extension, headers)
    except ApiError as exc:
        exc.headers.update(headers)
        raise


def _web_params(emu, action, body: bytes, extra: str, authenticated: bool) -> dict:
    given: dict[str, Any] = {}
    raw = action.annotation("raw-http") is True
    content_type = request.headers.get("Content-Type", "")
    if raw:
        query_string = request.query_string.decode("latin-1")
        given["__ow_query"] = query_string
        if not body:
            given["__ow_body"] = ""
        elif _textual(content_type) and not content_type.startswith("application/json"):
            given["__ow_body"] = body.decode("utf-8", errors="replace")
        else:
            given["__ow_body"] = base64.b64encode(body).decode()
    else:
        request_params: dict[str, Any] = dict(request.args.items())
        if body:
            mimetype = request.mimetype
            decoded: Any = None
            if mimetype == "application/json":
                try:
                    decoded = json.loads(body)
                except ValueError:
                    raise ApiError(400, m.malformed("the body is not valid JSON")) from None
            if isinstance(decoded, dict):
                request_params.update(decoded)
            elif mimetype == "application/x-www-form-urlencoded":
                request_params.update(parse_qsl(body.decode("utf-8", errors="replace")))
            elif _textual(content_type) and mimetype != "application/json":
                given["__ow_body"] = body.decode("utf-8", errors="replace")
            else:
                given["__ow_body"] = base64.b64encode(body).decode()
        if any(k.startswith("__ow_") for k in request_params):
            raise ApiError(400, m.PARAMS_NOT_ALLOWED)
        given.update(request_params)
    given["__ow_method"] = request.method.lower()
    given["__ow_headers"] = {k.lower(): v for k, v in request.headers.items()}
    given["__ow_path"] = extra
    if authenticated:
        given["__ow_user"] = emu.config.namespace
    return given


def _project(result: Any, extra: str) -> Any:
    for field in [p for p in extra.split("/") if p]:
        if not isinstance(result, dict) or field not in result:
            raise ApiError(400, "Property does not exist in the result.")
        result = result[field]
    return result


def _render(result: Any, extension: str, headers: dict) -> Response:
    if extension == ".json":
        if not isinstance(result, dict | list):
            raise ApiError(400, "Response is not valid 'application/json'.")
        return Response(json.dumps(result), 200, headers, mimetype="application/json")
    if extension in _FIELD:
        field, mimetype = _FIELD[extension]
        text = result
        if isinstance(result, dict):
            text = result.get(field, result.get("body"))
        if not isinstance(text, str):
            raise ApiError(400, f"Response is not valid '{mimetype}'.")
        return Response(text, 200, headers, mimetype=mimetype)
    return _render_http(result, headers)


def _render_http(result: Any, headers: dict) -> Response:
    invalid = ApiError(400, "Response is not valid 'message/http'.")
    if not isinstance(result, dict):
        raise invalid
    out_headers: list[tuple[str, str]] = list(headers.items())
    content_type = None
    declared = result.get("headers", {})
    if not isinstance(declared, dict):
        raise invalid
    for name, value in declared.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if not isinstance(item, str | int | float | bool):
                raise invalid
            if name.lower() == "content-type":
                if not isinstance(item, str):
                    raise ApiError(400, "Response did not specify a known content-type.")
                content_type = item
                continue
            text = str(item).lower() if isinstance(item, bool) else str(item)
            out_headers.append((name, text))
    status = result.get("statusCode", result.get("code"))
    if status is not None:
        try:
            status = int(status)
        except (TypeError, ValueError):
            raise invalid from None
        if not 100 <= status <= 599:
            raise invalid
    body = result.get("body")
    if body is None:
        data = b""
    elif isinstance(body, str):
        if content_type and not _textual(content_type):
            try:
                data = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                raise invalid from None
        else:
            data = body.encode()
            content_type = content_type or "text/html"
    else:
        data = json.dumps(body).encode()
        content_type = content_type or "application/json"
    if status is None:
        status = 200 if data else 204
    response = Response(data, status, out_headers)
    if content_type:
        response.headers["Content-Type"] = content_type
    elif not data:
        del response.headers["Content-Type"]
    return response
