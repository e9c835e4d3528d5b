"""Entity routes: actions, packages, triggers, rules; names, auth, namespaces, lists, errors."""

from __future__ import annotations

import re

import requests

from tests.emulator.conftest import HELLO_PY, put_action

REQUEST_ID = re.compile(r"\A\S+\Z")


def test_info_is_public_and_describes_api_v1(emu):
    r = requests.get(emu.url + "/api/v1", timeout=5)
    assert r.status_code == 200
    assert r.json()["api_version"] == "1.0.0"
    assert REQUEST_ID.match(r.headers["X-Request-ID"])


def test_namespaces_lists_guest(emu):
    r = emu.api("GET", "/namespaces")
    assert r.status_code == 200
    assert r.json() == ["guest"]


def test_limits_report_the_configured_throttles_and_action_bounds(emu):
    r = emu.api("GET", "/namespaces/_/limits")
    assert r.status_code == 200
    limits = r.json()
    assert limits["concurrentInvocations"] == 10000
    assert limits["invocationsPerMinute"] == 600000
    assert limits["firesPerMinute"] == 600000
    assert limits["minActionTimeout"] == 100
    assert limits["maxActionTimeout"] == 300000
    assert limits["maxActionMemory"] == 512 * 1024 * 1024


def test_missing_credentials_are_401_with_www_authenticate(emu):
    r = requests.get(emu.url + "/api/v1/namespaces/_/actions", timeout=5)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="OpenWhisk secure realm"'
    body = r.json()
    assert body["code"] == r.headers["X-Request-ID"]
    assert "requires authentication" in body["error"]


def test_wrong_key_is_401_invalid(emu):
    user, _ = emu.basic_auth
    r = requests.get(emu.url + "/api/v1/namespaces/_/actions", auth=(user, "nope"), timeout=5)
    assert r.status_code == 401
    assert r.json()["error"] == "The supplied authentication is invalid"


def test_another_namespace_is_403_naming_the_resource(emu):
    r = emu.api("GET", "/namespaces/someone/actions/hello")
    assert r.status_code == 403
    assert r.json()["error"] == (
        "The supplied authentication is not authorized to access 'someone/hello'."
    )


def test_underscore_and_guest_name_the_same_namespace(emu):
    a = emu.api("GET", "/namespaces/_/actions/hello", params={"code": "false"}).json()
    b = emu.api("GET", "/namespaces/guest/actions/hello", params={"code": "false"}).json()
    assert a == b
    assert a["namespace"] == "guest"


def test_client_request_id_is_echoed_and_used_as_error_code(emu):
    r = emu.api("GET", "/namespaces/_/actions/absent-xyz", headers={"X-Request-ID": "abc123"})
    assert r.status_code == 404
    assert r.headers["X-Request-ID"] == "abc123"
    assert r.json() == {"error": "The requested resource does not exist.", "code": "abc123"}


def test_create_get_update_delete_action_bumps_version(emu, uname):
    name = uname("act")
    created = put_action(emu, name, limits={"timeout": 5000}, parameters=[
        {"key": "name", "value": "Ann"}])
    assert created["version"] == "0.0.1"
    assert created["exec"] == {"kind": "python:3", "code": HELLO_PY, "binary": False}
    assert created["limits"] == {"timeout": 5000, "memory": 256, "logs": 10, "concurrency": 1}
    assert {"key": "exec", "value": "python:3"} in created["annotations"]

    again = emu.api("PUT", f"/namespaces/_/actions/{name}",
                    json={"exec": {"kind": "python:3", "code": HELLO_PY}})
    assert again.status_code == 409
    assert again.json()["error"] == "resource already exists"

    updated = emu.api("PUT", f"/namespaces/_/actions/{name}", params={"overwrite": "true"},
                      json={"limits": {"memory": 128}})
    assert updated.status_code == 200
    assert updated.json()["version"] == "0.0.2"
    assert updated.json()["limits"]["timeout"] == 5000
    assert updated.json()["limits"]["memory"] == 128

    no_code = emu.api("GET", f"/namespaces/_/actions/{name}", params={"code": "false"}).json()
    assert "code" not in no_code["exec"]
    assert no_code["parameters"] == [{"key": "name", "value": "Ann"}]

    deleted = emu.api("DELETE", f"/namespaces/_/actions/{name}")
    assert deleted.status_code == 200
    assert deleted.json()["name"] == name
    assert emu.api("GET", f"/namespaces/_/actions/{name}").status_code == 404


def test_action_limits_out_of_range_are_400(emu, uname):
    for limits, fragment in [
        ({"timeout": 50}, "below allowed threshold of 100"),
        ({"timeout": 300001}, "exceeds allowed threshold of 300000"),
        ({"memory": 64}, "below allowed threshold of 128"),
        ({"memory": 1024}, "exceeds allowed threshold of 512"),
        ({"logs": 11}, "exceeds allowed threshold of 10"),
        ({"concurrency": 5}, "concurrency 5 exceeds allowed threshold of 1"),
    ]:
        r = emu.api("PUT", f"/namespaces/_/actions/{uname()}",
                    json={"exec": {"kind": "python:3", "code": HELLO_PY}, "limits": limits})
        assert r.status_code == 400, limits
        assert fragment in r.json()["error"]


def test_unsupported_kinds_are_400(emu, uname):
    for kind in ("blackbox", "java:8", "nodejs:6"):
        r = emu.api("PUT", f"/namespaces/_/actions/{uname()}",
                    json={"exec": {"kind": kind, "code": "x", "image": "a/b"}})
        assert r.status_code == 400, kind


def test_entity_name_rules(emu):
    too_long = "a" * 257
    r = emu.api("GET", f"/namespaces/_/actions/{too_long}")
    assert r.status_code == 400
    assert r.json()["error"] == "Name segement longer than allowed: 257 > 256."
    r = emu.api("GET", "/namespaces/_/actions/bad%21name")
    assert r.status_code == 400
    assert r.json()["error"] == "The name of the entity contains illegal characters."
    r = emu.api("GET", "/namespaces/_/actions/ends-with-space%20")
    assert r.status_code == 400
    r = emu.api("GET", "/namespaces/b%24d/actions/x")
    assert r.status_code == 400
    assert r.json()["error"] == "The namespace contains illegal characters."


def test_names_at_the_limit_and_with_allowed_characters_work(emu, uname):
    name = "a" * 256
    put_action(emu, name)
    assert emu.api("GET", f"/namespaces/_/actions/{name}").status_code == 200
    odd = f"x@y.z &-{uname()}"
    put_action(emu, odd)
    assert emu.api("GET", f"/namespaces/_/actions/{odd}").json()["name"] == odd
    emu.api("DELETE", f"/namespaces/_/actions/{name}")
    emu.api("DELETE", f"/namespaces/_/actions/{odd}")


def test_name_in_another_collection_is_409(emu):
    r = emu.api("GET", "/namespaces/_/actions/ping")
    assert r.status_code == 409
    assert r.json()["error"] == "Resource by this name exists but is not in this collection."
    r = emu.api("PUT", "/namespaces/_/triggers/echo", json={})
    assert r.status_code == 409


def test_non_json_body_is_415(emu, uname):
    r = emu.api("PUT", f"/namespaces/_/actions/{uname()}", data="exec=1",
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    assert "Content-Type is not supported" in r.json()["error"]


def test_malformed_json_body_is_400(emu, uname):
    r = emu.api("PUT", f"/namespaces/_/actions/{uname()}", data="{nope",
                headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_list_actions_limits_skip_and_count(emu, uname):
    all_rows = emu.api("GET", "/namespaces/_/actions", params={"limit": 0}).json()
    total = emu.api("GET", "/namespaces/_/actions", params={"count": "true"}).json()["actions"]
    assert total == len(all_rows)
    assert {"name", "namespace", "version", "publish", "annotations", "limits", "exec",
            "updated"} <= set(all_rows[0])
    assert "code" not in all_rows[0]["exec"]
    # newest update first
    updated = [row["updated"] for row in all_rows]
    assert updated == sorted(updated, reverse=True)
    # the namespace listing includes packaged actions, with namespace ns/pkg
    assert {"namespace": "guest/waddlebot", "name": "weather"}.items() <= next(
        row for row in all_rows if row["name"] == "weather").items()
    two = emu.api("GET", "/namespaces/_/actions", params={"limit": 2, "skip": 1}).json()
    assert [r["name"] for r in two] == [r["name"] for r in all_rows[1:3]]
    skipped = emu.api("GET", "/namespaces/_/actions", params={"count": "true", "skip": 2})
    assert skipped.json() == {"actions": max(0, total - 2)}


def test_list_default_limit_is_30(emu, uname):
    prefix = uname("many")
    for i in range(32 - len(emu.api("GET", "/namespaces/_/actions",
                                    params={"limit": 0}).json())):
        put_action(emu, f"{prefix}-{i}")
    assert len(emu.api("GET", "/namespaces/_/actions").json()) == 30


def test_list_parameter_errors_are_400_with_openwhisk_messages(emu):
    cases = [
        ({"limit": 201}, "The value '201' is not in the range of 0 to 200 for actions."),
        ({"limit": "x"}, "The value 'x' is not an integer for actions."),
        ({"skip": -1}, "The value '-1' is not greater than or equal to 0 for actions."),
    ]
    for params, message in cases:
        r = emu.api("GET", "/namespaces/_/actions", params=params)
        assert r.status_code == 400
        assert r.json()["error"] == message


def test_packages_default_is_reserved_and_get_lists_actions(emu, uname):
    r = emu.api("PUT", "/namespaces/_/packages/default", json={})
    assert r.status_code == 400
    assert r.json()["error"] == "Package name 'default' is reserved."
    pkg = emu.api("GET", "/namespaces/_/packages/waddlebot").json()
    assert [a["name"] for a in pkg["actions"]] == ["weather"]
    assert pkg["feeds"] == []
    inner = emu.api("GET", "/namespaces/_/actions/waddlebot/")
    assert inner.status_code == 200
    assert [a["name"] for a in inner.json()] == ["weather"]


def test_package_delete_needs_force_when_not_empty(emu, uname):
    pkg = uname("pkg")
    assert emu.api("PUT", f"/namespaces/_/packages/{pkg}",
                   json={"parameters": [{"key": "p", "value": 1}]}).status_code == 200
    put_action(emu, f"{pkg}/inner")
    names = [p["name"] for p in emu.api("GET", "/namespaces/_/packages").json()]
    assert pkg in names
    r = emu.api("DELETE", f"/namespaces/_/packages/{pkg}")
    assert r.status_code == 409
    assert r.json()["error"] == (
        "Package not empty (contains 1 entity). Set force param or delete package contents."
    )
    assert emu.api("DELETE", f"/namespaces/_/packages/{pkg}",
                   params={"force": "true"}).status_code == 200
    assert emu.api("GET", f"/namespaces/_/actions/{pkg}/inner").status_code == 404


def test_action_in_missing_package_is_404(emu, uname):
    r = emu.api("PUT", f"/namespaces/_/actions/{uname()}/x",
                json={"exec": {"kind": "python:3", "code": HELLO_PY}})
    assert r.status_code == 404


def test_trigger_crud_and_rule_states(emu, uname):
    trig, rule = uname("trig"), uname("rule")
    r = emu.api("PUT", f"/namespaces/_/triggers/{trig}",
                json={"parameters": [{"key": "k", "value": "v"}]})
    assert r.status_code == 200
    assert r.json()["parameters"] == [{"key": "k", "value": "v"}]
    r = emu.api("PUT", f"/namespaces/_/rules/{rule}",
                json={"trigger": f"/_/{trig}", "action": "/_/echo"})
    assert r.status_code == 200
    assert r.json()["status"] == "active"
    assert r.json()["trigger"] == {"path": "guest", "name": trig}
    assert r.json()["action"] == {"path": "guest", "name": "echo"}
    got = emu.api("GET", f"/namespaces/_/triggers/{trig}").json()
    assert got["rules"][f"guest/{rule}"]["status"] == "active"
    r = emu.api("POST", f"/namespaces/_/rules/{rule}", json={"status": "inactive"})
    assert r.status_code == 200
    assert emu.api("GET", f"/namespaces/_/rules/{rule}").json()["status"] == "inactive"
    r = emu.api("POST", f"/namespaces/_/rules/{rule}", json={"status": "paused"})
    assert r.status_code == 400
    assert r.json()["error"] == (
        "'paused' is not a recognized rule state, must be one of ['active', 'inactive']"
    )
    rules = [x["name"] for x in emu.api("GET", "/namespaces/_/rules").json()]
    assert rule in rules
    assert emu.api("DELETE", f"/namespaces/_/rules/{rule}").status_code == 200
    assert emu.api("DELETE", f"/namespaces/_/triggers/{trig}").status_code == 200
    assert emu.api("GET", f"/namespaces/_/triggers/{trig}").status_code == 404


def test_rule_needs_existing_trigger_and_action(emu, uname):
    r = emu.api("PUT", f"/namespaces/_/rules/{uname()}",
                json={"trigger": "/_/no-such-trigger", "action": "/_/echo"})
    assert r.status_code == 400
    r = emu.api("PUT", f"/namespaces/_/rules/{uname()}",
                json={"trigger": "/_/ping", "action": "/_/no-such-action"})
    assert r.status_code == 400


def test_unknown_route_is_json_404(emu):
    r = emu.api("GET", "/nothing/here")
    assert r.status_code == 404
    assert r.json()["code"] == r.headers["X-Request-ID"]


def test_cors_headers_and_options(emu):
    r = requests.options(emu.url + "/api/v1/namespaces/_/actions", timeout=5)
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "PUT" in r.headers["Access-Control-Allow-Methods"]
