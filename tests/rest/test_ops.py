"""Operations over real gunicorn: metrics across workers, AAA log lines, no secrets in logs,
and the resilience answers (422 idempotency, 400 callback, 429 token endpoint)."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from owaction.logs import LINE_RE
from tests.conftest import API_KEY, TEST_SECRET, module_env
from tests.rest.conftest import rest_env

pytestmark = pytest.mark.postgres

SERVICE_KEY = "router-service-key-" + "q" * 24
CALLBACK_SECRET = "callback-secret-" + "w" * 24


@pytest.fixture(scope="module")
def ops_env(emulator, rest_pg_url, tmp_path_factory) -> dict[str, str]:
    return rest_env(module_env(tmp_path_factory.mktemp("ops"), emulator, rest_pg_url), **{
        "SERVICE_KEY": SERVICE_KEY,
        "CALLBACK_SECRET": CALLBACK_SECRET,
        "CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
        "WEB_WORKERS": "2",
        "RATE_LIMIT_TOKEN": "5/minute",
        # Shared by both workers, as in production; a fresh prefix per run.
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "MODULE_NAME": f"owaction-ops-{uuid.uuid4().hex[:8]}",
    })


@pytest.fixture(scope="module")
def server(start_gunicorn, ops_env):
    return start_gunicorn(ops_env)


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_every_workers_invocations(server, emu, ops_env):
    token = server.api().token
    before = requests.get(server.url + "/metrics", timeout=10).text
    start = metric(before, "owaction_invocations_total", action="sleep", outcome="succeeded")

    def call(_):
        # A connection per call, so the calls spread over both workers' accept loops.
        return requests.post(server.url + "/api/v1/actions/invoke", timeout=30,
                             headers={"Authorization": f"Bearer {token}"},
                             json={"action_name": "sleep", "payload": {"ms": 300}}).status_code

    with ThreadPoolExecutor(48) as pool:
        codes = list(pool.map(call, range(96)))
    assert set(codes) == {200}
    text = requests.get(server.url + "/metrics", timeout=10).text
    assert metric(text, "owaction_invocations_total", action="sleep",
                  outcome="succeeded") == start + 96
    assert metric(text, "owaction_invocation_duration_seconds_count", type="action") >= 96
    assert "owaction_breaker_state" in text and "owaction_db_sessions_in_use" in text
    metrics_dir = Path(ops_env["DATA_DIR"]) / f"prometheus-rest-{server.port}"
    writers = {re.search(r"_(\d+)\.db$", p.name).group(1)
               for p in metrics_dir.glob("counter_*.db")}
    assert len(writers) >= 2, f"only {writers} wrote counters"


def test_every_log_line_is_an_aaa_line_and_holds_no_secret(server, emu, ops_env):
    api = server.api()
    api.post("/api/v1/actions/invoke", {"action_name": "hello"})
    api.post("/api/v1/actions/invoke", {"action_name": "fail"})
    requests.post(server.url + "/api/v1/auth/token", json={"api_key": "wrong-key"}, timeout=10)
    requests.post(server.url + "/api/v1/execute", headers={"X-Service-Key": SERVICE_KEY},
                  json={"command": "#nope", "session_id": "sess_" + "1" * 32}, timeout=10)
    console = server.proc.output().splitlines()
    log_file = (Path(ops_env["DATA_DIR"]) / "log" / "rest.log").read_text().splitlines()
    assert console and log_file
    for line in console + log_file:
        assert LINE_RE.match(line), f"not an AAA line: {line!r}"
    everything = "\n".join(console + log_file)
    for secret in (TEST_SECRET, API_KEY, SERVICE_KEY, CALLBACK_SECRET,
                   emu.auth, emu.auth.split(":")[1]):
        assert secret not in everything
    events = {line.split(" ")[4] for line in console}
    assert {"AUDIT", "AUTH", "SYSTEM"} <= events


def test_reused_idempotency_key_with_another_request_gets_422(server, emu):
    api = server.api()
    key = uuid.uuid4().hex
    first = api.post("/api/v1/actions/invoke", {"action_name": "echo", "payload": {"a": 1}},
                     headers={"Idempotency-Key": key})
    again = api.post("/api/v1/actions/invoke", {"action_name": "echo", "payload": {"a": 1}},
                     headers={"Idempotency-Key": key})
    other = api.post("/api/v1/actions/invoke", {"action_name": "echo", "payload": {"a": 2}},
                     headers={"Idempotency-Key": key})
    assert first.status == again.status == 200
    assert again.body["execution_id"] == first.body["execution_id"]
    assert other.status == 422
    assert other.body["error"]["code"] == "idempotency_key_reused"


def test_callback_to_a_host_not_allowed_gets_400(server, emu):
    reply = server.api().post("/api/v1/actions/invoke", {"action_name": "echo"},
                              headers={"X-Callback-Url": "http://10.0.0.1/hook"})
    assert reply.status == 400 and "callback_url" in reply.body["error"]["message"]


def test_token_endpoint_is_rate_limited_per_address(server, emu):
    codes = []
    for _ in range(8):
        r = requests.post(server.url + "/api/v1/auth/token",
                          json={"api_key": "guess-" + uuid.uuid4().hex}, timeout=10)
        codes.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
            assert r.json()["error"]["code"] == "rate_limited"
    assert 429 in codes and set(codes) <= {401, 429}
