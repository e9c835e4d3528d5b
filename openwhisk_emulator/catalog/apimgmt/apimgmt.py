"""The ``/whisk.system/apimgmt`` web actions: ``createApi``, ``getApi`` and ``deleteApi``.

What ``wsk api`` and the JS client's ``routes`` call. Each keeps the caller's APIs (tenant: the
caller's namespace, ``__ow_user``) through the gateway's management API at ``gwUrl``, with the
``gwUser``/``gwPwd`` the package is bound with. An API is a swagger 2.0 document whose operations
carry ``x-openwhisk`` (namespace, package, action, web action URL). ``accesstoken`` and
``spaceguid`` are accepted and not needed: this gateway has one tenant per namespace.
"""

import base64
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request

RESPONSE_TYPES = ("json", "http", "html", "svg", "text")


class Refused(Exception):
    def __init__(self, message, status=502):
        super().__init__(message)
        self.message = message
        self.status = status


def gateway(params, method, query=None, body=None):
    url = str(params.get("gwUrl", "")).rstrip("/") + "/" + urllib.parse.quote(
        params["__ow_user"], safe="") + "/apis"
    if not url.startswith(("http://", "https://")):
        raise Refused("gwUrl is required.")
    if query:
        url += "?" + urllib.parse.urlencode(query)
    token = base64.b64encode(f"{params.get('gwUser')}:{params.get('gwPwd')}".encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={  # noqa: S310 - checked
        "Authorization": "Basic " + token, "Content-Type": "application/json"})
    # The gateway is the emulator itself, whose certificate (if any) is its own.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as answer:  # noqa: S310
            return json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and method == "DELETE":
            raise Refused(f"API '{query.get('basePath')}' does not exist.", 404) from None
        raise Refused(f"Unable to configure the API Gateway (status code {exc.code})") from None


def cli_api(gw_api):
    """The shape ``wsk api`` reads: id, key, value {namespace, gwApiUrl, apidoc, ...}."""
    return {"id": gw_api["artifact_id"], "key": gw_api["tenant_id"], "value": {
        "namespace": gw_api["tenant_id"], "gwApiActivated": True,
        "tenantId": gw_api["tenant_id"], "gwApiUrl": gw_api["managed_url"],
        "apidoc": gw_api["open_api_doc"]}}


def split_action(name):
    """``/ns/pkg/action``, ``pkg/action`` or ``action`` into (package, action)."""
    parts = [p for p in str(name).split("/") if p]
    if len(parts) == 3 or (len(parts) == 2 and str(name).startswith("/")):
        parts = parts[1:]
    return ("", parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def load_apidoc(params):
    doc = params.get("apidoc")
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            raise Refused("apidoc field cannot be parsed. Ensure it is valid JSON.") from None
    if not doc:
        raise Refused("apidoc is required.")
    if not isinstance(doc, dict):
        raise Refused(f"apidoc field is of type {type(doc).__name__} and should be a JSON object "
                      "or a JSON string.")
    if not doc.get("namespace"):
        raise Refused("apidoc is missing the namespace field")
    swagger = doc.get("swagger")
    if swagger:
        if doc.get("gatewayBasePath"):
            raise Refused("swagger and gatewayBasePath are mutually exclusive and cannot be "
                          "specified together.")
        if isinstance(swagger, str):
            try:
                swagger = json.loads(swagger)
            except ValueError:
                raise Refused("swagger field cannot be parsed. Ensure it is valid JSON.") from None
        for required in ("basePath", "paths", "info"):
            if not swagger.get(required):
                raise Refused(f"swagger is missing the {required} field.")
        doc["swagger"] = swagger
        return doc
    for required in ("gatewayBasePath", "gatewayPath", "gatewayMethod"):
        if not doc.get(required):
            raise Refused(f"apidoc is missing the {required} field")
    action = doc.get("action")
    if not isinstance(action, dict) or not action:
        raise Refused("apidoc is missing the action field.")
    for required in ("backendMethod", "backendUrl", "namespace", "name", "authkey"):
        if not action.get(required):
            raise Refused(f"action is missing the {required} field.")
    return doc


def create_api(params):
    doc = load_apidoc(params)
    user = params["__ow_user"]
    action = doc.get("action")
    # The controller's namespace replaces the client's, for the action too when it was the same.
    if action and action.get("namespace") in (doc["namespace"], "_"):
        action["namespace"] = user
    doc["namespace"] = user
    if doc.get("swagger"):
        swagger = doc["swagger"]
    else:
        base_path = doc["gatewayBasePath"]
        found = gateway(params, "GET", {"basePath": base_path})
        swagger = found[0]["open_api_doc"] if found else {
            "swagger": "2.0", "basePath": base_path, "paths": {},
            "info": {"title": doc.get("apiName") or base_path, "version": "1.0.0"}}
        response_type = str(params.get("responsetype") or "json").lower()
        if response_type not in RESPONSE_TYPES:
            raise Refused(f"responsetype must be one of {', '.join(RESPONSE_TYPES)}")
        package, name = split_action(action["name"])
        verb = str(doc["gatewayMethod"]).lower()
        host = os.environ.get("__OW_API_HOST", "").rstrip("/")
        operation = {
            "operationId": f"{verb}_{doc['gatewayPath']}",
            "x-openwhisk": {
                "namespace": action["namespace"], "package": package, "action": name,
                "url": f"{host}/api/v1/web/{action['namespace']}/{package or 'default'}/"
                       f"{name}.{response_type}"},
            "responses": {"default": {"description": "Default response"}},
        }
        if doc.get("pathParameters"):
            operation["parameters"] = doc["pathParameters"]
        swagger.setdefault("paths", {}).setdefault(doc["gatewayPath"], {})[verb] = operation
    return cli_api(gateway(params, "PUT", body=swagger))["value"]


def get_api(params):
    base_path = params.get("basepath")
    query = {}
    if base_path:
        query = {"basePath": base_path} if str(base_path).startswith("/") else {
            "title": base_path}
    apis = gateway(params, "GET", query)
    relpath, operation = params.get("relpath"), str(params.get("operation") or "").lower()
    for api in apis:
        paths = api["open_api_doc"]["paths"]
        if relpath:
            paths = {relpath: paths[relpath]} if relpath in paths else {}
        if operation:
            paths = {p: {operation: ops[operation]} for p, ops in paths.items() if operation in ops}
        api["open_api_doc"]["paths"] = paths
    return {"apis": [cli_api(api) for api in apis]}


def delete_api(params):
    base_path = params.get("basepath")
    if not base_path:
        raise Refused("basepath is required.")
    query = {"basePath": base_path} if str(base_path).startswith("/") else {"title": base_path}
    found = gateway(params, "GET", query)
    if not found:
        raise Refused(f"API '{base_path}' does not exist.", 404)
    swagger = found[0]["open_api_doc"]
    relpath, operation = params.get("relpath"), str(params.get("operation") or "").lower()
    if relpath:
        if relpath not in swagger["paths"] or (operation and
                                                operation not in swagger["paths"][relpath]):
            what = f"path {relpath}" + (f" with operation {operation}" if operation else "")
            raise Refused(f"{what} does not exist in the API", 404)
        if operation:
            del swagger["paths"][relpath][operation]
        if not operation or not swagger["paths"][relpath]:
            del swagger["paths"][relpath]
    if relpath and swagger["paths"]:
        gateway(params, "PUT", body=swagger)
    else:
        gateway(params, "DELETE", {"basePath": swagger["basePath"]})
    return {}


HANDLERS = {"createApi": create_api, "getApi": get_api, "deleteApi": delete_api}


def main(params):
    handler = HANDLERS.get(os.environ.get("__OW_ACTION_NAME", "").rsplit("/", 1)[-1])
    as_web = "__ow_method" in params
    try:
        if handler is None:
            raise Refused("unknown apimgmt action")
        if not params.get("__ow_user"):
            raise Refused("A valid auth key is required.")
        result, status = handler(params), 200
    except Refused as exc:
        if not as_web:
            return {"error": exc.message}
        result, status = {"error": exc.message}, exc.status
    if not as_web:
        return result
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": result}
