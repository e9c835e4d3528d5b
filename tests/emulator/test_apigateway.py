"""API routes: the apimgmt web actions as clients call them, and the gateway serving routes."""

from __future__ import annotations

import requests

from tests.emulator.conftest import put_action

ROUTED_PY = """def main(args):
    headers = args.get("__ow_headers", {})
    return {"method": args["__ow_method"], "path": args["__ow_path"], "id": args.get("id"),
            "name": args.get("name"), "user": args.get("__ow_user"),
            "sees_authorization": "authorization" in headers}
"""


def mgmt(emu, method, action, **kw):
    return requests.request(method, f"{emu.url}/api/v1/web/whisk.system/apimgmt/{action}",
                            auth=emu.basic_auth, timeout=30, **kw)


def create_route(emu, action, basepath, relpath, verb, **qs):
    apidoc = {"namespace": "_", "gatewayBasePath": basepath, "gatewayPath": relpath,
              "gatewayMethod": verb, "id": f"API:_:{basepath}",
              "action": {"name": action, "namespace": "guest", "backendMethod": "GET",
                         "backendUrl": f"{emu.url}/api/v1/web/guest/default/{action}.http",
                         "authkey": emu.auth}}
    return mgmt(emu, "POST", "createApi", json={"apidoc": apidoc},
                params={"accesstoken": "placeholder", "spaceguid": "guest", **qs})


def test_a_route_is_created_listed_served_and_deleted(emu, uname):
    action, base = uname("routed"), "/" + uname("base")
    put_action(emu, action, ROUTED_PY, annotations=[{"key": "web-export", "value": True}])
    r = create_route(emu, action, base, "/books/{id}", "GET")
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["gwApiUrl"] == f"{emu.url}/api/guest{base}"
    operation = created["apidoc"]["paths"]["/books/{id}"]["get"]
    assert operation["x-openwhisk"]["action"] == action
    assert operation["x-openwhisk"]["namespace"] == "guest"
    assert create_route(emu, action, base, "/shelf", "POST").status_code == 200

    listed = mgmt(emu, "GET", "getApi", params={"basepath": base}).json()
    assert len(listed["apis"]) == 1
    apidoc = listed["apis"][0]["value"]["apidoc"]
    assert apidoc["basePath"] == base
    assert set(apidoc["paths"]) == {"/books/{id}", "/shelf"}

    served = requests.get(f"{emu.url}/api/guest{base}/books/42", params={"name": "Ann"},
                          auth=emu.basic_auth, timeout=30)
    assert served.status_code == 200, served.text
    assert served.json() == {"method": "get", "path": "/books/42", "id": "42", "name": "Ann",
                             "user": "guest", "sees_authorization": False}
    posted = requests.post(f"{emu.url}/api/guest{base}/shelf", json={"name": "Bo"}, timeout=30)
    assert posted.json()["name"] == "Bo"
    # Only the declared verb, only the declared paths.
    assert requests.post(f"{emu.url}/api/guest{base}/books/42", timeout=30).status_code == 404
    assert requests.get(f"{emu.url}/api/guest{base}/other", timeout=30).status_code == 404
    assert requests.get(f"{emu.url}/api/someone{base}/shelf", timeout=30).status_code == 404

    r = mgmt(emu, "DELETE", "deleteApi",
             params={"basepath": base, "relpath": "/shelf", "operation": "POST", "force": "true"})
    assert r.status_code == 200, r.text
    assert requests.post(f"{emu.url}/api/guest{base}/shelf", timeout=30).status_code == 404
    assert requests.get(f"{emu.url}/api/guest{base}/books/1", timeout=30).status_code == 200
    assert mgmt(emu, "DELETE", "deleteApi", params={"basepath": base}).status_code == 200
    assert mgmt(emu, "GET", "getApi", params={"basepath": base}).json() == {"apis": []}
    assert requests.get(f"{emu.url}/api/guest{base}/books/1", timeout=30).status_code == 404
    missing = mgmt(emu, "DELETE", "deleteApi", params={"basepath": base})
    assert missing.status_code == 404
    assert missing.json() == {"error": f"API '{base}' does not exist."}


def test_a_route_to_an_action_that_is_not_a_web_action_is_kept_but_answers_404(emu, uname):
    action, base = uname("plain"), "/" + uname("base")
    put_action(emu, action, ROUTED_PY)
    assert create_route(emu, action, base, "/x", "GET").status_code == 200
    r = requests.get(f"{emu.url}/api/guest{base}/x", timeout=30)
    assert r.status_code == 404
    mgmt(emu, "DELETE", "deleteApi", params={"basepath": base})


def test_apimgmt_checks(emu, uname):
    anonymous = requests.post(f"{emu.url}/api/v1/web/whisk.system/apimgmt/createApi", json={},
                              timeout=30)
    assert anonymous.status_code == 401
    # The gateway's URL and credentials are bound and final: a caller cannot redirect them.
    r = mgmt(emu, "POST", "createApi", json={"gwUrl": "http://127.0.0.1:9/"})
    assert r.status_code == 400
    r = mgmt(emu, "POST", "createApi", json={})
    assert (r.status_code, r.json()) == (502, {"error": "apidoc is required."})
    r = mgmt(emu, "POST", "createApi", json={"apidoc": {"namespace": "_",
                                                        "gatewayBasePath": "/b"}})
    assert r.json() == {"error": "apidoc is missing the gatewayPath field"}
    r = create_route(emu, "x", "/" + uname("b"), "/p", "GET", responsetype="pdf")
    assert r.json() == {"error": "responsetype must be one of json, http, html, svg, text"}
    # The management API itself is the apimgmt package's alone.
    r = requests.get(f"{emu.url}/_emulator/apigw/guest/apis", auth=emu.basic_auth, timeout=30)
    assert r.status_code == 401
    # The package is not shared: its parameters (the credentials) cannot be read.
    r = emu.api("GET", "/namespaces/whisk.system/packages/apimgmt")
    assert r.status_code == 403


def test_routes_of_a_swagger_document(emu, uname):
    action, base = uname("sw"), "/" + uname("base")
    put_action(emu, action, ROUTED_PY, annotations=[{"key": "web-export", "value": True}])
    swagger = {"swagger": "2.0", "basePath": base, "info": {"title": "t", "version": "1"},
               "paths": {"/s": {"put": {"x-openwhisk": {
                   "namespace": "guest", "package": "", "action": action,
                   "url": f"{emu.url}/api/v1/web/guest/default/{action}.json"}}},
                   "/list": [], "/odd": {"get": {"x-openwhisk": {"namespace": 5}}},
                   "/{1}/{1}": {"get": {"x-openwhisk": {"namespace": "guest", "action": action}}}}}
    r = mgmt(emu, "POST", "createApi", json={"apidoc": {"namespace": "_", "swagger": swagger}})
    assert r.status_code == 200, r.text
    assert requests.put(f"{emu.url}/api/guest{base}/s", timeout=30).json()["method"] == "put"
    # Whatever a swagger document holds, a route that names no web action is not served.
    assert requests.get(f"{emu.url}/api/guest{base}/list", timeout=30).status_code == 404
    assert requests.get(f"{emu.url}/api/guest{base}/odd", timeout=30).status_code == 404
    odd = requests.get(f"{emu.url}/api/guest{base}/a/b", timeout=30)
    assert (odd.status_code, odd.json()["method"]) == (200, "get")
    mgmt(emu, "DELETE", "deleteApi", params={"basepath": base})
