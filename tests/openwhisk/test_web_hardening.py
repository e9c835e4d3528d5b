"""Web actions see only what their caller sent; a caller's mistakes never count as OpenWhisk
failing."""

from __future__ import annotations

import json

import pybreaker
import pytest

from owaction.openwhisk import InvalidName, RequestTimedOut
from owaction.openwhisk.errors import InvalidRequest, WebActionAuthRequired
from owaction.openwhisk.webauth import WebActionAuth

SECRET = "example-web-secret"  # websecret's require-whisk-auth in the example manifest


def seen_headers(client, name: str = "webheaders", **kw) -> dict:
    response = client.invoke_web_action(name, **kw)
    assert response.status_code == 200, response.text()
    return json.loads(response.body)["headers"]


def test_a_web_action_gets_no_credentials_but_an_action_does(make_client, recorder):
    client = make_client(api_host=recorder.url)
    recorder.headers = {"x-openwhisk-activation-id": "a" * 32}
    client.invoke_web_action("webheaders")
    client.invoke_action("hello", blocking=False)
    web, action = (r["headers"] for r in recorder.requests)
    assert "Authorization" not in web
    assert action["Authorization"].startswith("Basic ")


def test_the_action_sees_the_callers_headers_and_no_credential(client):
    headers = seen_headers(client, headers={"X-From-Caller": "one", "Cookie": "mine=1"})
    assert headers["x-from-caller"] == "one"
    assert headers["cookie"] == "mine=1"
    assert "authorization" not in headers


def test_no_cookie_outlives_its_call(client):
    first = client.invoke_web_action("webcookie", {"value": "alice"})
    assert "session=alice" in first.headers["Set-Cookie"]
    second = client.invoke_web_action("webcookie", {"value": "bob"})
    assert json.loads(second.body)["received"] is None
    assert "cookie" not in seen_headers(client)
    assert len(client._session.cookies) == 0


@pytest.mark.parametrize("name", ["Host", "transfer-encoding", "Connection", "Content-Length",
                                  "Keep-Alive", "TE", "Trailer", "Upgrade", "Proxy-Authorization"])
def test_hop_by_hop_and_framing_headers_are_refused_before_anything_is_sent(
        make_client, recorder, name):
    client = make_client(api_host=recorder.url)
    with pytest.raises(InvalidName, match=name):
        client.invoke_web_action("webheaders", headers={name: "x"})
    assert recorder.requests == []


def test_a_configured_secret_is_sent_as_x_require_whisk_auth(make_client):
    client = make_client(web_auth=WebActionAuth.build("guest", [("default/websecret", SECRET)]))
    headers = seen_headers(client, "websecret", headers={"X-Require-Whisk-Auth": "forged"})
    assert headers["x-require-whisk-auth"] == SECRET
    assert "authorization" not in headers
    # The secret is for that action only.
    assert "x-require-whisk-auth" not in seen_headers(client)


def test_a_package_wide_secret_applies_to_its_actions(make_client):
    client = make_client(web_auth=WebActionAuth.build("guest", [("default/*", SECRET)]))
    assert seen_headers(client, "websecret")["x-require-whisk-auth"] == SECRET


def test_a_secured_web_action_without_its_secret_is_refused_clearly(client, make_client):
    with pytest.raises(WebActionAuthRequired, match="WEB_ACTION_SECRETS"):
        client.invoke_web_action("websecret")
    wrong = make_client(web_auth=WebActionAuth.build("guest", [("default/websecret", "no")]))
    with pytest.raises(WebActionAuthRequired, match="does not match"):
        wrong.invoke_web_action("websecret")


def test_require_whisk_auth_true_gets_the_key_only_when_the_operator_allows_it(
        client, make_client):
    with pytest.raises(WebActionAuthRequired, match="WEB_ACTION_KEY_ALLOWED"):
        client.invoke_web_action("webkey")
    allowed = make_client(web_auth=WebActionAuth.build("guest", key_allowed=["default/webkey"]))
    assert seen_headers(allowed, "webkey")["authorization"].startswith("Basic ")
    assert "authorization" not in seen_headers(allowed)


@pytest.mark.parametrize("payload", [{"x": float("nan")}, {"x": [float("inf")]},
                                     {"x": {"y": float("-inf")}}])
def test_a_payload_json_cannot_carry_is_refused_and_never_counted(make_client, recorder,
                                                                  payload):
    guard = pybreaker.CircuitBreaker(fail_max=1)
    client = make_client(api_host=recorder.url, breaker=guard)
    for call in (client.invoke_action, client.invoke_web_action, client.fire_trigger):
        with pytest.raises(InvalidRequest):
            call("hello", payload)
    with pytest.raises(InvalidRequest):  # a web GET sends it as query parameters
        client.invoke_web_action("hello", payload, method="GET")
    assert recorder.requests == []
    assert guard.current_state == pybreaker.STATE_CLOSED and guard.fail_counter == 0


def test_a_timeout_under_a_callers_short_deadline_is_not_counted(make_client, emu):
    guard = pybreaker.CircuitBreaker(fail_max=1)
    client = make_client(breaker=guard, get_retries=0, connect_timeout=1.0)
    emu.fault(path="/actions/hello$", delay_ms=500, times=1)
    with pytest.raises(RequestTimedOut):
        client.invoke_action("hello", read_timeout=0.2)
    assert guard.fail_counter == 0
    emu.fault(path="/actions/hello$", delay_ms=1500, times=1)
    with pytest.raises(RequestTimedOut):
        client.invoke_action("hello", read_timeout=1.2)
    assert guard.current_state == pybreaker.STATE_OPEN


def test_an_unguarded_probe_is_neither_refused_nor_counted(make_client, emu):
    guard = pybreaker.CircuitBreaker(fail_max=1)
    client = make_client(breaker=guard, get_retries=0)
    emu.fault(method="GET", path="/api/v1$", status=503, times=1)
    with pytest.raises(Exception):  # noqa: B017 - Unavailable; only the count matters here
        client.info(guarded=False)
    assert guard.fail_counter == 0
    guard.open()
    assert isinstance(client.info(guarded=False), dict)  # open, yet the probe went out
