"""Web actions through gunicorn: they see only what their caller sent, OpenWhisk's .http is the
default, and one caller's bad input never opens the breaker for the others."""

from __future__ import annotations

import json

import pytest

from tests.conftest import module_env as base_module_env
from tests.rest.conftest import rest_env
from tests.rest.helpers import HttpApi

pytestmark = pytest.mark.postgres

WEB = "/api/v1/web-actions/invoke"
SECRET = "example-web-secret"  # websecret's require-whisk-auth in the example manifest


@pytest.fixture(scope="module")
def server(start_gunicorn, emulator, rest_pg_url, tmp_path_factory):
    env = rest_env(base_module_env(tmp_path_factory.mktemp("rest"), emulator, rest_pg_url),
                   WEB_WORKERS="1", BREAKER_FAIL_MAX="1",
                   WEB_ACTION_SECRETS="default/websecret=OW_TEST_WEBSECRET",
                   OW_TEST_WEBSECRET=SECRET, WEB_ACTION_KEY_ALLOWED="default/webkey")
    return start_gunicorn(env)


@pytest.fixture
def api(server, emu) -> HttpApi:
    return server.api()


def seen_headers(api: HttpApi, action: str = "webheaders", **body) -> dict:
    reply = api.post(WEB, {"action_name": action, **body})
    assert reply.status == 200, reply.body
    return json.loads(reply.body["response"])["headers"]


def test_the_action_sees_its_callers_headers_and_no_credential(api):
    headers = seen_headers(api, headers={"X-From-Caller": "one", "Cookie": "mine=1"})
    assert headers["x-from-caller"] == "one" and headers["cookie"] == "mine=1"
    assert "authorization" not in headers
    assert "x-require-whisk-auth" not in headers


def test_a_cookie_one_caller_is_set_never_reaches_the_next(api, server):
    first = api.post(WEB, {"action_name": "webcookie", "payload": {"value": "alice"}})
    assert first.status == 200
    assert "session=alice" in first.body["response_headers"]["Set-Cookie"]
    # Another caller, on the same gunicorn worker (there is one) and so the same session.
    other = server.api()
    second = other.post(WEB, {"action_name": "webcookie", "payload": {"value": "bob"}})
    assert json.loads(second.body["response"])["received"] is None
    assert "cookie" not in seen_headers(other)


def test_status_headers_and_body_are_the_actions_by_default(api):
    reply = api.post(WEB, {"action_name": "webstatus", "payload": {"status": 201}})
    assert reply.status == 200
    assert reply.body["status_code"] == 201
    assert reply.body["response_headers"]["X-Example"] == "yes"
    assert reply.body["response_headers"]["Location"] == "/things/1"
    assert json.loads(reply.body["response"]) == {"created": True, "status": 201}
    assert reply.body["result"] == {"created": True, "status": 201}
    failed = api.post(WEB, {"action_name": "webstatus", "payload": {"status": 409}})
    assert (failed.status, failed.body["status_code"]) == (502, 409)
    rendered = api.post(WEB, {"action_name": "webstatus", "extension": ".json"})
    assert rendered.body["status_code"] == 200
    assert json.loads(rendered.body["response"])["statusCode"] == 201


def test_require_whisk_auth_gets_the_configured_secret_or_the_allowed_key(api):
    assert seen_headers(api, "websecret")["x-require-whisk-auth"] == SECRET
    assert seen_headers(api, "webkey")["authorization"].startswith("Basic ")


@pytest.mark.parametrize("name", ["Host", "Transfer-Encoding", "Connection", "Content-Length",
                                  "Upgrade", "Proxy-Authorization"])
def test_hop_by_hop_headers_get_400_naming_them(api, name):
    reply = api.post(WEB, {"action_name": "webheaders", "headers": {name: "x"}})
    assert reply.status == 400 and name in reply.body["error"]["message"]


def test_a_web_action_that_does_not_exist_is_404(api):
    reply = api.post(WEB, {"action_name": "no-such-web-action"})
    assert (reply.status, reply.error_code) == (404, "not_found"), reply.body


@pytest.mark.parametrize("path, body", [
    ("/api/v1/actions/invoke", '{"action_name": "echo", "payload": {"x": NaN}}'),
    ("/api/v1/actions/invoke", '{"action_name": "echo", "payload": {"x": 1e400}}'),
    (WEB, '{"action_name": "webheaders", "payload": {"x": -Infinity}}'),
    ("/api/v1/triggers/fire", '{"trigger_name": "ping", "payload": {"x": [Infinity]}}'),
])
def test_a_payload_json_cannot_carry_is_400_and_never_opens_the_breaker(api, path, body):
    for _ in range(3):  # BREAKER_FAIL_MAX is 1 on this server
        reply = api.post(path, data=body, headers={"Content-Type": "application/json"})
        assert reply.status == 400, reply.body
    assert api.get("/health", token=None).body["breaker"] == "closed"
    assert api.post("/api/v1/actions/invoke", {"action_name": "hello"}).status == 200
