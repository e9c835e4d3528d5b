"""What the client puts on the wire: checked names, encoded paths, headers, query and timeouts,
asserted on a real server that records each request."""

from __future__ import annotations

import base64
import json
import logging

import pytest
import requests

from owaction.config import GUEST_AUTH_KEY
from owaction.openwhisk import ActionResult, InvalidName
from tests.procs import free_port

BAD_ACTION_NAMES = [
    "../x",
    "a%2Fb",
    "a/b/c/d",
    "x" * 300,
    "",
    "/x",
    "x/",
    " leading-space",
    "trailing-space ",
    "a?b",
    "a#b",
    "a\nb",
]


@pytest.mark.parametrize("name", BAD_ACTION_NAMES)
def test_bad_action_names_raise_invalid_name_before_any_request(make_client, recorder, name):
    client = make_client(api_host=recorder.url)
    for call in (
        lambda: client.invoke_action(name),
        lambda: client.invoke_action_async(name),
        lambda: client.get_action(name),
        lambda: client.invoke_web_action(name),
    ):
        with pytest.raises(InvalidName):
            call()
    assert recorder.requests == []


@pytest.mark.parametrize("name", ["../x", "a%2Fb", "a/b", "x" * 300, "", "a b "])
def test_bad_trigger_rule_and_package_names_never_reach_a_url(make_client, recorder, name):
    client = make_client(api_host=recorder.url)
    for call in (
        lambda: client.fire_trigger(name),
        lambda: client.get_trigger(name),
        lambda: client.get_rule(name),
        lambda: client.enable_rule(name),
        lambda: client.get_package(name),
        lambda: client.list_actions(package=name),
    ):
        with pytest.raises(InvalidName):
            call()
    assert recorder.requests == []


@pytest.mark.parametrize("namespace", ["..", "a/b", "%2e%2e", "n" * 300])
def test_bad_namespace_is_refused_before_any_request(make_client, recorder, namespace):
    client = make_client(api_host=recorder.url)
    with pytest.raises(InvalidName):
        client.invoke_action("hello", namespace=namespace)
    with pytest.raises(InvalidName):
        client.list_actions(namespace=namespace)
    assert recorder.requests == []


@pytest.mark.parametrize("activation_id", ["../../actions/x", "ABC", "0" * 31, "g" * 32])
def test_bad_activation_id_is_refused_before_any_request(make_client, recorder, activation_id):
    client = make_client(api_host=recorder.url)
    with pytest.raises(InvalidName):
        client.get_activation(activation_id)
    assert recorder.requests == []


def test_a_256_character_name_is_allowed_and_257_is_not(make_client, recorder):
    client = make_client(api_host=recorder.url)
    client.get_action("a" * 256)
    assert recorder.requests[0]["path"].startswith("/api/v1/namespaces/guest/actions/" + "a" * 256)
    with pytest.raises(InvalidName):
        client.get_action("a" * 257)


def test_each_path_segment_is_percent_encoded(make_client, recorder):
    client = make_client(api_host=recorder.url, namespace="my ns")
    client.get_action("my pkg/act&ion@x.y")
    client.get_trigger("t 1")
    path = recorder.requests[0]["path"].split("?")[0]
    assert path == "/api/v1/namespaces/my%20ns/actions/my%20pkg/act%26ion%40x.y"
    assert recorder.requests[1]["path"] == "/api/v1/namespaces/my%20ns/triggers/t%201"


def test_invoke_sends_basic_auth_json_body_and_query(make_client, recorder):
    recorder.body = {"greeting": "hi"}
    recorder.headers = {"x-openwhisk-activation-id": "a" * 32}
    client = make_client(api_host=recorder.url, blocking_wait_ms=4000)
    out = client.invoke_action("pkg/act", {"name": "Ada"}, result=True)
    assert out == ActionResult("a" * 32, {"greeting": "hi"}, success=True)
    sent = recorder.requests[0]
    assert sent["method"] == "POST"
    assert sent["path"] == (
        "/api/v1/namespaces/guest/actions/pkg/act?blocking=true&result=true&timeout=4000"
    )
    user, _, key = GUEST_AUTH_KEY.partition(":")
    assert sent["headers"]["Authorization"] == "Basic " + base64.b64encode(
        f"{user}:{key}".encode()).decode()
    assert sent["headers"]["Content-Type"] == "application/json"
    assert json.loads(sent["body"]) == {"name": "Ada"}


def test_non_blocking_invoke_sends_no_timeout_and_an_empty_object_body(make_client, recorder):
    recorder.status = 202
    recorder.body = {"activationId": "b" * 32}
    client = make_client(api_host=recorder.url)
    pending = client.invoke_action_async("hello")
    assert pending.activation_id == "b" * 32 and pending.demoted is False
    sent = recorder.requests[0]
    assert sent["path"] == "/api/v1/namespaces/guest/actions/hello?blocking=false&result=false"
    assert json.loads(sent["body"]) == {}


def test_request_id_and_traceparent_are_sent(make_client, recorder):
    recorder.headers = {"x-openwhisk-activation-id": "c" * 32}
    client = make_client(api_host=recorder.url)
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    client.invoke_action("hello", result=True, request_id="req-42",
                         headers={"traceparent": traceparent})
    headers = recorder.requests[0]["headers"]
    assert headers["X-Request-ID"] == "req-42"
    assert headers["traceparent"] == traceparent


def test_header_injection_is_refused_before_any_request(make_client, recorder):
    client = make_client(api_host=recorder.url)
    with pytest.raises(InvalidName):
        client.invoke_action("hello", request_id="a\r\nX-Evil: 1")
    with pytest.raises(InvalidName):
        client.invoke_action("hello", headers={"traceparent": "x\ny"})
    assert recorder.requests == []


def test_a_deadline_bounds_the_blocking_wait_asked_of_openwhisk(make_client, recorder):
    recorder.headers = {"x-openwhisk-activation-id": "d" * 32}
    client = make_client(api_host=recorder.url, blocking_wait_ms=60000)
    client.invoke_action("hello", result=True, read_timeout=2.0)
    client.invoke_action("hello", result=True, timeout_ms=1000, read_timeout=30.0)
    assert recorder.requests[0]["path"].endswith("timeout=1750")
    assert recorder.requests[1]["path"].endswith("timeout=1000")


def test_urls_with_a_different_wait_each_are_encoded_as_requests_encodes_them(make_client,
                                                                              recorder):
    # The part before the wait is remembered across calls; the whole must not change.
    recorder.headers = {"x-openwhisk-activation-id": "e" * 32}
    client = make_client(api_host=recorder.url, blocking_wait_ms=60000)
    for read_timeout in (2.0, 3.5, 2.0):
        client.invoke_action("pkg/a b", {"x": 1}, read_timeout=read_timeout)
    recorder.status, recorder.body = 202, {"activationId": "e" * 32}
    client.invoke_action_async("pkg/a b")
    expected = [requests.Request("POST", recorder.url + "/api/v1/namespaces/guest/actions/"
                                 "pkg/a%20b", params=params).prepare().path_url
                for params in ({"blocking": "true", "result": "false", "timeout": "1750"},
                               {"blocking": "true", "result": "false", "timeout": "3250"},
                               {"blocking": "true", "result": "false", "timeout": "1750"},
                               {"blocking": "false", "result": "false"})]
    assert [sent["path"] for sent in recorder.requests] == expected


def test_web_action_get_sends_payload_as_query_and_no_body(make_client, recorder):
    client = make_client(api_host=recorder.url)
    response = client.invoke_web_action("webhello", {"name": "Ada", "n": 2}, method="get",
                                        package="default", extension=".json")
    assert response.status_code == 200
    sent = recorder.requests[0]
    assert sent["method"] == "GET"
    assert sent["path"] == "/api/v1/web/guest/default/webhello.json?name=Ada&n=2"
    assert sent["body"] == b""


def test_web_action_refuses_unknown_method_extension_and_default_namespace(make_client,
                                                                            recorder):
    client = make_client(api_host=recorder.url)
    with pytest.raises(InvalidName):
        client.invoke_web_action("webhello", method="TRACE")
    with pytest.raises(InvalidName):
        client.invoke_web_action("webhello", extension=".exe")
    with pytest.raises(InvalidName):
        client.invoke_web_action("webhello", namespace="_")
    with pytest.raises(InvalidName):
        client.invoke_web_action("web.hello", extension="")
    assert recorder.requests == []


def test_insecure_tls_logs_one_warning(make_client, caplog):
    host = f"https://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.WARNING, logger="owaction.openwhisk"):
        make_client(api_host=host, verify=False)
        make_client(api_host=host, verify=False)
    warnings = [r for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert len(warnings) == 1
    assert host in warnings[0].getMessage()


def test_session_pool_is_sized_by_pool_size_and_never_blocks(make_client, recorder):
    recorder.body = []
    client = make_client(api_host=recorder.url, pool_size=37)
    adapter = client._session.get_adapter(recorder.url)
    assert adapter._pool_connections == 37
    assert adapter._pool_maxsize == 37
    assert adapter._pool_block is False
    client.list_triggers()
    pool = adapter.poolmanager.connection_from_url(recorder.url)
    assert pool.pool.maxsize == 37
    assert pool.block is False


def test_auth_key_without_colon_is_refused():
    from owaction.openwhisk import OpenWhiskClient

    with pytest.raises(ValueError, match="uuid:key"):
        OpenWhiskClient(api_host="http://127.0.0.1:1", auth_key="nocolon")
