"""The management endpoints in-process against the emulator; every reply checked against
/openapi.json."""

from __future__ import annotations

import logging
import uuid

import pytest

from tests.conftest import API_KEY
from tests.rest.helpers import FlaskApi, make_token, router_token

MANAGE = ["execute_actions", "read", "manage"]
CODE = "def main(args):\n    return {'v': %d, 'p': args.get('p')}\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ops(make_app, emu):
    """The app, called with a token that carries manage."""
    return FlaskApi(make_app(), token=make_token(permissions=MANAGE))


def put(api, path, body, **kw):
    return api.request("PUT", path, json=body, **kw)


def test_action_lifecycle_create_invoke_update_get_delete(ops):
    name = unique("act")
    created = put(ops, f"/api/v1/actions/{name}",
                  {"kind": "python:3", "code": CODE % 1, "parameters": {"p": "x"}})
    assert created.status == 200
    assert (created.body["version"], created.body["kind"]) == ("0.0.1", "python:3")
    run = ops.post("/api/v1/actions/invoke", {"action_name": name})
    assert run.body["result"] == {"v": 1, "p": "x"}
    again = put(ops, f"/api/v1/actions/{name}", {"kind": "python:3", "code": CODE % 1})
    assert again.status == 409 and again.error_code == "conflict"
    updated = put(ops, f"/api/v1/actions/{name}?overwrite=true",
                  {"kind": "python:3", "code": CODE % 2})
    assert updated.body["version"] == "0.0.2"
    assert ops.post("/api/v1/actions/invoke", {"action_name": name}).body["result"]["v"] == 2
    shown = ops.get(f"/api/v1/actions/{name}?code=true")
    assert shown.body["code"] == CODE % 2 and shown.body["parameters"] == {"p": "x"}
    assert ops.get(f"/api/v1/actions/{name}").body["code"] is None
    assert ops.request("DELETE", f"/api/v1/actions/{name}").status == 200
    assert ops.get(f"/api/v1/actions/{name}").status == 404


def test_code_larger_than_the_payload_limit_is_accepted_for_actions(ops):
    # The app's MAX_PAYLOAD_BYTES is 4096 in tests; action code has OpenWhisk's own limit.
    code = CODE % 7 + "# " + "x" * 200_000 + "\n"
    name = unique("big")
    assert put(ops, f"/api/v1/actions/{name}", {"kind": "python:3", "code": code}).status == 200
    assert ops.post("/api/v1/actions/invoke", {"action_name": name}).body["result"]["v"] == 7


def test_packaged_actions_and_sequences(ops):
    package, seq = unique("pkg"), unique("seq")
    assert put(ops, f"/api/v1/packages/{package}", {"parameters": {"p": "pkg"}}).status == 200
    assert put(ops, f"/api/v1/actions/{package}/a",
               {"kind": "python:3", "code": CODE % 3}).status == 200
    made = put(ops, f"/api/v1/actions/{seq}", {"components": [f"{package}/a", "echo"]})
    assert made.body["components"] == [f"/guest/{package}/a", "/guest/echo"]
    result = ops.post("/api/v1/sequences/invoke", {"sequence_name": seq}).body["result"]
    assert result == {"v": 3, "p": "pkg"}
    assert ops.get(f"/api/v1/packages/{package}").body["actions"] == ["a"]
    listed = ops.get("/api/v1/packages").body["items"]
    assert package in [p["name"] for p in listed]


def test_binding_parameters_reach_the_action(ops):
    package, binding = unique("pkg"), unique("bind")
    put(ops, f"/api/v1/packages/{package}", {"parameters": {"p": "package"}})
    put(ops, f"/api/v1/actions/{package}/a", {"kind": "python:3", "code": CODE % 4})
    bound = put(ops, f"/api/v1/packages/{binding}",
                {"binding": package, "parameters": {"p": "binding"}})
    assert bound.body["binding"] == f"/guest/{package}"
    run = ops.post("/api/v1/actions/invoke", {"action_name": f"{binding}/a"})
    assert run.status == 200, run.body
    assert run.body["result"] == {"v": 4, "p": "binding"}


def test_trigger_rule_enable_disable(ops):
    trigger, rule = unique("trig"), unique("rule")
    assert put(ops, f"/api/v1/triggers/{trigger}", {"parameters": {"a": 1}}).status == 200
    made = put(ops, f"/api/v1/rules/{rule}", {"trigger": trigger, "action": "echo"})
    assert made.body["status"] == "active"
    assert ops.post(f"/api/v1/rules/{rule}/disable").body["status"] == "inactive"
    fired = ops.post("/api/v1/triggers/fire", {"trigger_name": trigger})
    assert fired.status == 200 and fired.body["status"] == "no active rule"
    assert ops.post(f"/api/v1/rules/{rule}/enable").body["status"] == "active"
    assert ops.post("/api/v1/triggers/fire", {"trigger_name": trigger}).status == 202
    assert ops.get(f"/api/v1/rules/{rule}").body["trigger"] == f"/guest/{trigger}"
    assert rule in [r["name"] for r in ops.get("/api/v1/rules").body["items"]]
    assert ops.request("DELETE", f"/api/v1/rules/{rule}").status == 200
    assert ops.request("DELETE", f"/api/v1/triggers/{trigger}").status == 200
    assert ops.get(f"/api/v1/triggers/{trigger}").status == 404


CHANGES = [
    ("PUT", "/api/v1/actions/x-denied", {"kind": "python:3", "code": "x"}),
    ("DELETE", "/api/v1/actions/echo", None),
    ("PUT", "/api/v1/packages/p-denied", {}),
    ("DELETE", "/api/v1/packages/p-denied", None),
    ("PUT", "/api/v1/triggers/t-denied", {}),
    ("DELETE", "/api/v1/triggers/t-denied", None),
    ("PUT", "/api/v1/rules/r-denied", {"trigger": "t", "action": "echo"}),
    ("DELETE", "/api/v1/rules/r-denied", None),
    ("POST", "/api/v1/rules/ping-rule/disable", None),
    ("POST", "/api/v1/routes", {"basepath": "/b", "relpath": "/r", "verb": "GET",
                                "action": "echo"}),
    ("DELETE", "/api/v1/routes?basepath=/b", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CHANGES)
@pytest.mark.parametrize("who", ["execute_and_read", "router"])
def test_every_change_needs_manage(make_app, emu, caplog, method, path, body, who):
    token = router_token() if who == "router" else make_token()
    api = FlaskApi(make_app(), token=token)
    caplog.set_level(logging.INFO)
    reply = api.request(method, path, json=body)
    assert reply.status == 403 and reply.error_code == "permission_denied"
    assert any(getattr(r, "aaa_event", None) == "AUTHZ" and r.aaa_action == "manage"
               for r in caplog.records)
    assert emu.api("GET", "/namespaces/_/actions/echo").status_code == 200
    assert emu.api("GET", "/namespaces/_/rules/ping-rule").json()["status"] == "active"


def test_reads_need_read_not_manage(make_app, emu):
    api = FlaskApi(make_app(), token=make_token(permissions=["read"]))
    assert api.get("/api/v1/actions/echo").status == 200
    assert api.get("/api/v1/rules").status == 200


def test_an_api_key_buys_manage_only_when_configured(make_app, emu):
    plain = FlaskApi(make_app())
    asked = plain.post("/api/v1/auth/token", {"api_key": API_KEY, "permissions": MANAGE},
                       token=None)
    assert asked.status == 403
    granted = FlaskApi(make_app(API_KEY_PERMISSIONS="svc-a=execute_actions+read+manage"))
    reply = granted.post("/api/v1/auth/token", {"api_key": API_KEY}, token=None)
    assert reply.status == 200 and "manage" in reply.body["permissions"]
    name = unique("keyed")
    made = granted.request("PUT", f"/api/v1/actions/{name}", json={"kind": "python:3",
                                                                   "code": CODE % 1},
                           token=reply.body["token"])
    assert made.status == 200


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/actions/bad%20name%20", {"kind": "python:3", "code": "x"}),
    ("/api/v1/actions/a/b/c", {"kind": "python:3", "code": "x"}),
    ("/api/v1/actions/no-code", {"kind": "python:3"}),
    ("/api/v1/actions/strict", {"kind": "python:3", "code": 5}),
    ("/api/v1/triggers/t-bad-feed", {"feed": "/guest/elsewhere"}),
    ("/api/v1/packages/default", {}),
])
def test_bad_changes_are_400(ops, path, body):
    reply = put(ops, path, body)
    assert reply.status == 400 and reply.error_code in ("invalid_request",)


def test_a_route_needs_a_web_action(ops):
    name = unique("notweb")
    put(ops, f"/api/v1/actions/{name}", {"kind": "python:3", "code": CODE % 1})
    reply = ops.post("/api/v1/routes", {"basepath": "/b", "relpath": "/r", "verb": "GET",
                                        "action": name})
    assert reply.status == 400 and "not a web action" in reply.body["error"]["message"]
