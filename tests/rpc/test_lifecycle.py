"""The gRPC process under load and at its edges: 64 calls at once, graceful shutdown, demoted
blocking calls, a database that is down, a busy port."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from owaction.rpc import openwhisk_action_pb2 as pb
from tests.procs import ROOT, Proc, free_port
from tests.rpc.conftest import module_env, rpc_error
from tests.rpc.test_rpcs import wait_for

pytestmark = pytest.mark.postgres


def test_64_calls_in_flight_at_once_all_succeed(grpc_module):
    request = pb.InvokeActionRequest(action_name="sleep", payload='{"ms": 1000}', blocking=True)
    metadata = grpc_module.auth()

    futures = [grpc_module.stub.InvokeAction.future(request, metadata=metadata, timeout=60)
               for _ in range(64)]
    replies = [f.result() for f in futures]

    assert all(r.success and r.status == "success" for r in replies)
    assert all(json.loads(r.result) == {"slept_ms": 1000} for r in replies)
    assert len({r.activation_id for r in replies}) == 64
    assert len({r.execution_id for r in replies}) == 64


def test_sigterm_lets_in_flight_calls_finish_and_refuses_new_ones(start_grpc):
    module = start_grpc(GRPC_GRACE="30")
    metadata = module.auth()
    request = pb.InvokeActionRequest(action_name="sleep", payload='{"ms": 2500}', blocking=True)
    futures = [module.stub.InvokeAction.future(request, metadata=metadata, timeout=60)
               for _ in range(10)]

    def all_started():
        page = module.call("ListExecutions", pb.ListExecutionsRequest(
            action_name="sleep", status="pending", limit=50), timeout=5)
        return len(page.executions) == 10

    assert wait_for(all_started, timeout=20), "the 10 calls never reached the server"
    module.proc.signal(signal.SIGTERM)

    replies = [f.result() for f in futures]
    assert all(r.success and json.loads(r.result) == {"slept_ms": 2500} for r in replies)
    with pytest.raises(grpc.RpcError) as caught:
        module.stub.ListActions(pb.ListActionsRequest(), metadata=metadata, timeout=5)
    assert rpc_error(caught)[0] == grpc.StatusCode.UNAVAILABLE
    assert module.proc.popen.wait(30) == 0
    assert "grpc_stop" in module.proc.output()


def test_sigint_stops_an_idle_server_with_exit_code_0(start_grpc):
    module = start_grpc()

    module.proc.signal(signal.SIGINT)

    assert module.proc.popen.wait(30) == 0


def test_a_demoted_blocking_call_answers_ok_with_status_accepted(start_emulator, start_grpc):
    emulator = start_emulator("--max-blocking-wait-ms", "1000")
    module = start_grpc(emulator_=emulator, OPENWHISK_BLOCKING_WAIT_MS="1000",
                        MAX_ACTION_TIMEOUT="1000", REQUEST_TIMEOUT="5")

    reply = module.call("InvokeAction", pb.InvokeActionRequest(
        action_name="sleep", payload='{"ms": 3000}', blocking=True))

    assert (reply.success, reply.status, reply.outcome) == (True, "accepted", "accepted")
    assert len(reply.activation_id) == 32
    assert reply.result == "" and reply.error == ""
    record = module.call("GetExecution", pb.GetExecutionRequest(
        execution_id=reply.execution_id)).execution
    assert record.activation_id == reply.activation_id


def test_database_down_answers_unavailable_and_health_not_serving(start_grpc):
    closed = free_port()  # nothing listens here
    module = start_grpc(database_url=f"postgresql://postgres@127.0.0.1:{closed}/none",
                        DB_TIMEOUT="1")

    with pytest.raises(grpc.RpcError) as caught:
        module.call("InvokeAction", pb.InvokeActionRequest(action_name="hello", blocking=True))
    code, _, trailing = rpc_error(caught)
    health = health_pb2_grpc.HealthStub(module.channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=10)

    assert code == grpc.StatusCode.UNAVAILABLE
    assert trailing["error-code"] == "database_unavailable"
    assert "retry-after" in trailing
    assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_metrics_port_serves_prometheus_text_with_grpc_invocations(start_grpc):
    port = free_port()
    module = start_grpc(GRPC_METRICS_PORT=str(port))
    module.call("InvokeAction", pb.InvokeActionRequest(action_name="hello", blocking=True))

    body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

    assert 'owaction_invocations_total{action="hello",outcome="succeeded",type="action"}' in body
    # The call is over, so nothing is in flight; the gauge exists for the gRPC door.
    assert 'owaction_in_flight_requests{door="grpc"} 0.0' in body


def test_a_busy_grpc_port_exits_non_zero_with_a_message(tmp_path, emulator, pg_url):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**module_env(tmp_path, emulator, pg_url), "GRPC_PORT": str(port),
               "GRPC_METRICS_PORT": "0"}
        proc = Proc([sys.executable, str(ROOT / "grpc_server.py")], env=env,
                    log_path=tmp_path / "busy.log")
        try:
            code = proc.popen.wait(30)
        finally:
            proc.stop()

    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.log_path.read_text()


def test_grace_period_bounds_the_wait_for_a_call_that_runs_too_long(start_grpc):
    module = start_grpc(GRPC_GRACE="1")
    future = module.stub.InvokeAction.future(pb.InvokeActionRequest(
        action_name="sleep", payload='{"ms": 8000}', blocking=True),
        metadata=module.auth(), timeout=60)
    time.sleep(1.0)

    signalled = time.monotonic()
    module.proc.signal(signal.SIGTERM)

    assert module.proc.popen.wait(20) == 0
    # The action still had about 7 s to run: the process did not wait for it.
    assert time.monotonic() - signalled < 6.5
    with pytest.raises(grpc.RpcError):
        future.result()
    assert "result=FORCED" in module.proc.log_path.read_text()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_serves_only_clients_that_speak_tls(tmp_path, start_grpc):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    module = start_grpc(GRPC_TLS_CERT=str(cert), GRPC_TLS_KEY=str(key))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())

    with grpc.secure_channel(module.target, credentials) as channel:
        from owaction.rpc import openwhisk_action_pb2_grpc as pb_grpc

        reply = pb_grpc.OpenWhiskActionServiceStub(channel).ListActions(
            pb.ListActionsRequest(limit=1), metadata=module.auth(), timeout=20)
    with pytest.raises(grpc.RpcError) as caught:
        module.call("ListActions", pb.ListActionsRequest(limit=1), timeout=5)

    assert len(reply.actions) == 1
    assert rpc_error(caught)[0] == grpc.StatusCode.UNAVAILABLE
