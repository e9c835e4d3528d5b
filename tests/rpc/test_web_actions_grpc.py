"""Web actions through the gRPC process: they see only what their caller sent, OpenWhisk's .http
is the default, and one caller's bad input never opens the breaker for the others."""

from __future__ import annotations

import json

import grpc
import pytest

from owaction.rpc import openwhisk_action_pb2 as pb
from tests.rpc.conftest import GrpcModule, module_env, rpc_error

pytestmark = pytest.mark.postgres

SECRET = "example-web-secret"  # websecret's require-whisk-auth in the example manifest


@pytest.fixture(scope="module")
def module(tmp_path_factory, emulator, rpc_pg_url):
    tmp = tmp_path_factory.mktemp("grpc-web")
    env = module_env(tmp, emulator, rpc_pg_url, BREAKER_FAIL_MAX="1",
                     WEB_ACTION_SECRETS="default/websecret=OW_TEST_WEBSECRET",
                     OW_TEST_WEBSECRET=SECRET, WEB_ACTION_KEY_ALLOWED="default/webkey")
    started = GrpcModule(tmp, env)
    yield started
    started.stop()


def web(module: GrpcModule, action: str, **fields) -> pb.InvokeWebActionResponse:
    return module.call("InvokeWebAction", pb.InvokeWebActionRequest(action_name=action, **fields))


def seen_headers(module: GrpcModule, action: str = "webheaders", **fields) -> dict:
    reply = web(module, action, **fields)
    assert reply.status_code == 200, reply.response
    return json.loads(reply.response)["headers"]


def test_the_action_sees_its_callers_headers_and_no_credential(module, emu):
    headers = seen_headers(module, headers={"x-from-caller": "one", "cookie": "mine=1"})
    assert headers["x-from-caller"] == "one" and headers["cookie"] == "mine=1"
    assert "authorization" not in headers


def test_a_cookie_one_caller_is_set_never_reaches_the_next(module, emu):
    first = web(module, "webcookie", payload='{"value": "alice"}')
    assert "session=alice" in first.response_headers["Set-Cookie"]
    second = web(module, "webcookie", payload='{"value": "bob"}')
    assert json.loads(second.response)["received"] is None
    assert "cookie" not in seen_headers(module)


def test_status_headers_and_body_are_the_actions_by_default(module, emu):
    reply = web(module, "webstatus", payload='{"status": 201}')
    assert (reply.success, reply.status_code) == (True, 201)
    assert reply.response_headers["X-Example"] == "yes"
    assert json.loads(reply.response) == {"created": True, "status": 201}
    rendered = web(module, "webstatus", extension=".json")
    assert json.loads(rendered.response)["statusCode"] == 201


def test_require_whisk_auth_gets_the_configured_secret_or_the_allowed_key(module, emu):
    assert seen_headers(module, "websecret")["x-require-whisk-auth"] == SECRET
    assert seen_headers(module, "webkey")["authorization"].startswith("Basic ")


@pytest.mark.parametrize("name", ["host", "transfer-encoding", "connection", "te"])
def test_hop_by_hop_headers_are_invalid_argument_naming_them(module, emu, name):
    with pytest.raises(grpc.RpcError) as info:
        web(module, "webheaders", headers={name: "x"})
    code, details, _ = rpc_error(info)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and name in details


def test_a_web_action_that_does_not_exist_is_not_found(module, emu):
    with pytest.raises(grpc.RpcError) as info:
        web(module, "no-such-web-action")
    assert rpc_error(info)[0] == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("rpc, request_", [
    ("InvokeAction", pb.InvokeActionRequest(action_name="echo", payload='{"x": NaN}',
                                            blocking=True)),
    ("InvokeAction", pb.InvokeActionRequest(action_name="echo", payload='{"x": 1e400}',
                                            blocking=True)),
    ("InvokeWebAction", pb.InvokeWebActionRequest(action_name="webheaders",
                                                  payload='{"x": -Infinity}')),
    ("FireTrigger", pb.FireTriggerRequest(trigger_name="ping", payload='{"x": [Infinity]}')),
])
def test_a_payload_json_cannot_carry_is_invalid_argument_and_never_opens_the_breaker(
        module, emu, rpc, request_):
    for _ in range(3):  # BREAKER_FAIL_MAX is 1 in this process
        with pytest.raises(grpc.RpcError) as info:
            module.call(rpc, request_)
        assert rpc_error(info)[0] == grpc.StatusCode.INVALID_ARGUMENT
    reply = module.call("InvokeAction", pb.InvokeActionRequest(action_name="hello",
                                                               blocking=True))
    assert reply.success is True
