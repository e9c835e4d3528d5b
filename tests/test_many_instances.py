"""Several complete module instances at once, as several hosts or pods would run them: each is
``owaction serve`` (REST, gRPC and the worker) in a process group of its own with its own
DATA_DIR, and all share one PostgreSQL database and one Redis. What one instance started,
another must never run, complete or call back a second time."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import requests
from google.protobuf.json_format import MessageToDict

from owaction.rpc import openwhisk_action_pb2 as pb
from owaction.rpc import openwhisk_action_pb2_grpc as pb_grpc
from owaction.store.records import Status
from tests.conftest import fresh_pg_database, module_env
from tests.procs import PYTHON, Proc, free_port, wait_for_http
from tests.rest.helpers import HttpApi, make_token, router_token
from tests.tcpproxy import TcpProxy
from tests.test_registration import Router
from tests.test_resilience import Receiver

pytestmark = pytest.mark.postgres

REDIS_URL = os.environ.get("OWACTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN = uuid.uuid4().hex[:8]  # Redis keys and service names of this run only
ROUTER_SERVICE = f"router-{RUN}"
SERVICE_KEY = "service-key-" + "m" * 24
CALLER_LIMIT = 6  # per calling service and minute, counted in Redis by every instance
SERVICES = {name: f"key-{name}-{RUN}-" + "k" * 16
            for name in ("idem", "limit", "kill", "lease0", "lease1", "lease2")}
COMMANDS = {"commands": {"#nap": {"action": "sleep", "timeout": 8000}}}


def redis_problem() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        return None
    except redis.RedisError as exc:
        return str(exc)


class Instance:
    """One module instance: ``owaction serve`` in its own process group and DATA_DIR."""

    def __init__(self, name: str, tmp, env: dict[str, str]):
        self.name = name
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.rest_port}"
        self.env = {**env, "REST_PORT": str(self.rest_port), "GRPC_PORT": str(self.grpc_port),
                    "DATA_DIR": str(tmp / name / "data"), "LOG_DIR": str(tmp / name / "log"),
                    "PUBLIC_REST_URL": self.url,
                    "PUBLIC_GRPC_ADDRESS": f"127.0.0.1:{self.grpc_port}"}
        self.proc = Proc([PYTHON, "-m", "owaction", "serve", "--no-migrate"], env=self.env,
                         log_path=tmp / f"{name}.log")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        self.stub = pb_grpc.OpenWhiskActionServiceStub(self.channel)
        self.api: HttpApi | None = None

    def wait_ready(self) -> Instance:
        wait_for_http(self.url + "/health", self.proc.popen, timeout=60)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.api = HttpApi(self.url)
        return self

    def kill(self) -> None:
        """Every process of the instance dies at once, as when its host is lost."""
        self.proc.kill()

    def stop(self) -> None:
        self.channel.close()
        self.proc.stop(timeout=30)


@pytest.fixture(scope="module")
def cluster(emulator, tmp_path_factory):
    """Three instances on one database and one Redis; the router is down while they start."""
    problem = redis_problem()
    if problem:
        pytest.skip(f"no Redis at {REDIS_URL}: {problem}")
    tmp = tmp_path_factory.mktemp("many")
    commands = tmp / "commands.json"
    commands.write_text(json.dumps(COMMANDS))
    router = Router(refuse=0)
    proxy = TcpProxy(("127.0.0.1", router.server.server_address[1]))
    with fresh_pg_database("owaction_many") as db_url:
        env = module_env(
            tmp, emulator, db_url, REDIS_URL=REDIS_URL, MODULE_NAME=f"owaction_many_{RUN}",
            API_KEYS=",".join(f"{s}={k}" for s, k in SERVICES.items()),
            ALLOWED_SERVICES=ROUTER_SERVICE, SERVICE_KEY=SERVICE_KEY,
            RATE_LIMIT_CALLER=f"{CALLER_LIMIT}/minute", COMMANDS_FILE=str(commands),
            ROUTER_URL=f"http://127.0.0.1:{proxy.port}", CALLBACK_ALLOWED_HOSTS="127.0.0.1",
            WEB_WORKERS="1", DB_POOL_SIZE="4", DB_TIMEOUT="5", WORKER_POLL_INTERVAL="0.3",
            PENDING_GRACE="3", WEB_GRACEFUL_TIMEOUT="3", GRPC_GRACE="3",
            GRPC_METRICS_PORT="0", WORKER_METRICS_PORT="0", BREAKER_FAIL_MAX="1000",
        )
        # As the Kubernetes Job does: migrate once, then the servers start without migrating.
        migrate = Proc([PYTHON, "-m", "owaction", "db", "migrate"], env=env,
                       log_path=tmp / "migrate.log")
        migrated = migrate.popen.wait(60)
        assert migrate.stop() == migrated == 0, migrate.output()
        instances = [Instance(name, tmp, env) for name in ("a", "b", "c")]
        # A fourth, started with the others (the boot is the slow part), for the test that
        # kills one; it does not register, so the registration count stays per instance.
        doomed = Instance("doomed", tmp, {**env, "ROUTER_URL": ""})
        everyone = [*instances, doomed]
        try:
            for instance in everyone:
                instance.wait_ready()
            proxy.start()  # the router is back
            yield {"instances": instances, "doomed": doomed, "router": router, "proxy": proxy}
        finally:
            for instance in everyone:  # all drain at once
                instance.proc.signal(signal.SIGTERM)
            for instance in everyone:
                instance.stop()
            proxy.stop()
            router.close()


def token(service: str) -> str:
    return make_token(service=service)


def since_ms() -> int:
    return int(time.time() * 1000)


def activations(emulator, name: str, started_ms: int) -> list[dict]:
    return [a for a in emulator.activations(name) if a["start"] >= started_ms]


def execute_body(session: str) -> dict:
    return {"command": "#nap", "args": "", "user_id": "u1", "entity_id": "e1",
            "community_id": "42", "session_id": session, "message": "#nap"}


def execute_via_rest(instance: Instance, session: str) -> dict:
    reply = instance.api.post("/api/v1/execute", execute_body(session), token=None,
                              headers={"X-Service-Key": SERVICE_KEY}, timeout=60)
    assert reply.status == 200, reply.body
    return reply.body


def execute_via_grpc(instance: Instance, session: str) -> dict:
    reply = instance.stub.ExecuteCommand(
        pb.ExecuteCommandRequest(**execute_body(session)), timeout=60,
        metadata=(("authorization", f"Bearer {router_token(ROUTER_SERVICE)}"),))
    return MessageToDict(reply, preserving_proto_field_name=True)


def wait_until(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def test_a_router_retry_sent_to_another_instance_runs_the_action_once(cluster, emu):
    a, b, c = cluster["instances"]
    session = "sess_" + os.urandom(16).hex()
    started = since_ms()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(execute_via_rest, a, session)
        time.sleep(0.3)  # a is now running the one-second action
        second = pool.submit(execute_via_grpc, b, session)
        replies = [first.result(timeout=60), second.result(timeout=60)]
    replies.append(execute_via_rest(c, session))  # a late retry, after it finished
    assert replies[0]["success"] is True and replies[0]["response_data"] == {"slept_ms": 1000}
    assert {r["execution_id"] for r in replies} == {replies[0]["execution_id"]}
    time.sleep(0.5)
    assert len(activations(emu, "sleep", started)) == 1


def test_an_idempotency_key_replays_on_every_instance(cluster, emu):
    key = f"idem-{uuid.uuid4()}"
    marker = uuid.uuid4().hex
    started = since_ms()
    replies = [instance.api.post("/api/v1/actions/invoke",
                                 {"action_name": "echo", "payload": {"marker": marker}},
                                 token=token("idem"), headers={"Idempotency-Key": key})
               for instance in cluster["instances"]]
    assert [r.status for r in replies] == [200, 200, 200]
    assert len({r.body["execution_id"] for r in replies}) == 1
    assert all(r.body["result"] == {"marker": marker} for r in replies)
    runs = [a for a in activations(emu, "echo", started)
            if marker in json.dumps(a.get("response", {}))]
    assert len(runs) == 1


def test_rate_limits_are_shared_by_every_instance(cluster, emu):
    instances = cluster["instances"]
    bearer = token("limit")

    def invoke(instance):
        return instance.api.post("/api/v1/actions/invoke", {"action_name": "hello"},
                                 token=bearer)

    # Each instance sees only a third of the budget, and still the budget is what runs out.
    statuses = [invoke(instances[i % 3]).status for i in range(CALLER_LIMIT)]
    assert statuses == [200] * CALLER_LIMIT
    for instance in instances:
        refused = invoke(instance)
        assert refused.status == 429, refused.body
        assert int(refused.headers["Retry-After"]) >= 1


def test_the_workers_of_all_instances_complete_and_call_back_each_execution_once(cluster, emu):
    instances = cluster["instances"]
    receiver = Receiver(refuse=0)
    try:
        ids = []
        for i in range(3 * CALLER_LIMIT):
            reply = instances[i % 3].api.post(
                "/api/v1/actions/invoke-async",
                {"action_name": "echo", "payload": {"i": i}, "callback_url": receiver.url},
                token=token(f"lease{i // CALLER_LIMIT}"))
            assert reply.status == 202, reply.body
            ids.append(reply.body["execution_id"])
            # Spread over about three of the workers' 0.3-s polls, at a step no multiple of
            # it: posted at once, all nine could sit in one poll's window and go to whichever
            # worker looks first (one of four CI runs on a quiet machine on 2026-12-04).
            time.sleep(0.11)
        assert wait_until(lambda: len(receiver.received) >= len(ids), 30), len(receiver.received)
        time.sleep(1.5)  # a second delivery, if any worker made one, would arrive by now
        delivered = [json.loads(body)["execution"]["execution_id"]
                     for _, body in receiver.received]
    finally:
        receiver.close()
    assert sorted(delivered) == sorted(ids)
    # Every worker running takes part, the fourth instance's too.
    workers = [*instances, cluster["doomed"]]
    logs = "".join(instance.proc.output() for instance in workers)
    for execution_id in ids:
        completions = re.findall(rf"action=complete_execution \S+ .*execution_id={execution_id}",
                                 logs)
        assert len(completions) == 1, (execution_id, completions)
    completing = [i for i in workers if "action=complete_execution" in i.proc.output()]
    assert len(completing) >= 2  # the work really was shared, not done by one worker
    for execution_id in ids:
        record = instances[0].api.get(f"/api/v1/executions/{execution_id}",
                                      token=token("idem")).body
        assert record["status"] == Status.SUCCEEDED and record["callback_url"] == receiver.url


def test_killing_an_instance_mid_call_leaves_every_row_final_after_the_others_run(cluster, emu):
    doomed, survivor = cluster["doomed"], cluster["instances"][0]
    bearer = token("kill")
    started = since_ms()

    def rows():
        page = survivor.api.get(f"/api/v1/executions?since={started // 1000}&limit=100",
                                token=token("idem")).body["executions"]
        return [r for r in page if r["caller"] == "kill"]

    def blocking():
        try:
            requests.post(doomed.url + "/api/v1/actions/invoke", timeout=30,
                          json={"action_name": "sleep", "payload": {"ms": 2500}},
                          headers={"Authorization": f"Bearer {bearer}"})
        except requests.RequestException:
            pass  # the instance died under it, as intended

    try:
        accepted = [doomed.api.post("/api/v1/actions/invoke-async",
                                    {"action_name": "sleep", "payload": {"ms": 1500}},
                                    token=bearer).body["execution_id"] for _ in range(3)]
        threads = [threading.Thread(target=blocking) for _ in range(3)]
        for thread in threads:
            thread.start()
        # All six are recorded, and the blocking three are waiting on OpenWhisk: kill it now.
        assert wait_until(lambda: len(rows()) == 6, 10), rows()
        doomed.kill()
        for thread in threads:
            thread.join(30)
    finally:
        doomed.stop()

    def all_final():
        found = rows()
        in_flight = {Status.PENDING, Status.ACCEPTED}
        return found if len(found) == 6 and all(r["status"] not in in_flight
                                                for r in found) else None

    final = wait_until(all_final, 30, interval=0.5)
    assert final, rows()
    by_id = {r["execution_id"]: r for r in final}
    # The non-blocking ones had their activation id: another instance's worker completed them.
    assert all(by_id[i]["status"] == Status.SUCCEEDED for i in accepted)
    # The blocking ones died with the process that waited on OpenWhisk: unknown, never re-run.
    blocking_rows = [r for i, r in by_id.items() if i not in accepted]
    assert [r["status"] for r in blocking_rows] == [Status.UNKNOWN] * 3
    assert len(activations(emu, "sleep", started)) == 6


def test_each_instance_registers_once_and_survives_the_router_restarting(cluster):
    instances, router, proxy = cluster["instances"], cluster["router"], cluster["proxy"]
    urls = {instance.url for instance in instances}

    def registered():
        return [body["rest_url"] for path, _, body in router.calls
                if path == "/api/v1/modules/register" and body["rest_url"] in urls]

    # The router was down while the instances started; each retried until it was back.
    assert wait_until(lambda: len(registered()) >= 3, 45), registered()
    proxy.stop()  # the router restarts
    time.sleep(0.5)
    proxy.start()
    time.sleep(1.5)
    assert sorted(registered()) == sorted(urls)  # once per instance, never once per process
    for instance in instances:
        assert requests.get(instance.url + "/health", timeout=5).status_code == 200
        assert instance.proc.popen.poll() is None
