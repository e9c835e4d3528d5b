"""Text the store cannot hold (NUL, lone surrogates) and instants outside the calendar are the
caller's error on both doors: 400 or INVALID_ARGUMENT naming the field, nothing recorded.

Through gunicorn and the gRPC process, on SQLite and on PostgreSQL, since the drivers differ in
how they fail (SQLite refuses a NUL in any query, PostgreSQL in any string literal)."""

from __future__ import annotations

import json
import re

import grpc
import pytest
import requests

from owaction.rpc import openwhisk_action_pb2 as pb
from tests.conftest import fresh_pg_database, module_env
from tests.rest.conftest import Gunicorn, rest_env
from tests.rest.helpers import make_token
from tests.rpc.conftest import GrpcModule


class Doors:
    """gunicorn and the gRPC process on one database."""

    def __init__(self, tmp, emulator, database_url: str):
        env = rest_env(module_env(tmp, emulator, database_url), GRPC_GRACE="5",
                       CALLBACK_ALLOWED_HOSTS="127.0.0.1", MAX_ACTION_TIMEOUT="2000",
                       OPENWHISK_BLOCKING_WAIT_MS="2000")
        self.rest = Gunicorn(env, tmp)
        try:
            self.grpc = GrpcModule(tmp, env)
        except Exception:
            self.rest.stop()
            raise
        self.headers = {"Authorization": f"Bearer {make_token()}"}

    def get(self, path: str) -> requests.Response:
        return requests.get(self.rest.url + path, headers=self.headers, timeout=20)

    def post(self, path: str, body: str) -> requests.Response:
        return requests.post(self.rest.url + path, data=body.encode(), timeout=20,
                             headers={**self.headers, "Content-Type": "application/json"})

    def rpc_refusal(self, rpc: str, request) -> str:
        """The details of the INVALID_ARGUMENT ``rpc`` must answer."""
        with pytest.raises(grpc.RpcError) as caught:
            self.grpc.call(rpc, request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        return caught.value.details()

    def recorded(self) -> int:
        return self.get("/api/v1/stats").json()["stats"]["total"]

    def stop(self) -> None:
        self.grpc.stop()
        self.rest.stop()
        log = "".join(p.log_path.read_text(errors="replace") for p in (self.rest.proc,
                                                                          self.grpc.proc))
        assert "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                               marks=pytest.mark.postgres)])
def doors(request, tmp_path_factory, emulator):
    tmp = tmp_path_factory.mktemp(f"input-{request.param}")
    if request.param == "sqlite":
        started = Doors(tmp, emulator, f"sqlite://{tmp}/owaction.sqlite")
        yield started
        started.stop()
        return
    with fresh_pg_database("owaction_input") as url:
        started = Doors(tmp, emulator, url)
        yield started
        started.stop()


def refused(reply: requests.Response, needle: str) -> None:
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["error"]["code"] in ("invalid_request", "invalid_cursor"), body
    assert needle in body["error"]["message"], body


# --- NUL and lone surrogates ----------------------------------------------------------------------


def test_an_execution_id_with_nul_is_refused(doors):
    refused(doors.get("/api/v1/executions/a%00b"), "execution_id")
    assert "execution_id" in doors.rpc_refusal(
        "GetExecution", pb.GetExecutionRequest(execution_id="a\x00b"))


def test_a_router_field_with_nul_is_refused_and_nothing_runs(doors):
    before = doors.recorded()
    body = {"command": "#hello", "args": "", "session_id": "a\u0000b", "user_id": "u1"}
    refused(doors.post("/api/v1/execute", json.dumps(body)), "session_id")
    for field in ("session_id", "user_id", "entity_id", "community_id", "args", "message"):
        fields = {"command": "#hello", "session_id": "s-1", field: "x\x00y"}
        details = doors.rpc_refusal("ExecuteCommand", pb.ExecuteCommandRequest(**fields))
        assert field in details and "NUL" in details
    refused(doors.post("/api/v1/execute", json.dumps({"command": "#he\u0000llo",
                                                     "session_id": "s-2"})), "command")
    assert doors.recorded() == before


def test_an_action_name_filter_with_nul_is_refused(doors):
    refused(doors.get("/api/v1/executions?action_name=%00"), "action_name")
    refused(doors.get("/api/v1/executions?action_name=a%00b"), "action_name")
    assert "action_name" in doors.rpc_refusal(
        "ListExecutions", pb.ListExecutionsRequest(action_name="\x00"))


def test_a_payload_with_a_lone_surrogate_is_refused(doors):
    before = doors.recorded()
    # JSON allows the escape; no database can store the character.
    payload = '{"text": "\\ud800"}'
    details = doors.rpc_refusal("InvokeAction", pb.InvokeActionRequest(
        action_name="echo", payload=payload, blocking=True))
    assert "payload" in details
    reply = doors.post("/api/v1/actions/invoke", '{"action_name": "echo", "payload": '
                       + payload + "}")
    assert reply.status_code == 400, reply.text
    assert doors.recorded() == before


def test_a_payload_with_nul_is_stored_and_echoed_intact(doors):
    """NUL inside JSON is an escape, not a character of the stored text: it is fine."""
    reply = doors.post("/api/v1/actions/invoke",
                       '{"action_name": "echo", "payload": {"text": "a\\u0000b"}}')
    assert reply.status_code == 200, reply.text
    assert reply.json()["result"]["text"] == "a\x00b"
    stored = doors.get(f"/api/v1/executions/{reply.json()['execution_id']}").json()
    assert stored["payload"] == {"text": "a\x00b"} and stored["status"] == "succeeded"


# --- instants -------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("since", "0001-01-01T00:00:00+01:00"),
    ("until", "9999-12-31T23:59:59-01:00"),
    ("since", "2026-02-30T00:00:00Z"),
    ("until", "yesterday"),
    ("since", "1e10"),
])
def test_an_instant_outside_the_calendar_is_refused(doors, field, value):
    refused(doors.get(f"/api/v1/executions?{field}={requests.utils.quote(value, safe='')}"),
            field)
    assert field in doors.rpc_refusal("ListExecutions", pb.ListExecutionsRequest(
        **{field: value}))


def test_instants_at_the_edges_of_the_range_are_served(doors):
    doors.post("/api/v1/actions/invoke", '{"action_name": "hello"}')
    for query in ("since=0&until=99999999999", "since=0002-01-01T00:00:00%2B23:59",
                  "until=9998-12-31T23:59:59-23:59", "until=0"):
        reply = doors.get(f"/api/v1/executions?{query}")
        assert reply.status_code == 200, (query, reply.text)
        assert bool(reply.json()["executions"]) is not query.endswith("until=0"), query
    everything = doors.grpc.call("ListExecutions", pb.ListExecutionsRequest(
        since="0002-01-01T00:00:00+23:59", until="9998-12-31T23:59:59Z"))
    assert everything.executions


# --- the document states what the server enforces -------------------------------------------------


def _property(document: dict, model: str, name: str) -> dict:
    prop = document["components"]["schemas"][model]["properties"][name]
    return {**prop, **next((p for p in prop.get("anyOf", ()) if p.get("type") != "null"), {})}


def test_the_document_carries_this_servers_rules_and_the_server_keeps_them(doors):
    document = doors.get("/openapi.json").json()
    timeout = _property(document, "InvokeRequest", "timeout")
    assert (timeout["minimum"], timeout["maximum"]) == (0, 2000)
    callback = _property(document, "InvokeRequest", "callback_url")["pattern"]
    invoke = document["paths"]["/api/v1/actions/invoke"]["post"]
    header = next(p for p in invoke["parameters"] if p["name"] == "X-Callback-Url")
    assert header["schema"]["pattern"] == callback
    ok_url, other_url = "http://127.0.0.1:9/done", "http://example.com/done"
    assert re.fullmatch(callback, ok_url) and not re.fullmatch(callback, other_url)

    served = doors.post("/api/v1/actions/invoke", json.dumps(
        {"action_name": "hello", "timeout": 2000.0, "callback_url": ok_url}))
    assert served.status_code == 200, served.text
    for body, field in (({"timeout": 2001}, "timeout"), ({"timeout": 1.5}, "timeout"),
                        ({"callback_url": other_url}, "callback_url"),
                        ({"callback_url": "http://127.0.0.1\\@example.com/"}, "callback_url")):
        refused(doors.post("/api/v1/actions/invoke",
                           json.dumps({"action_name": "hello", **body})), field)

    listing = document["paths"]["/api/v1/executions"]["get"]["parameters"]
    cursor = next(p for p in listing if p["name"] == "cursor")["schema"]["pattern"]
    page = doors.get("/api/v1/executions?limit=1").json()
    assert re.fullmatch(cursor, page["next_cursor"])
    assert doors.get("/api/v1/executions?cursor=0-0").json()["executions"] == []
    refused(doors.get("/api/v1/executions?cursor=abc"), "cursor")

    activation = document["paths"]["/api/v1/activations/{activation_id}"]["get"]
    assert activation["parameters"][0]["schema"]["pattern"] == "^[0-9a-f]{32}$"
    refused(doors.get("/api/v1/activations/" + "A" * 32), "activation id")
