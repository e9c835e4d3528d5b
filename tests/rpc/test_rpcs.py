"""Every RPC through a real channel to `python grpc_server.py`, against the emulator and
PostgreSQL: replies as the original promised, and each failure's status code."""

from __future__ import annotations

import json
import time
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from owaction.rpc import openwhisk_action_pb2 as pb
from tests.rpc.conftest import LIMITED, rpc_error

pytestmark = pytest.mark.postgres

ACTIVATION_ID_LEN = 32


def wait_for(check, timeout: float = 15.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- the original RPCs -----------------------------------------------------------------------


def test_invoke_action_blocking_returns_the_result_timing_and_a_recorded_execution(grpc_module):
    reply = grpc_module.call("InvokeAction", pb.InvokeActionRequest(
        action_name="hello", payload='{"name": "Ada"}', blocking=True))

    assert reply.success is True
    assert json.loads(reply.result) == {"message": "Hello Ada"}
    assert reply.status == "success"
    assert reply.outcome == "succeeded"
    assert reply.error == ""
    assert len(reply.activation_id) == ACTIVATION_ID_LEN
    assert reply.start_time > 0 and reply.end_time >= reply.start_time
    assert reply.duration >= 0
    record = grpc_module.call("GetExecution", pb.GetExecutionRequest(
        execution_id=reply.execution_id)).execution
    assert (record.status, record.success, record.has_success) == ("succeeded", True, True)
    assert (record.action_name, record.action_type) == ("hello", "action")
    assert (record.source, record.caller) == ("grpc", "router_module")
    assert record.activation_id == reply.activation_id
    assert json.loads(record.payload) == {"name": "Ada"}


def test_invoke_action_that_failed_answers_ok_with_success_false_and_openwhisk_status(
        grpc_module):
    reply = grpc_module.call("InvokeAction", pb.InvokeActionRequest(
        action_name="fail", blocking=True))

    assert reply.success is False
    assert reply.status == "application error"
    assert reply.outcome == "failed"
    assert reply.error == "something went wrong"
    assert json.loads(reply.result) == {"error": "something went wrong"}
    assert len(reply.activation_id) == ACTIVATION_ID_LEN


def test_invoke_action_non_blocking_answers_accepted_with_an_activation_id(grpc_module):
    reply = grpc_module.call("InvokeAction", pb.InvokeActionRequest(
        action_name="echo", payload='{"a": 1}', blocking=False))

    assert (reply.success, reply.status, reply.outcome) == (True, "accepted", "accepted")
    assert len(reply.activation_id) == ACTIVATION_ID_LEN
    assert reply.result == ""


def test_invoke_action_async_then_get_activation_returns_its_result_and_logs(grpc_module, emu):
    started = grpc_module.call("InvokeActionAsync", pb.InvokeActionAsyncRequest(
        action_name="echo", payload='{"k": "v"}'))
    assert (started.success, started.status, started.error) == (True, "accepted", "")
    assert len(started.activation_id) == ACTIVATION_ID_LEN
    assert started.execution_id

    def fetch():
        try:
            return grpc_module.call("GetActivation", pb.GetActivationRequest(
                activation_id=started.activation_id))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    activation = wait_for(fetch)
    assert activation is not None, "the activation never appeared"
    assert activation.activation_id == started.activation_id
    assert (activation.success, activation.status, activation.status_code) == (
        True, "success", 0)
    assert json.loads(activation.result) == {"k": "v"}
    assert activation.name == "echo"
    assert activation.end_time >= activation.start_time > 0


def test_invoke_sequence_waits_by_default_and_returns_the_last_result(grpc_module):
    reply = grpc_module.call("InvokeSequence", pb.InvokeSequenceRequest(
        sequence_name="hello-sequence", payload='{"name": "Seq"}'))

    assert reply.success is True
    assert json.loads(reply.result) == {"message": "Hello Seq"}
    assert reply.status == "success"
    assert len(reply.activation_id) == ACTIVATION_ID_LEN
    record = grpc_module.call("GetExecution", pb.GetExecutionRequest(
        execution_id=reply.execution_id)).execution
    assert (record.action_type, record.status) == ("sequence", "succeeded")


def test_invoke_web_action_returns_status_body_and_headers(grpc_module):
    reply = grpc_module.call("InvokeWebAction", pb.InvokeWebActionRequest(
        action_name="webhello", payload='{"name": "Web"}', method="POST", extension=".json"))

    assert reply.success is True
    assert reply.status_code == 200
    assert json.loads(reply.response) == {"message": "Hello Web"}
    headers = {k.lower(): v for k, v in reply.response_headers.items()}
    assert headers["content-type"].startswith("application/json")
    assert reply.execution_id


def test_fire_trigger_with_a_rule_is_accepted_and_without_one_says_so(grpc_module):
    fired = grpc_module.call("FireTrigger", pb.FireTriggerRequest(
        trigger_name="ping", payload='{"x": 1}'))
    lonely = grpc_module.call("FireTrigger", pb.FireTriggerRequest(trigger_name="lonely"))

    assert (fired.success, fired.status) == (True, "accepted")
    assert len(fired.activation_id) == ACTIVATION_ID_LEN
    assert (lonely.success, lonely.status, lonely.activation_id) == (True, "no active rule", "")


def test_list_actions_lists_the_example_set_and_honours_limit(grpc_module):
    everything = grpc_module.call("ListActions", pb.ListActionsRequest())
    two = grpc_module.call("ListActions", pb.ListActionsRequest(limit=2))

    names = {a.name for a in everything.actions}
    assert everything.success is True
    assert {"hello", "echo", "sleep", "fail", "webhello", "hello-sequence"} <= names
    assert all(a.namespace.startswith("guest") for a in everything.actions)
    assert len(two.actions) == 2


# --- the added RPCs --------------------------------------------------------------------------


def test_list_executions_filters_by_action_and_pages_with_a_cursor(grpc_module):
    for n in range(3):
        grpc_module.call("InvokeAction", pb.InvokeActionRequest(
            action_name="echo", payload=json.dumps({"n": n}), blocking=True))

    first = grpc_module.call("ListExecutions", pb.ListExecutionsRequest(
        action_name="echo", action_type="action", limit=2))
    second = grpc_module.call("ListExecutions", pb.ListExecutionsRequest(
        action_name="echo", action_type="action", limit=2, cursor=first.next_cursor))

    assert len(first.executions) == 2 and first.next_cursor
    assert all(e.action_name == "echo" for e in [*first.executions, *second.executions])
    ids = [e.execution_id for e in [*first.executions, *second.executions]]
    assert len(ids) == len(set(ids)) >= 3


def test_get_stats_reports_counts_of_recorded_executions(grpc_module):
    grpc_module.call("InvokeAction", pb.InvokeActionRequest(action_name="hello", blocking=True))

    reply = grpc_module.call("GetStats", pb.GetStatsRequest())

    stats = json.loads(reply.stats)
    assert reply.success is True
    assert reply.module == "openwhisk_action_module"
    assert reply.total_executions == stats["total"] >= 1
    assert reply.successful_executions == stats["by_status"]["succeeded"] >= 1
    assert reply.timestamp.endswith("Z")


def test_execute_command_answers_a_module_response(grpc_module):
    reply = grpc_module.call("ExecuteCommand", pb.ExecuteCommandRequest(
        command="#nosuchcommand", args="", user_id="u1", community_id="c1",
        session_id="sess_" + "0" * 32, message="#nosuchcommand"))

    assert reply.success is False
    assert reply.module_name == "openwhisk_action_module"
    assert reply.response_action == "chat"
    assert "#nosuchcommand" in reply.error_message
    assert json.loads(reply.response_data) == {}


# --- status codes ----------------------------------------------------------------------------

INVALID = [
    ("InvokeAction", pb.InvokeActionRequest(action_name="hello", payload="[1, 2]")),
    ("InvokeAction", pb.InvokeActionRequest(action_name="hello", payload="not json")),
    ("InvokeAction", pb.InvokeActionRequest(
        action_name="hello", payload='{"a":' * 20000 + "1" + "}" * 20000)),
    ("InvokeAction", pb.InvokeActionRequest(action_name="bad name!")),
    ("InvokeAction", pb.InvokeActionRequest(action_name="a" * 10000)),
    ("InvokeAction", pb.InvokeActionRequest(action_name="a/b/c")),
    ("InvokeAction", pb.InvokeActionRequest(action_name="")),
    ("InvokeAction", pb.InvokeActionRequest(action_name="hello", blocking=True, timeout=-5)),
    ("InvokeAction", pb.InvokeActionRequest(action_name="hello", blocking=True,
                                            timeout=2_000_000)),
    ("InvokeActionAsync", pb.InvokeActionAsyncRequest(action_name="hello", payload='"text"')),
    ("InvokeSequence", pb.InvokeSequenceRequest(sequence_name="", payload="{}")),
    ("InvokeWebAction", pb.InvokeWebActionRequest(action_name="webhello", method="BREW")),
    ("FireTrigger", pb.FireTriggerRequest(trigger_name="ping", payload="{")),
    ("GetActivation", pb.GetActivationRequest(activation_id="not-an-id")),
    ("ListActions", pb.ListActionsRequest(limit=-1)),
    ("ListActions", pb.ListActionsRequest(limit=100000)),
    ("ListActions", pb.ListActionsRequest(skip=-1)),
    ("ListActions", pb.ListActionsRequest(namespace="bad ns!")),
    ("ListExecutions", pb.ListExecutionsRequest(limit=-1)),
    ("ListExecutions", pb.ListExecutionsRequest(status="sleeping")),
    ("ListExecutions", pb.ListExecutionsRequest(since="yesterday")),
    ("GetExecution", pb.GetExecutionRequest(execution_id="x" * 500)),
]


@pytest.mark.parametrize(("rpc", "request_"), INVALID, ids=[
    "payload-array", "payload-not-json", "payload-deeply-nested", "name-illegal",
    "name-huge", "name-three-parts", "name-empty", "timeout-negative", "timeout-too-long",
    "async-payload-string", "sequence-name-empty", "web-method", "trigger-payload-broken",
    "activation-id", "limit-negative", "limit-huge", "skip-negative", "namespace-illegal",
    "executions-limit-negative", "executions-status", "executions-since", "execution-id-huge",
])
def test_bad_input_answers_invalid_argument(grpc_module, rpc, request_):
    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call(rpc, request_)

    code, details, trailing = rpc_error(caught)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details
    assert trailing["error-code"] in ("invalid_request", "payload_too_large")


def test_payload_over_the_limit_answers_invalid_argument(grpc_module):
    big = json.dumps({"blob": "x" * (grpc_module.settings.max_payload_bytes + 10)})

    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call("InvokeAction", pb.InvokeActionRequest(action_name="echo", payload=big))

    code, details, trailing = rpc_error(caught)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert trailing["error-code"] == "payload_too_large"


def _raw_invoke(grpc_module, body: bytes, metadata):
    call = grpc_module.channel.unary_unary(
        "/openwhisk_action.OpenWhiskActionService/InvokeAction",
        request_serializer=None, response_deserializer=None, _registered_method=False)
    return call(body, metadata=metadata, timeout=10)


# Field 2 (action_name), length-delimited, holding bytes that are not UTF-8.
INVALID_UTF8_REQUEST = b"\x12\x04\xff\xfe\xfd\xfc"


def test_a_string_field_with_invalid_utf8_answers_invalid_argument(grpc_module):
    with pytest.raises(grpc.RpcError) as caught:
        _raw_invoke(grpc_module, INVALID_UTF8_REQUEST, grpc_module.auth())

    code, details, trailing = rpc_error(caught)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert trailing["error-code"] == "malformed_request"


def test_an_undecodable_request_without_a_token_answers_unauthenticated(grpc_module):
    with pytest.raises(grpc.RpcError) as caught:
        _raw_invoke(grpc_module, INVALID_UTF8_REQUEST, ())

    assert rpc_error(caught)[0] == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(("rpc", "request_"), [
    ("InvokeAction", pb.InvokeActionRequest(action_name="nosuchaction", blocking=True)),
    ("InvokeSequence", pb.InvokeSequenceRequest(sequence_name="nosuchsequence")),
    ("FireTrigger", pb.FireTriggerRequest(trigger_name="nosuchtrigger")),
    ("GetActivation", pb.GetActivationRequest(activation_id="0" * 32)),
    ("GetExecution", pb.GetExecutionRequest(execution_id="nosuchexecution")),
], ids=["action", "sequence", "trigger", "activation", "execution"])
def test_what_does_not_exist_answers_not_found(grpc_module, rpc, request_):
    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call(rpc, request_)

    assert rpc_error(caught)[0] == grpc.StatusCode.NOT_FOUND


def test_throttled_call_answers_resource_exhausted_with_retry_after(grpc_module, emu):
    emu.fault(method="POST", path="/actions/hello$", status=429, headers={"Retry-After": "7"},
              body={"error": "Too many requests in the last minute (count: 9, allowed: 8).",
                    "code": "x"})

    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call("InvokeAction", pb.InvokeActionRequest(
            action_name="hello", blocking=True))

    code, _, trailing = rpc_error(caught)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailing["retry-after"] == "7"
    assert trailing["execution-id"]


def test_openwhisk_unavailable_answers_unavailable_with_retry_after(grpc_module, emu):
    emu.fault(method="POST", path="/actions/hello$", status=503, headers={"Retry-After": "3"})

    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call("InvokeAction", pb.InvokeActionRequest(
            action_name="hello", blocking=True))

    code, _, trailing = rpc_error(caught)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert trailing["retry-after"] == "3"


def test_a_dropped_openwhisk_connection_answers_unavailable(grpc_module, emu):
    emu.fault(method="POST", path="/actions/hello$", drop=True)

    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call("InvokeAction", pb.InvokeActionRequest(
            action_name="hello", blocking=True))

    assert rpc_error(caught)[0] == grpc.StatusCode.UNAVAILABLE


def test_a_blocking_call_longer_than_the_deadline_answers_accepted_within_it(grpc_module):
    started = time.monotonic()
    reply = grpc_module.call("InvokeAction", pb.InvokeActionRequest(
        action_name="sleep", payload='{"ms": 8000}', blocking=True), timeout=3)

    # OpenWhisk was asked to wait only as long as the caller's deadline allows, so it demoted
    # the call to 202 and the reply came back in time instead of DEADLINE_EXCEEDED.
    assert time.monotonic() - started < 8
    assert (reply.success, reply.status, reply.outcome) == (True, "accepted", "accepted")
    assert len(reply.activation_id) == ACTIVATION_ID_LEN


def test_openwhisk_slower_than_the_deadline_answers_deadline_exceeded_and_records_timeout(
        grpc_module, emu):
    emu.fault(method="POST", path="/actions/hello$", delay_ms=6000)

    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call("InvokeAction", pb.InvokeActionRequest(
            action_name="hello", payload='{"name": "Late"}', blocking=True), timeout=1.5)
    assert rpc_error(caught)[0] == grpc.StatusCode.DEADLINE_EXCEEDED

    # Unbounded, the module would wait out the 6 s delay and record "succeeded"; bounded by
    # the deadline, its read times out and the record says "timeout".
    def settled():
        page = grpc_module.call("ListExecutions", pb.ListExecutionsRequest(
            action_name="hello", limit=1))
        record = page.executions[0] if page.executions else None
        return record if record is not None and record.status != "pending" else None

    record = wait_for(settled, timeout=4)
    assert record is not None, "the execution stayed pending: the OpenWhisk call was unbounded"
    assert json.loads(record.payload) == {"name": "Late"}
    assert record.status == "timeout"


def test_every_reply_carries_the_request_id_as_trailing_metadata(grpc_module):
    given = f"req-{uuid.uuid4().hex[:12]}"
    reply, call = grpc_module.call_with_call("InvokeAction", pb.InvokeActionRequest(
        action_name="hello", blocking=True), metadata=(*grpc_module.auth(),
                                                       ("x-request-id", given)))
    assert reply.success is True
    assert dict(call.trailing_metadata())["x-request-id"] == given

    _, call = grpc_module.call_with_call("ListActions", pb.ListActionsRequest(limit=1))
    made = dict(call.trailing_metadata())["x-request-id"]
    assert len(made) == 32 and made != given

    # An error ends the call with the request id in its trailers too, beside the error's own.
    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call("InvokeAction", pb.InvokeActionRequest(
            action_name="nosuchaction", blocking=True),
            metadata=(*grpc_module.auth(), ("x-request-id", given)))
    assert rpc_error(caught)[0] == grpc.StatusCode.NOT_FOUND
    trailing = dict(caught.value.trailing_metadata())
    assert trailing["x-request-id"] == given
    assert trailing["error-code"] == "not_found"


def test_an_rpc_whose_deadline_already_passed_answers_deadline_exceeded(grpc_module):
    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call("InvokeAction", pb.InvokeActionRequest(
            action_name="hello", blocking=True), timeout=0.001)

    assert rpc_error(caught)[0] == grpc.StatusCode.DEADLINE_EXCEEDED


# --- authentication --------------------------------------------------------------------------


def _bearer(token: str):
    return (("authorization", f"Bearer {token}"),)


@pytest.mark.parametrize("kind", ["none", "not-bearer", "garbage", "expired", "unknown-service",
                                  "other-secret"])
def test_missing_or_bad_tokens_answer_unauthenticated(grpc_module, kind):
    import jwt

    now = int(time.time())
    metadata = {
        "none": (),
        "not-bearer": (("authorization", f"Basic {grpc_module.token()}"),),
        "garbage": _bearer("not.a.jwt"),
        "expired": _bearer(grpc_module.token(ttl=60, now=now - 7200)),
        "unknown-service": _bearer(grpc_module.token("stranger", ["read"])),
        "other-secret": _bearer(jwt.encode({"service": "router_module", "iat": now,
                                            "exp": now + 60}, "y" * 64, algorithm="HS256")),
    }[kind]

    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call("ListActions", pb.ListActionsRequest(), metadata=metadata or (("x", "y"),))

    code, details, trailing = rpc_error(caught)
    assert code == grpc.StatusCode.UNAUTHENTICATED, details
    assert trailing["error-code"] in ("unauthenticated", "token_missing", "token_invalid",
                                      "token_expired", "service_unknown")


def test_router_style_token_without_permissions_claim_is_accepted(grpc_module):
    import jwt

    now = int(time.time())
    token = jwt.encode({"service": "router_module", "iat": now, "exp": now + 3600},
                       grpc_module.settings.module_secret_key, algorithm="HS256")

    reply = grpc_module.call("ListActions", pb.ListActionsRequest(limit=1),
                             metadata=_bearer(token))

    assert len(reply.actions) == 1


@pytest.mark.parametrize(("permissions", "rpc", "request_"), [
    (["read"], "InvokeAction", pb.InvokeActionRequest(action_name="hello")),
    (["read"], "InvokeActionAsync", pb.InvokeActionAsyncRequest(action_name="hello")),
    (["read"], "InvokeSequence", pb.InvokeSequenceRequest(sequence_name="hello-sequence")),
    (["read"], "InvokeWebAction", pb.InvokeWebActionRequest(action_name="webhello")),
    (["read"], "FireTrigger", pb.FireTriggerRequest(trigger_name="ping")),
    (["read"], "ExecuteCommand", pb.ExecuteCommandRequest(command="#x")),
    (["execute_actions"], "GetActivation", pb.GetActivationRequest(activation_id="0" * 32)),
    (["execute_actions"], "ListActions", pb.ListActionsRequest()),
    (["execute_actions"], "GetExecution", pb.GetExecutionRequest(execution_id="x")),
    (["execute_actions"], "ListExecutions", pb.ListExecutionsRequest()),
    (["execute_actions"], "GetStats", pb.GetStatsRequest()),
])
def test_a_token_without_the_rpcs_permission_answers_permission_denied(
        grpc_module, permissions, rpc, request_):
    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call(rpc, request_, metadata=grpc_module.auth(LIMITED, permissions))

    code, details, _ = rpc_error(caught)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "permission" in details


def test_a_read_token_may_read(grpc_module):
    reply = grpc_module.call("GetStats", pb.GetStatsRequest(),
                             metadata=grpc_module.auth(LIMITED, ["read"]))

    assert reply.success is True


# --- health and reflection -------------------------------------------------------------------


def test_plain_health_client_sees_serving_without_a_token(grpc_module):
    health = health_pb2_grpc.HealthStub(grpc_module.channel)

    overall = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    ours = health.Check(health_pb2.HealthCheckRequest(
        service="openwhisk_action.OpenWhiskActionService"), timeout=5)

    assert overall.status == health_pb2.HealthCheckResponse.SERVING
    assert ours.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services_without_a_token(grpc_module):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    database = ProtoReflectionDescriptorDatabase(grpc_module.channel)

    assert set(database.get_services()) >= {
        "openwhisk_action.OpenWhiskActionService", "grpc.health.v1.Health",
    }
    method_names = {m.name for m in database.FindFileContainingSymbol(
        "openwhisk_action.OpenWhiskActionService").service[0].method}
    assert {"InvokeAction", "GetExecution", "ExecuteCommand"} <= method_names


def test_callback_url_to_a_host_not_allowed_is_invalid_argument(grpc_module):
    with pytest.raises(grpc.RpcError) as info:
        grpc_module.call("InvokeAction", pb.InvokeActionRequest(
            action_name="echo", payload="{}", blocking=True,
            callback_url="http://169.254.169.254/latest/meta-data"))
    code, details, _ = rpc_error(info)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "callback_url" in details


def test_idempotency_key_field_replays_the_first_reply(grpc_module):
    key = "grpc-" + uuid.uuid4().hex
    request = pb.InvokeActionRequest(action_name="echo", payload='{"k": 1}', blocking=True,
                                     idempotency_key=key)
    first = grpc_module.call("InvokeAction", request)
    again = grpc_module.call("InvokeAction", request)
    assert again.execution_id == first.execution_id and again.result == first.result
    with pytest.raises(grpc.RpcError) as info:
        grpc_module.call("InvokeAction", pb.InvokeActionRequest(
            action_name="echo", payload='{"k": 2}', blocking=True, idempotency_key=key))
    assert rpc_error(info)[0] == grpc.StatusCode.FAILED_PRECONDITION
