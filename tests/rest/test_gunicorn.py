"""End to end: gunicorn with gevent workers as a real process, against the emulator, on SQLite
(the embedded default) and on PostgreSQL. Every reply is validated against the server's own
/openapi.json (HttpApi)."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
import requests

from tests.conftest import API_KEY, TEST_SECRET
from tests.conftest import module_env as base_module_env
from tests.rest.conftest import rest_env
from tests.rest.helpers import HttpApi, make_token, router_token

INVOKE = "/api/v1/actions/invoke"


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def rest_db_url(request, tmp_path_factory):
    """The database the servers of this module use: each engine in turn."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path_factory.mktemp('rest-sqlite')}/owaction.sqlite"
    return request.getfixturevalue("rest_pg_url")


@pytest.fixture(scope="module")
def module_env(emulator, rest_db_url, tmp_path_factory) -> dict[str, str]:
    return rest_env(base_module_env(tmp_path_factory.mktemp("rest"), emulator, rest_db_url),
                    WEB_WORKERS="2")


@pytest.fixture(scope="module")
def server(start_gunicorn, module_env):
    return start_gunicorn(module_env)


@pytest.fixture
def api(server, emu) -> HttpApi:
    return server.api()


def table_rows(db_url: str, **where) -> list[dict]:
    """Rows read straight from the database, with a driver of the test's own."""
    sqlite = db_url.startswith("sqlite://")
    conn = (sqlite3.connect(db_url[len("sqlite://"):], timeout=5) if sqlite
            else psycopg2.connect(db_url, connect_timeout=3))
    try:
        cur = conn.cursor()
        mark = "?" if sqlite else "%s"
        clause = " AND ".join(f"{k} = {mark}" for k in where) or "1 = 1"
        columns = "execution_id, action_name, status, success, activation_id, error"
        sql = f"SELECT {columns} FROM openwhisk_action_executions WHERE {clause}"  # noqa: S608
        cur.execute(sql, tuple(where.values()))
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def row(db_url: str, execution_id: str) -> dict:
    (found,) = table_rows(db_url, execution_id=execution_id)
    return found


# --- the happy paths of every endpoint ------------------------------------------------------------


def test_every_endpoint_answers_over_real_http(server, emu, rest_db_url):
    anonymous = server.api(token="")
    token = anonymous.post("/api/v1/auth/token", {"api_key": API_KEY}, token=None)
    assert token.status == 200
    api = server.api(token=token.body["token"])
    total_before = api.get("/api/v1/stats").body["stats"]["total"]

    hello = api.post(INVOKE, {"action_name": "hello", "payload": {"name": "Ada"}})
    assert hello.status == 200
    assert hello.body["success"] is True
    assert hello.body["result"] == {"message": "Hello Ada"}
    assert hello.body["status"] == "success"
    assert len(hello.body["activation_id"]) == 32
    assert hello.body["end_time"] >= hello.body["start_time"]
    assert row(rest_db_url, hello.body["execution_id"])["status"] == "succeeded"

    activation = api.get(f"/api/v1/activations/{hello.body['activation_id']}")
    assert activation.status == 200
    assert activation.body["activation_id"] == hello.body["activation_id"]
    assert activation.body["result"] == {"message": "Hello Ada"}
    assert activation.body["name"] == "hello"

    # Other tests create actions on the shared emulator, so page through all of them.
    names: set[str] = set()
    for skip in range(0, 2000, 200):
        listed = api.get(f"/api/v1/actions?limit=200&skip={skip}")
        assert listed.status == 200
        names |= {a["name"] for a in listed.body["actions"]}
        if len(listed.body["actions"]) < 200:
            break
    assert {"hello", "echo", "sleep", "fail"} <= names

    accepted = api.post("/api/v1/actions/invoke-async", {"action_name": "echo",
                                                         "payload": {"a": 1}})
    assert accepted.status == 202
    assert accepted.body["status"] == "accepted"
    assert len(accepted.body["activation_id"]) == 32
    assert row(rest_db_url, accepted.body["execution_id"])["status"] == "accepted"

    not_blocking = api.post(INVOKE, {"action_name": "echo", "blocking": False})
    assert not_blocking.status == 202

    sequence = api.post("/api/v1/sequences/invoke",
                        {"sequence_name": "hello-sequence", "payload": {"name": "Seq"}})
    assert sequence.status == 200
    assert sequence.body["result"] == {"message": "Hello Seq"}

    web = api.post("/api/v1/web-actions/invoke", {"action_name": "webhello", "extension": ".json",
                                                  "payload": {"name": "Web"}})
    assert web.status == 200
    assert web.body["status_code"] == 200
    assert "Web" in web.body["response"]

    fired = api.post("/api/v1/triggers/fire", {"trigger_name": "ping", "payload": {"x": 1}})
    assert fired.status == 202
    assert len(fired.body["activation_id"]) == 32
    lonely = api.post("/api/v1/triggers/fire", {"trigger_name": "lonely"})
    assert lonely.status == 200
    assert lonely.body["status"] == "no active rule"
    assert row(rest_db_url, lonely.body["execution_id"])["status"] == "succeeded"

    execution = api.get(f"/api/v1/executions/{hello.body['execution_id']}")
    assert execution.status == 200
    assert execution.body["status"] == "succeeded"
    assert execution.body["result"] == {"message": "Hello Ada"}
    assert execution.body["payload"] == {"name": "Ada"}

    page = api.get("/api/v1/executions?action_name=hello&status=succeeded&limit=1")
    assert page.status == 200
    assert [e["action_name"] for e in page.body["executions"]] == ["hello"]
    by_type = api.get("/api/v1/executions?action_type=trigger")
    assert {e["execution_id"] for e in by_type.body["executions"]} == {
        fired.body["execution_id"], lonely.body["execution_id"]}

    stats = api.get("/api/v1/stats")
    assert stats.status == 200
    assert stats.body["module"] == "openwhisk_action_module"
    assert stats.body["stats"]["total"] == total_before + 7  # the invocations above

    health = api.get("/health", token=None)
    assert health.status == 200
    assert health.body["status"] == "healthy"
    assert health.body["database"] == "connected"
    assert health.body["openwhisk"] == "reachable"
    text = requests.get(server.url + "/health", timeout=5).text
    assert "127.0.0.1" not in text and TEST_SECRET not in text and "postgres" not in text


def test_executions_page_with_a_cursor(api):
    ids = [api.post(INVOKE, {"action_name": "echo", "payload": {"i": i}}).body["execution_id"]
           for i in range(3)]
    first = api.get("/api/v1/executions?action_name=echo&limit=2")
    assert first.body["next_cursor"]
    second = api.get("/api/v1/executions", params={"action_name": "echo", "limit": 2,
                                                   "cursor": first.body["next_cursor"]})
    seen = [e["execution_id"] for e in first.body["executions"] + second.body["executions"]]
    assert len(seen) == 4 and len(set(seen)) == 4, "pages do not overlap"
    assert set(ids) <= set(seen), "the newest executions come first"


def test_stats_are_the_same_whichever_worker_answers(api):
    totals = {api.get("/api/v1/stats").body["stats"]["total"] for _ in range(12)}
    assert len(totals) == 1


# --- each status of the table ---------------------------------------------------------------------


def test_an_action_that_fails_gets_502_with_result_and_error(api, rest_db_url):
    reply = api.post(INVOKE, {"action_name": "fail"})
    assert reply.status == 502
    assert reply.body["success"] is False
    assert reply.body["status"] == "application error"
    assert "error" in reply.body["result"]
    assert reply.body["error"]["code"] == "action_failed"
    assert reply.body["error"]["message"]
    assert row(rest_db_url, reply.body["execution_id"])["status"] == "failed"


@pytest.mark.parametrize("path, body", [
    (INVOKE, {"action_name": "no-such-action"}),
    ("/api/v1/sequences/invoke", {"sequence_name": "no-such-sequence"}),
    ("/api/v1/triggers/fire", {"trigger_name": "no-such-trigger"}),
])
def test_an_unknown_entity_gets_404_and_a_final_row(api, rest_db_url, path, body):
    reply = api.post(path, body)
    assert reply.status == 404
    assert reply.body["error"]["code"] == "not_found"
    assert row(rest_db_url, reply.body["execution_id"])["status"] == "error"


def test_an_unknown_activation_or_execution_gets_404(api):
    assert api.get("/api/v1/activations/" + "ab" * 16).status == 404
    reply = api.get("/api/v1/executions/" + "cd" * 16)
    assert reply.status == 404
    assert reply.body["error"]["code"] == "not_found"


def test_openwhisk_unavailable_gets_503_with_retry_after(api, emu, rest_db_url):
    emu.fault(method="POST", path="/actions/hello", status=503, times=1)
    reply = api.post(INVOKE, {"action_name": "hello"})
    assert reply.status == 503
    assert reply.body["error"]["code"] == "unavailable"
    assert int(reply.headers["Retry-After"]) >= 1
    assert row(rest_db_url, reply.body["execution_id"])["status"] == "error"


def test_a_dropped_connection_gets_503_and_a_final_row(api, emu, rest_db_url):
    emu.fault(method="POST", path="/actions/hello", drop=True, times=1)
    reply = api.post(INVOKE, {"action_name": "hello"})
    assert reply.status == 503
    assert "may have run" in reply.body["error"]["message"]
    assert row(rest_db_url, reply.body["execution_id"])["status"] == "error"


def test_throttling_gets_429_passing_retry_after_on(api, emu, rest_db_url):
    emu.fault(method="POST", path="/actions/hello", status=429, times=1,
              headers={"Retry-After": "7"},
              body={"error": "Too many requests in the last minute (count: 60, allowed: 60).",
                    "code": "abc"})
    reply = api.post(INVOKE, {"action_name": "hello"})
    assert reply.status == 429
    assert reply.body["error"]["code"] == "throttled"
    assert reply.headers["Retry-After"] == "7"
    assert row(rest_db_url, reply.body["execution_id"])["status"] == "error"


@pytest.fixture(scope="module")
def short_wait(start_gunicorn, module_env, tmp_path_factory):
    """An emulator that demotes blocking calls after 1 s, and a server that knows it."""
    from tests.procs import Emulator

    emulator = Emulator(tmp_path_factory.mktemp("short-emulator"), "--max-blocking-wait-ms",
                        "1000")
    env = dict(module_env, OPENWHISK_API_HOST=emulator.url, OPENWHISK_BLOCKING_WAIT_MS="1000",
               MAX_ACTION_TIMEOUT="1000", REQUEST_TIMEOUT="3")
    yield emulator, start_gunicorn(env)
    emulator.stop()


def test_a_blocking_call_openwhisk_demotes_gets_202(short_wait, rest_db_url):
    _emulator, server = short_wait
    reply = server.api().post(INVOKE, {"action_name": "sleep", "payload": {"ms": 2500}})
    assert reply.status == 202
    assert reply.body["status"] == "accepted"
    assert len(reply.body["activation_id"]) == 32
    assert row(rest_db_url, reply.body["execution_id"])["status"] == "accepted"


def test_a_timeout_out_of_range_for_that_server_gets_400(short_wait, rest_db_url):
    _emulator, server = short_wait
    reply = server.api().post(INVOKE, {"action_name": "hello", "timeout": 1500})
    assert reply.status == 400
    assert "between 1 and 1000" in reply.body["error"]["message"]


def test_openwhisk_not_answering_in_time_gets_504(short_wait, rest_db_url):
    emulator, server = short_wait
    emulator.reset_faults()
    # A non-blocking call waits REQUEST_TIMEOUT (3 s); a blocking one would also allow for
    # OpenWhisk's blocking wait.
    emulator.fault(method="POST", path="/actions/hello", delay_ms=6000, times=1)
    try:
        reply = server.api().post("/api/v1/actions/invoke-async", {"action_name": "hello"})
    finally:
        emulator.reset_faults()
    assert reply.status == 504
    assert reply.body["error"]["code"] == "openwhisk_timeout"
    assert row(rest_db_url, reply.body["execution_id"])["status"] == "timeout"


def test_with_the_database_down_health_and_invoke_get_503(start_gunicorn, module_env, emu):
    from tests.procs import free_port

    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    server = start_gunicorn(dict(module_env, DATABASE_URL=dead))
    api = server.api()
    health = api.get("/health", token=None)
    assert health.status == 503
    assert health.body["status"] == "unhealthy"
    assert health.body["database"] == "unavailable"
    assert "127.0.0.1" not in str(health.body)
    reply = api.post(INVOKE, {"action_name": "hello"})
    assert reply.status == 503
    assert reply.body["error"]["code"] == "database_unavailable"


# --- auth over HTTP -------------------------------------------------------------------------------


def test_auth_cases_over_http(api):
    no_token = api.get("/api/v1/actions", token=None)
    assert no_token.status == 401
    assert no_token.headers["WWW-Authenticate"] == 'Bearer realm="owaction"'

    forged = api.get("/api/v1/actions", token=make_token(secret="z" * 64 + "forged"))
    assert forged.status == 401
    assert 'error="invalid_token"' in forged.headers["WWW-Authenticate"]

    now = int(time.time())
    expired = api.get("/api/v1/actions", token=make_token(iat=now - 7200, exp=now - 3600))
    assert expired.status == 401
    assert expired.body["error"]["code"] == "token_expired"

    read_only = api.post(INVOKE, {"action_name": "hello"}, token=make_token(permissions=["read"]))
    assert read_only.status == 403

    router = api.post(INVOKE, {"action_name": "hello"}, token=router_token())
    assert router.status == 200

    by_key = api.post("/api/v1/auth/token", {"api_key": API_KEY}, token=None)
    by_secret = api.post("/api/v1/auth/token", {"api_key": TEST_SECRET}, token=None)
    wrong = api.post("/api/v1/auth/token", {"api_key": API_KEY + "x"}, token=None)
    assert (by_key.status, by_secret.status, wrong.status) == (200, 200, 401)
    assert by_key.body["service"] == "svc-a"
    assert by_secret.body["service"] == "router_module"
    malformed = api.request("POST", "/api/v1/auth/token", token=None, data="{",
                            headers={"Content-Type": "application/json"})
    assert malformed.status == 400


# --- bad input: a 4xx that says why, and no row left pending --------------------------------------

BAD_BODIES = [
    ("malformed JSON", {"data": b'{"action_name": "hello"'}, 400, "not valid JSON"),
    ("wrong types", {"json": {"action_name": "hello", "blocking": "no"}}, 400,
     "blocking: Input should be a valid boolean"),
    ("missing fields", {"json": {"payload": {"a": 1}}}, 400, "action_name: Field required"),
    ("payload not an object", {"json": {"action_name": "echo", "payload": [1]}}, 400,
     "payload: Input should be an object"),
    ("payload over MAX_PAYLOAD_BYTES", {"json": {"action_name": "echo",
                                                 "payload": {"b": "x" * 6000}}}, 413, "4096"),
    ("body over the limit", {"data": b'{"action_name": "echo", "payload": {"b": "'
                             + b"x" * 300_000 + b'"}}'}, 413, "larger than"),
    ("name ../x", {"json": {"action_name": "../x"}}, 400, "illegal characters"),
    ("name a%2Fb", {"json": {"action_name": "a%2Fb"}}, 400, "illegal characters"),
    ("name of 300 characters", {"json": {"action_name": "n" * 300}}, 400, "longer than"),
    ("timeout out of range", {"json": {"action_name": "hello", "timeout": 60001}}, 400,
     "timeout must be between 1 and 60000 ms"),
]


@pytest.mark.parametrize("kw, status, needle", [b[1:] for b in BAD_BODIES],
                         ids=[b[0] for b in BAD_BODIES])
def test_bad_input_gets_a_clear_4xx_and_leaves_no_inconsistent_row(api, rest_db_url, kw, status,
                                                                   needle):
    before = {r["execution_id"] for r in table_rows(rest_db_url)}
    headers = {"Content-Type": "application/json"} if "data" in kw else {}
    reply = api.request("POST", INVOKE, headers=headers, **kw)
    assert reply.status == status
    assert needle in reply.body["error"]["message"]
    after = table_rows(rest_db_url)
    assert {r["execution_id"] for r in after} == before, "no execution was recorded"
    assert not [r for r in after if r["status"] == "pending"]


@pytest.mark.parametrize("path", ["/api/v1/activations/..%2Fx", "/api/v1/activations/a%2Fb",
                                  "/api/v1/activations/" + "a" * 300])
def test_bad_ids_in_the_path_get_400(api, path):
    reply = api.get(path)
    assert reply.status == 400
    assert "32 lowercase hex" in reply.body["error"]["message"]


# --- cooperative workers --------------------------------------------------------------------------


@pytest.mark.slow
def test_one_gevent_worker_holds_100_blocking_calls_at_once(start_gunicorn, module_env, emu):
    server = start_gunicorn(dict(module_env, WEB_WORKERS="1"))
    token = make_token()

    def call(i: int) -> int:
        r = requests.post(server.url + INVOKE, json={"action_name": "sleep",
                                                     "payload": {"ms": 1000}},
                          headers={"Authorization": f"Bearer {token}"}, timeout=120)
        return r.status_code

    server.api().post(INVOKE, {"action_name": "sleep", "payload": {"ms": 10}})  # warm up
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=100) as pool:
        statuses = list(pool.map(call, range(100)))
    elapsed = time.monotonic() - started
    assert statuses == [200] * 100
    # Serially this would take 100 s; a cooperative worker overlaps them.
    assert elapsed < 30, f"100 one-second calls took {elapsed:.1f} s"
