"""Signed inbound webhooks end to end: gunicorn (gevent workers) as a real process against the
emulator, on SQLite and on PostgreSQL. Signatures here are computed from the senders' documented
formats, independently of the module's own signing code."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import module_env
from tests.rest.conftest import rest_env
from tests.rest.helpers import Reply
from tests.test_cli import run as run_cli

TWITCH_SECRET = "tw-" + secrets.token_hex(20)
GITHUB_SECRET = "gh-" + secrets.token_hex(20)
SHOP_SECRET = "shop-" + secrets.token_hex(20)
SECRETS = {"TEST_TWITCH_SECRET": TWITCH_SECRET, "TEST_GITHUB_SECRET": GITHUB_SECRET,
           "TEST_SHOP_SECRET": SHOP_SECRET}

HOOKS = """
webhooks:
  twitch:
    verify: twitch
    secret_env: TEST_TWITCH_SECRET
    fire_trigger: ping
    payload:
      user: event.user_login
  github:
    verify: github
    secret_env: TEST_GITHUB_SECRET
    invoke_action: echo
  shop:
    verify: hmac
    secret_env: TEST_SHOP_SECRET
    signature_header: X-Shop-Signature
    prefix: "sha256="
    timestamp_header: X-Shop-Timestamp
    id_header: X-Shop-Delivery
    web_action: webhello
    payload:
      name: customer.name
"""


@pytest.fixture(scope="module", params=["sqlite",
                                        pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request, start_gunicorn, emulator, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webhooks")
    hooks = tmp / "webhooks.yaml"
    hooks.write_text(HOOKS)
    url = (f"sqlite://{tmp}/owaction.sqlite" if request.param == "sqlite"
           else request.getfixturevalue("rest_pg_url"))
    env = rest_env(module_env(tmp, emulator, url), WEB_WORKERS="2",
                   WEBHOOKS_FILE=str(hooks), **SECRETS)
    server = start_gunicorn(env)
    server.env = env
    return server


@pytest.fixture
def api(server, emu):
    return server.api()


def post(server, api, hook: str, body: bytes, headers: dict) -> requests.Response:
    """A delivery as a sender makes it; a JSON reply is checked against /openapi.json."""
    r = requests.post(f"{server.url}/api/v1/webhooks/{hook}", data=body, headers=headers,
                      timeout=30)
    if r.headers.get("Content-Type", "").startswith("application/json"):
        api.check("POST", f"/api/v1/webhooks/{hook}", Reply(r.status_code, r.headers, r.json()))
    return r


def twitch(body: dict, *, kind: str = "notification", message_id: str | None = None,
           sent: dt.datetime | None = None, secret: str = TWITCH_SECRET) -> tuple[bytes, dict]:
    raw = json.dumps(body).encode()
    message_id = message_id or str(uuid.uuid4())
    # Twitch writes nanoseconds.
    stamp = (sent or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    signature = hmac.new(secret.encode(), message_id.encode() + stamp.encode() + raw,
                         hashlib.sha256).hexdigest()
    return raw, {"Twitch-Eventsub-Message-Id": message_id,
                 "Twitch-Eventsub-Message-Timestamp": stamp,
                 "Twitch-Eventsub-Message-Signature": f"sha256={signature}",
                 "Twitch-Eventsub-Message-Type": kind,
                 "Twitch-Eventsub-Message-Retry": "0",
                 "Twitch-Eventsub-Subscription-Type": "channel.follow",
                 "Twitch-Eventsub-Subscription-Version": "2",
                 "Content-Type": "application/json"}


def github(event: str, body: dict, *, delivery: str | None = None) -> tuple[bytes, dict]:
    raw = json.dumps(body).encode()
    signature = hmac.new(GITHUB_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
                 "X-GitHub-Hook-ID": "42", "X-Hub-Signature-256": f"sha256={signature}",
                 "User-Agent": "GitHub-Hookshot/test", "Content-Type": "application/json"}


def shop(body: dict, *, at: float | None = None) -> tuple[bytes, dict]:
    raw = json.dumps(body).encode()
    stamp = str(int(at or time.time()))
    signature = hmac.new(SHOP_SECRET.encode(), stamp.encode() + b"." + raw,
                         hashlib.sha256).hexdigest()
    return raw, {"X-Shop-Signature": f"sha256={signature}", "X-Shop-Timestamp": stamp,
                 "X-Shop-Delivery": uuid.uuid4().hex, "Content-Type": "application/json"}


def executions(api, hook: str, request_id: str) -> list[dict]:
    reply = api.get("/api/v1/executions", params={"action_name": hook,
                                                  "action_type": "webhook", "limit": 500})
    assert reply.status == 200
    return [e for e in reply.body["executions"] if e["request_id"] == request_id]


def log_lines(server, *needles: str, wait: float = 5.0) -> list[str]:
    deadline = time.monotonic() + wait
    while True:
        lines = [line for line in server.proc.log_path.read_text(errors="replace").splitlines()
                 if all(n in line for n in needles)]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def echo_runs(emu, delivery_id: str) -> list[dict]:
    """Activations of the emulator's `echo` whose input came from this delivery."""
    found = emu.api("GET", "/namespaces/_/activations",
                    params={"name": "echo", "limit": 200, "docs": "true"}).json()
    return [a for a in found
            if ((a.get("response") or {}).get("result") or {}).get("webhook", {})
            .get("delivery_id") == delivery_id]


def wait_for(probe, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


# --- Twitch EventSub ------------------------------------------------------------------------------


def test_twitch_challenge_is_answered_as_text_and_recorded(server, api):
    challenge = "pogchamp-kappa-" + uuid.uuid4().hex
    body, headers = twitch({"challenge": challenge,
                            "subscription": {"id": "sub-1", "status":
                                             "webhook_callback_verification_pending"}},
                           kind="webhook_callback_verification")
    r = post(server, api, "twitch", body, headers)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text == challenge
    message_id = headers["Twitch-Eventsub-Message-Id"]
    (row,) = executions(api, "twitch", message_id)
    assert row["status"] == "succeeded" and row["source"] == "webhook"
    assert row["caller"] == "webhook:twitch" and row["idempotency_key"] == message_id
    assert row["result"]["kind"] == "challenge"
    assert log_lines(server, "AUDIT", "action=webhook", "result=CHALLENGE",
                     f"delivery_id={message_id}")
    assert log_lines(server, "AUTH", "action=webhook_verify", "result=SUCCESS",
                     f"delivery_id={message_id}")


def test_twitch_notification_fires_the_trigger_whose_rule_runs_echo_once(server, api, emu):
    body, headers = twitch({"subscription": {"type": "channel.follow"},
                            "event": {"user_login": "ada", "broadcaster_user_id": "1"}})
    message_id = headers["Twitch-Eventsub-Message-Id"]
    r = post(server, api, "twitch", body, headers)
    assert r.status_code == 202, r.text
    ack = r.json()
    assert ack["status"] == "accepted" and ack["duplicate"] is False
    assert ack["delivery_id"] == message_id and len(ack["activation_id"]) == 32
    runs = wait_for(lambda: echo_runs(emu, message_id))
    assert len(runs) == 1
    result = runs[0]["response"]["result"]
    assert result["user"] == "ada"
    assert result["webhook"] == {"hook": "twitch", "source": "twitch",
                                 "event": "channel.follow", "delivery_id": message_id}

    # Twitch retries with the same message id: acknowledged, nothing runs again.
    again = post(server, api, "twitch", body, headers)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["execution_id"] == ack["execution_id"]
    time.sleep(1.0)
    assert len(echo_runs(emu, message_id)) == 1
    (row,) = executions(api, "twitch", message_id)
    assert row["execution_id"] == ack["execution_id"]
    assert row["action_type"] == "webhook" and row["action_name"] == "twitch"
    assert row["activation_id"] == ack["activation_id"]
    assert row["payload"]["user"] == "ada"
    assert log_lines(server, "AUDIT", "action=webhook", "result=ACCEPTED",
                     f"delivery_id={message_id}", "target=trigger:ping")
    assert log_lines(server, "AUDIT", "action=webhook", "result=DUPLICATE",
                     f"delivery_id={message_id}")


def test_concurrent_copies_of_one_delivery_run_it_once(server, api, emu):
    body, headers = twitch({"event": {"user_login": "grace"}})
    message_id = headers["Twitch-Eventsub-Message-Id"]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: post(server, api, "twitch", body, headers), range(8)))
    assert all(r.status_code in (200, 202) for r in replies), [r.text for r in replies]
    assert sum(not r.json()["duplicate"] for r in replies) == 1
    assert len({r.json()["execution_id"] for r in replies}) == 1
    assert len(wait_for(lambda: echo_runs(emu, message_id))) == 1
    time.sleep(1.0)
    assert len(echo_runs(emu, message_id)) == 1
    assert len(executions(api, "twitch", message_id)) == 1


def test_a_bad_signature_is_refused_and_logged_without_secret_or_body(server, api, emu):
    marker = "body-marker-" + uuid.uuid4().hex
    body, headers = twitch({"event": {"user_login": marker}}, secret="not-the-secret")
    message_id = headers["Twitch-Eventsub-Message-Id"]
    r = post(server, api, "twitch", body, headers)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "signature_invalid"
    assert executions(api, "twitch", message_id) == []
    assert echo_runs(emu, message_id) == []
    assert log_lines(server, "AUTH", "action=webhook_verify", "result=DENIED", "hook=twitch",
                     "reason=signature_invalid")
    text = server.proc.log_path.read_text(errors="replace")
    assert marker not in text and TWITCH_SECRET not in text


def test_a_stale_twitch_timestamp_is_refused(server, api, emu):
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=11)
    body, headers = twitch({"event": {"user_login": "late"}}, sent=old)
    r = post(server, api, "twitch", body, headers)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "timestamp_stale"
    assert executions(api, "twitch", headers["Twitch-Eventsub-Message-Id"]) == []
    assert log_lines(server, "AUTH", "result=DENIED", "reason=timestamp_stale")


def test_a_missing_signature_unknown_hook_and_oversized_body_are_refused(server, api):
    body, headers = twitch({"event": {}})
    del headers["Twitch-Eventsub-Message-Signature"]
    r = post(server, api, "twitch", body, headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "signature_missing"

    r = post(server, api, "nosuchhook", b"{}", {"Content-Type": "application/json"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_webhook"
    assert log_lines(server, "AUTH", "hook=nosuchhook", "reason=unknown_webhook")

    big, big_headers = github("push", {"pad": "x" * 5000})  # MAX_PAYLOAD_BYTES is 4096 here
    r = post(server, api, "github", big, big_headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert executions(api, "github", big_headers["X-GitHub-Delivery"]) == []
    huge, huge_headers = github("push", {"pad": "x" * 100_000})  # past the app's own limit
    r = post(server, api, "github", huge, huge_headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert len(log_lines(server, "AUTH", "hook=github", "reason=payload_too_large")) == 2


def test_twitch_revocation_is_recorded_and_logged(server, api):
    body, headers = twitch({"subscription": {"id": "sub-9", "status": "authorization_revoked",
                                             "type": "channel.follow"}}, kind="revocation")
    r = post(server, api, "twitch", body, headers)
    assert r.status_code == 200 and r.json()["status"] == "succeeded"
    (row,) = executions(api, "twitch", headers["Twitch-Eventsub-Message-Id"])
    assert row["result"] == {"kind": "revocation", "subscription_id": "sub-9",
                             "status": "authorization_revoked"}
    assert log_lines(server, "WARNING", "action=webhook_revocation", "result=REVOKED",
                     "status=authorization_revoked")


# --- GitHub -----------------------------------------------------------------------------------


def test_github_ping_is_answered_and_push_invokes_the_action(server, api, emu):
    body, headers = github("ping", {"zen": "Design for failure.", "hook_id": 42})
    r = post(server, api, "github", body, headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"
    (row,) = executions(api, "github", headers["X-GitHub-Delivery"])
    assert row["result"] == {"kind": "ping", "hook_id": 42, "zen": "Design for failure."}
    assert log_lines(server, "AUDIT", "action=webhook", "result=PING",
                     f"delivery_id={headers['X-GitHub-Delivery']}")

    body, headers = github("push", {"ref": "refs/heads/main", "after": "abc123"})
    delivery = headers["X-GitHub-Delivery"]
    r = post(server, api, "github", body, headers)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "accepted"
    activation_id = r.json()["activation_id"]
    activation = wait_for(lambda: (lambda a: a if a.status_code == 200 else None)(
        emu.api("GET", f"/namespaces/_/activations/{activation_id}")))
    result = activation.json()["response"]["result"]
    assert result["body"] == {"ref": "refs/heads/main", "after": "abc123"}
    assert result["webhook"]["event"] == "push" and result["webhook"]["delivery_id"] == delivery
    (row,) = executions(api, "github", delivery)
    assert row["activation_id"] == activation_id
    assert log_lines(server, "AUDIT", "action=webhook", "result=ACCEPTED",
                     f"delivery_id={delivery}", "target=action:echo")


# --- generic HMAC ------------------------------------------------------------------------------


def test_a_generic_hook_calls_a_web_action_with_the_mapped_payload(server, api):
    body, headers = shop({"customer": {"name": "Grace"}, "order": 7})
    delivery = headers["X-Shop-Delivery"]
    r = post(server, api, "shop", body, headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"
    (row,) = executions(api, "shop", delivery)
    assert row["status"] == "succeeded" and row["status_code"] == 200
    assert row["result"] == {"message": "Hello Grace"}
    assert row["payload"]["name"] == "Grace"
    assert log_lines(server, "AUDIT", "action=webhook", "result=SUCCEEDED",
                     f"delivery_id={delivery}", "target=web:webhello")

    stale, stale_headers = shop({"customer": {"name": "Old"}}, at=time.time() - 3600)
    r = post(server, api, "shop", stale, stale_headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "timestamp_stale"


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_lists_hooks_and_sends_signed_test_deliveries(server):
    env = {**server.env, "REST_PORT": str(server.port), "BIND_HOST": "127.0.0.1"}
    listed = run_cli("webhook", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    hooks = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [h["hook"] for h in hooks] == ["twitch", "github", "shop"]
    assert hooks[0]["url"] == f"{server.url}/api/v1/webhooks/twitch"
    assert TWITCH_SECRET not in listed.stdout and GITHUB_SECRET not in listed.stdout
    for hook in ("twitch", "github"):
        sent = run_cli("webhook", "test", hook, env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert sent.stdout.startswith("200 ")
    wrong = run_cli("webhook", "test", "github", env={**env, "TEST_GITHUB_SECRET": "wrong"})
    assert wrong.returncode == 1 and wrong.stdout.startswith("403 ")


def test_a_slow_target_is_acknowledged_before_it_finishes(server, api, emu):
    emu.fault(path=r"/web/.*webhello", delay_ms=4000, times=1)
    body, headers = shop({"customer": {"name": "Slow"}})
    delivery = headers["X-Shop-Delivery"]
    started = time.monotonic()
    r = post(server, api, "shop", body, headers)
    assert r.status_code == 202, r.text
    assert time.monotonic() - started < 3.5  # WEBHOOK_ACK_SECONDS is 2
    assert r.json()["status"] == "pending"
    row = wait_for(lambda: [e for e in executions(api, "shop", delivery)
                            if e["status"] == "succeeded"], timeout=15)
    assert row and row[0]["result"] == {"message": "Hello Slow"}


# --- in-process: rate limits and an unreachable OpenWhisk ----------------------------------------


@pytest.fixture
def hooks_app(make_app, tmp_path, monkeypatch):
    """The app in-process with this module's hooks file; secrets in the process environment."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "webhooks.yaml"

    def make(hooks: str = HOOKS, **changes: str):
        path.write_text(hooks)
        return make_app(WEBHOOKS_FILE=str(path), **changes).test_client()

    return make


def test_each_hook_has_its_rate_limit(hooks_app, emu):
    client = hooks_app(RATE_LIMIT_CALLER="2/minute")
    codes = [client.post("/api/v1/webhooks/github", data=body, headers=headers).status_code
             for body, headers in (github("ping", {"zen": "z"}) for _ in range(3))]
    assert codes == [200, 200, 429]
    body, headers = github("ping", {"zen": "z"})
    limited = client.post("/api/v1/webhooks/github", data=body, headers=headers)
    assert limited.status_code == 429 and limited.headers["Retry-After"].isdigit()
    assert limited.get_json()["error"]["code"] == "rate_limited"
    body, headers = twitch({"challenge": "c1"}, kind="webhook_callback_verification")
    other = client.post("/api/v1/webhooks/twitch", data=body, headers=headers)
    assert other.status_code == 200 and other.text == "c1"  # another hook, its own budget


def github_codes(client, count: int) -> list[int]:
    return [client.post("/api/v1/webhooks/github", data=body, headers=headers).status_code
            for body, headers in (github("ping", {"zen": "z"}) for _ in range(count))]


def test_a_hook_s_own_rate_limit_in_the_hooks_file_applies_to_it_alone(hooks_app, emu):
    limited = HOOKS.replace("    invoke_action: echo\n",
                            "    invoke_action: echo\n    rate_limit: 2/minute\n")
    client = hooks_app(limited)
    assert github_codes(client, 3) == [200, 200, 429]
    body, headers = twitch({"challenge": "c2"}, kind="webhook_callback_verification")
    assert client.post("/api/v1/webhooks/twitch", data=body, headers=headers).status_code == 200


def test_webhook_rate_limit_is_every_hook_s_default_budget(hooks_app, emu):
    client = hooks_app(WEBHOOK_RATE_LIMIT="1/minute")
    assert github_codes(client, 2) == [200, 429]
    body, headers = twitch({"challenge": "c3"}, kind="webhook_callback_verification")
    assert client.post("/api/v1/webhooks/twitch", data=body, headers=headers).status_code == 200


def test_a_bad_rate_limit_in_the_hooks_file_is_refused_by_name():
    from owaction.webhooks.hooks import HookFileError, parse_hooks

    bad = HOOKS.replace("    invoke_action: echo\n",
                        "    invoke_action: echo\n    rate_limit: lots\n")
    with pytest.raises(HookFileError, match="github: rate_limit must look like 600/minute"):
        parse_hooks(bad, environ=SECRETS)


def test_when_nothing_reached_openwhisk_the_answer_is_503_and_the_retry_runs(hooks_app):
    from tests.procs import free_port

    client = hooks_app(OPENWHISK_API_HOST=f"http://127.0.0.1:{free_port()}",
                       OPENWHISK_CONNECT_TIMEOUT="1")
    body, headers = twitch({"event": {"user_login": "ada"}})
    first = client.post("/api/v1/webhooks/twitch", data=body, headers=headers)
    assert first.status_code == 503 and first.headers["Retry-After"].isdigit()
    assert first.get_json()["error"]["code"] == "unavailable"
    retry = client.post("/api/v1/webhooks/twitch", data=body, headers=headers)
    assert retry.status_code == 503  # run again, not acknowledged as a duplicate
    assert retry.get_json()["execution_id"] != first.get_json()["execution_id"]


def test_sighup_with_a_bad_hooks_file_keeps_the_server_and_the_old_hooks(start_gunicorn,
                                                                         emulator, tmp_path):
    import os
    import signal

    hooks = tmp_path / "webhooks.yaml"
    hooks.write_text(HOOKS)
    env = rest_env(module_env(tmp_path, emulator, f"sqlite://{tmp_path}/owaction.sqlite"),
                   WEB_WORKERS="1", WEBHOOKS_FILE=str(hooks), **SECRETS)
    server = start_gunicorn(env)
    api = server.api()
    hooks.write_text("webhooks: [broken")
    os.kill(server.proc.popen.pid, signal.SIGHUP)
    assert log_lines(server, "SIGHUP refused")
    time.sleep(1.5)
    assert server.proc.popen.poll() is None
    body, headers = github("ping", {"zen": "still here"})
    r = post(server, api, "github", body, headers)
    assert r.status_code == 200, r.text
    assert log_lines(server, "action=webhooks_reload", "result=REFUSED",
                     "keeping the previous 3 webhooks")
