"""The API gateway: APIs kept per namespace as swagger documents, and their routes served.

As in a real deployment, ``wsk api`` and the JS client's ``routes`` call the ``apimgmt`` web
actions (``catalog/apimgmt/apimgmt.py``), which keep the APIs through the gateway's management
API (here ``/_emulator/apigw/{tenant}/apis``, with the credentials bound into the apimgmt
package). The gateway serves each route at ``/api/{namespace}{basePath}{relpath}`` for its verb
by calling the route's web action, as the route's owner.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from typing import Any

from flask import Flask, Response, abort, request

from openwhisk_emulator.webcalls import GatewayCall, handle_web

MANAGEMENT_PATH = "/_emulator/apigw"
RESPONSE_TYPES = ("json", "http", "html", "svg", "text")
VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_PARAM = re.compile(r"\{([^}/]+)\}")


def _answer(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _path_match(relpath: str, path: str) -> dict | None:
    """The path parameters when ``path`` fits ``relpath`` (``/books/{id}``), else None."""
    names = _PARAM.findall(relpath)
    pattern = "".join(
        re.escape(piece) if i % 2 == 0 else "([^/]+)"
        for i, piece in enumerate(_PARAM.split(relpath))
    )
    match = re.fullmatch(pattern, path)
    return dict(zip(names, match.groups(), strict=True)) if match else None


def _target(operation: Any) -> dict | None:
    """The operation's web action, when it names one (a stored swagger may hold anything)."""
    target = operation.get("x-openwhisk") if isinstance(operation, dict) else None
    if isinstance(target, dict) and all(
        isinstance(target.get(k), str) and target[k] for k in ("namespace", "action")
    ) and isinstance(target.get("package", ""), str):
        return target
    return None


class ApiGateway:
    """APIs by tenant (the owner's namespace) and base path."""

    def __init__(self, api_host: str):
        self.api_host = api_host.rstrip("/")
        # What the apimgmt package is bound with, as a deployment binds gwUser/gwPwd.
        self.user = "apimgmt"
        self.password = secrets.token_urlsafe(24)
        self._apis: dict[tuple[str, str], dict] = {}

    def managed_url(self, tenant: str, base_path: str) -> str:
        return f"{self.api_host}/api/{tenant}{base_path.rstrip('/')}"

    def _view(self, tenant: str, swagger: dict) -> dict:
        return {"artifact_id": f"{tenant}:{swagger['basePath']}", "tenant_id": tenant,
                "managed_url": self.managed_url(tenant, swagger["basePath"]),
                "open_api_doc": copy.deepcopy(swagger)}

    def query(self, tenant: str, base_path: str | None, title: str | None) -> list[dict]:
        return [self._view(t, doc) for (t, bp), doc in sorted(self._apis.items())
                if t == tenant and (base_path is None or bp == base_path)
                and (title is None or doc.get("info", {}).get("title") == title)]

    def put(self, tenant: str, swagger: Any) -> dict:
        if not isinstance(swagger, dict) or not isinstance(swagger.get("basePath"), str) \
                or not swagger["basePath"].startswith("/") \
                or not isinstance(swagger.get("paths"), dict):
            raise ValueError("an API is a swagger object with basePath and paths")
        self._apis[(tenant, swagger["basePath"])] = copy.deepcopy(swagger)
        return self._view(tenant, swagger)

    def delete(self, tenant: str, base_path: str) -> bool:
        return self._apis.pop((tenant, base_path), None) is not None

    def route(self, tenant: str, path: str, verb: str) -> tuple[dict, str, dict] | None:
        """The web action serving ``path`` for ``verb`` (its ``x-openwhisk``), the path within
        the API and the path parameters."""
        for (owner, base_path), doc in self._apis.items():
            base = base_path.rstrip("/")
            if owner != tenant or not (path == base or path.startswith(base + "/")):
                continue
            rest = path[len(base):] or "/"
            for relpath, operations in doc["paths"].items():
                params = _path_match(relpath, rest) if isinstance(operations, dict) else None
                target = _target(operations.get(verb.lower())) if params is not None else None
                if target is not None:
                    return target, rest, params
        return None


def register_gateway_routes(app: Flask, emu: Any, gateway: ApiGateway) -> None:
    """The management API the apimgmt actions use, and the routes themselves."""

    def authorized() -> bool:
        auth = request.authorization
        return bool(auth and auth.type == "basic"
                    and secrets.compare_digest(auth.username or "", gateway.user)
                    and secrets.compare_digest(auth.password or "", gateway.password))

    @app.route(f"{MANAGEMENT_PATH}/<tenant>/apis", methods=["GET", "PUT", "DELETE"])
    def manage_apis(tenant: str):
        if not authorized():
            return _answer(401, {"status": 401, "message": "Error: Unauthorized"})
        if request.method == "GET":
            return _answer(200, gateway.query(tenant, request.args.get("basePath"),
                                              request.args.get("title")))
        if request.method == "DELETE":
            if not gateway.delete(tenant, request.args.get("basePath", "")):
                return _answer(404, {"status": 404, "message": "Error: API not found"})
            return _answer(200, {})
        try:
            return _answer(200, gateway.put(tenant, json.loads(request.get_data() or b"null")))
        except ValueError as exc:
            return _answer(400, {"status": 400, "message": f"Error: {exc}"})

    @app.route("/api/<tenant>/<path:rest>", methods=list(VERBS), provide_automatic_options=False)
    def serve_route(tenant: str, rest: str):
        if tenant == "v1":
            abort(404)  # the controller's own paths, not a tenant's
        found = gateway.route(tenant, "/" + rest, request.method)
        if found is None:
            return _answer(404, {"status": 404, "message": "Error: Route not found"})
        target, path, params = found
        extension = str(target.get("url", "")).rpartition(".")[2]
        if extension not in RESPONSE_TYPES:
            extension = "json"
        web_path = (f"{target['namespace']}/{target.get('package') or 'default'}/"
                    f"{target['action']}.{extension}")
        return handle_web(emu, web_path, GatewayCall(path=path, params=params))
