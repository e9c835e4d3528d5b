"""REST and gRPC over one store answer the same stats, timestamps and execution lists."""

from __future__ import annotations

import json
import re

import grpc
import pytest

from owaction.auth import TokenVerifier
from owaction.rest import create_app
from owaction.rpc import openwhisk_action_pb2 as pb
from owaction.rpc import openwhisk_action_pb2_grpc as pb_grpc
from owaction.rpc.server import create_server
from owaction.service import CallContext
from tests.procs import free_port
from tests.rest.helpers import FlaskApi, router_token

TIMESTAMP = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
# Fields both doors show for an execution (gRPC writes JSON values as text, absent ones as "").
SHARED = ("execution_id", "namespace", "action_name", "action_type", "status", "activation_id",
          "error", "duration_ms", "status_code", "source", "caller", "request_id",
          "created_at", "completed_at", "updated_at", "attempts")


@pytest.fixture
def doors(make_service, tmp_path):
    """One service; the Flask app and an in-process gRPC server in front of it."""
    service = make_service(GRPC_PORT=str(free_port()), BIND_HOST="127.0.0.1",
                           GRPC_METRICS_PORT="0", LOG_DIR=str(tmp_path / "log"))
    rest = FlaskApi(create_app(service.settings, service=service), token=router_token())
    server, port = create_server(service.settings, service)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    token = TokenVerifier(service.settings).issue("router_module", None)[0]
    stub = pb_grpc.OpenWhiskActionServiceStub(channel)

    def call(rpc, request):
        return getattr(stub, rpc)(request, metadata=(("authorization", f"Bearer {token}"),),
                                  timeout=20)

    yield service, rest, call
    channel.close()
    server.stop(None).wait()


def _as_grpc(value, sent):
    """A REST value as protobuf carries it: an absent one is its type's zero value."""
    return type(sent)() if value is None else value


def test_one_projection_of_an_execution_for_rest_grpc_and_callbacks():
    from owaction.rest.schemas import Execution
    from owaction.store.records import PUBLIC_FIELDS

    assert set(Execution.model_fields) == set(PUBLIC_FIELDS)
    assert set(pb.Execution.DESCRIPTOR.fields_by_name) - {"has_success"} == set(PUBLIC_FIELDS)


def test_stats_timestamps_and_lists_are_the_same_through_both_doors(doors):
    service, rest, call = doors
    ctx = CallContext(source="rest", caller="svc")
    for _ in range(3):
        service.invoke_action(ctx, action_name="hello", payload={"name": "x"})
    service.invoke_action(ctx, action_name="fail", payload={})
    lost = service.store.create_pending(
        namespace="guest", action_name="hello", action_type="action", payload={},
        blocking=True, timeout=None, source="rest", caller="svc", request_id=None)
    service.store.complete(lost.execution_id, status="unknown", success=False,
                           error="the action may have run")

    stats = rest.get("/api/v1/stats")
    assert stats.status == 200
    reply = call("GetStats", pb.GetStatsRequest())
    figures = stats.body["stats"]
    assert figures["failed_executions"] == 2  # the failed action and the unknown one
    assert (reply.total_executions, reply.successful_executions, reply.failed_executions,
            reply.in_flight) == (figures["total_executions"], figures["successful_executions"],
                                 figures["failed_executions"], figures["in_flight"])
    assert json.loads(reply.stats) == figures
    assert (reply.module, reply.version) == (stats.body["module"], stats.body["version"])
    assert TIMESTAMP.match(reply.timestamp) and TIMESTAMP.match(stats.body["timestamp"])

    since = "2020-01-01T00:00:00Z"
    listed = rest.get(f"/api/v1/executions?limit=2&since={since}")
    page = call("ListExecutions", pb.ListExecutionsRequest(limit=2, since=since))
    assert [e["execution_id"] for e in listed.body["executions"]] == [
        e.execution_id for e in page.executions]
    assert listed.body["next_cursor"] == page.next_cursor
    for shown, sent in zip(listed.body["executions"], page.executions, strict=True):
        for name in SHARED:
            assert _as_grpc(shown[name], getattr(sent, name)) == getattr(sent, name), name
        assert shown["result"] == (json.loads(sent.result) if sent.result else None)

    # Without a limit, both doors return the same default page.
    everything = rest.get("/api/v1/executions")
    default = call("ListExecutions", pb.ListExecutionsRequest())
    assert [e["execution_id"] for e in everything.body["executions"]] == [
        e.execution_id for e in default.executions]
    assert len(default.executions) == 5

    # A bad instant is refused by both, by the same rule.
    assert rest.get("/api/v1/executions?since=yesterday").status == 400
    with pytest.raises(grpc.RpcError) as refused:
        call("ListExecutions", pb.ListExecutionsRequest(since="yesterday"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
