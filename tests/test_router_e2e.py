"""The router's #command flow end to end: gunicorn and the gRPC process, sharing PostgreSQL and
a commands file, against the emulator's example actions."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf.json_format import MessageToDict

from owaction.rpc import openwhisk_action_pb2 as pb
from tests.conftest import fresh_pg_database, module_env
from tests.rest.conftest import Gunicorn, rest_env
from tests.rpc.conftest import GrpcModule, rpc_error
from tests.test_resilience import runs_since

pytestmark = pytest.mark.postgres

SERVICE_KEY = "router-service-key-" + "e" * 24
COMMANDS = {"commands": {
    "#weather": {"action": "waddlebot/weather", "description": "Weather", "usage": "#weather x"},
    "#oops": {"action": "fail"},
    "#slow": {"action": "sleep", "timeout": 400},
    "#nap": {"action": "sleep", "timeout": 8000},
}}


@pytest.fixture(scope="module")
def stack(emulator, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("router")
    commands = tmp / "commands.json"
    commands.write_text(json.dumps(COMMANDS))
    with fresh_pg_database("owaction_router") as db_url:
        env = rest_env(module_env(tmp, emulator, db_url), COMMANDS_FILE=str(commands),
                       SERVICE_KEY=SERVICE_KEY, WEB_WORKERS="2", GRPC_METRICS_PORT="0")
        rest = Gunicorn(env, tmp)
        grpc_module = GrpcModule(tmp, env)
        try:
            yield rest, grpc_module
        finally:
            rest.stop()
            grpc_module.stop()


def new_session() -> str:
    return "sess_" + os.urandom(16).hex()


def body(command: str, args: str = "", session: str | None = None) -> dict:
    return {"command": command, "args": args, "user_id": "u1", "entity_id": "e1",
            "community_id": "42", "session_id": session or new_session(),
            "message": f"{command} {args}".strip()}


def via_rest(rest, command, args="", session=None) -> dict:
    # HttpApi checks the reply against the server's own /openapi.json.
    reply = rest.api().post("/api/v1/execute", body(command, args, session), token=None,
                            headers={"X-Service-Key": SERVICE_KEY})
    assert reply.status == 200, reply.body
    return reply.body


def via_grpc(grpc_module, command, args="", session=None) -> dict:
    reply = grpc_module.call("ExecuteCommand", pb.ExecuteCommandRequest(**body(command, args,
                                                                               session)))
    return MessageToDict(reply, preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


@pytest.mark.parametrize("door", ["rest", "grpc"])
def test_a_mapped_command_answers_in_chat(stack, emu, door):
    rest, grpc_module = stack
    reply = via_rest(rest, "#weather", "oslo") if door == "rest" else \
        via_grpc(grpc_module, "#weather", "oslo")
    assert reply["success"] is True
    assert reply["chat_message"] == "Weather for oslo: sunny"
    assert reply["response_action"] == "chat"


@pytest.mark.parametrize("door", ["rest", "grpc"])
@pytest.mark.parametrize(("command", "needle"), [
    ("#nope", "Unknown command #nope."),
    ("#oops", "failed"),
    ("#slow", "took too long"),
])
def test_unmapped_failing_and_slow_commands_get_a_readable_failure(stack, emu, door, command,
                                                                   needle):
    rest, grpc_module = stack
    reply = via_rest(rest, command) if door == "rest" else via_grpc(grpc_module, command)
    assert reply["success"] is False
    assert needle in reply["error_message"]


def test_a_retry_in_flight_through_the_other_door_runs_once_and_replies_the_same(stack, emu):
    rest, grpc_module = stack
    session = new_session()
    started_ms = int(time.time() * 1000)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(via_rest, rest, "#nap", "", session)
        time.sleep(0.3)  # the first is now running the one-second action
        second = pool.submit(via_grpc, grpc_module, "#nap", "", session)
        rest_reply, grpc_reply = first.result(timeout=60), second.result(timeout=60)
    assert rest_reply["success"] is True
    assert rest_reply["response_data"] == {"slept_ms": 1000}

    def same(value):  # proto3 shows an absent string as "" and int64 as text
        return "" if value in (None, {}) else str(value)

    for key in ("execution_id", "session_id", "success", "chat_message", "processing_time_ms",
                "timestamp", "error_message"):
        assert same(grpc_reply.get(key)) == same(rest_reply.get(key)), key
    time.sleep(1.0)
    runs = [a for a in emu.activations("sleep") if a["start"] >= started_ms]
    assert len(runs) == 1


@pytest.mark.parametrize("missing", [["command"], ["session_id"], ["command", "session_id"]])
def test_a_command_call_without_command_or_session_id_is_refused_naming_what_is_missing(
        stack, emu, missing):
    rest, grpc_module = stack
    sent = body("#weather", "oslo")
    for name in missing:
        del sent[name]
    since = int(time.time() * 1000)
    reply = rest.api().post("/api/v1/execute", sent, token=None,
                            headers={"X-Service-Key": SERVICE_KEY})
    assert reply.status == 400, reply.body
    named = [f["field"] for f in reply.body["error"]["details"]["fields"]]
    assert sorted(named) == sorted(missing)
    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call("ExecuteCommand", pb.ExecuteCommandRequest(**sent))
    status, details, _ = rpc_error(caught)
    assert status == grpc.StatusCode.INVALID_ARGUMENT
    assert all(name in details for name in missing), details
    time.sleep(0.3)
    assert runs_since(emu, "weather", since) == 0
