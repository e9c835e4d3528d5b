"""Resilience at the service: idempotency, result cache, rate limits, breaker, callbacks."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from owaction import errors
from owaction.callbacks import CallbackDeliverer, verify
from owaction.service import CallContext
from owaction.worker import CompletionWorker
from tests.procs import free_port


def ctx(key: str | None = None, caller: str = "svc-a", **kw) -> CallContext:
    return CallContext(source="rest", caller=caller, idempotency_key=key, **kw)


def runs_since(emu, name: str, since_ms: int) -> int:
    return len([a for a in emu.activations(name) if a["start"] >= since_ms])


def now_ms() -> int:
    return int(time.time() * 1000)


# --- idempotency ------------------------------------------------------------------------------


def test_repeated_key_returns_the_first_result_without_running_again(make_service, db_url, emu):
    service = make_service(db_url)
    key, since = uuid.uuid4().hex, now_ms()
    first = service.invoke_action(ctx(key), action_name="echo", payload={"n": 1})
    again = service.invoke_action(ctx(key), action_name="echo", payload={"n": 1})
    assert again.execution_id == first.execution_id
    assert again.result == first.result == {"n": 1} and again.outcome == "succeeded"
    time.sleep(0.3)
    assert runs_since(emu, "echo", since) == 1


def test_same_key_for_a_different_request_is_refused(make_service):
    service = make_service()
    key = uuid.uuid4().hex
    first = service.invoke_action(ctx(key), action_name="echo", payload={"n": 1})
    with pytest.raises(errors.IdempotencyMismatch) as info:
        service.invoke_action(ctx(key), action_name="echo", payload={"n": 2})
    assert info.value.http_status == 422 and info.value.grpc_status == "FAILED_PRECONDITION"
    assert info.value.execution_id == first.execution_id


def test_keys_are_per_caller(make_service):
    service = make_service()
    key = uuid.uuid4().hex
    a = service.invoke_action(ctx(key, caller="a"), action_name="echo", payload={})
    b = service.invoke_action(ctx(key, caller="b"), action_name="echo", payload={})
    assert a.execution_id != b.execution_id


def test_a_replayed_failure_raises_the_same_error(make_service, emu):
    service = make_service()
    key = uuid.uuid4().hex
    with pytest.raises(errors.NotFound) as first:
        service.invoke_action(ctx(key), action_name="nothing-here")
    with pytest.raises(errors.NotFound) as again:
        service.invoke_action(ctx(key), action_name="nothing-here")
    assert again.value.execution_id == first.value.execution_id


def test_a_key_whose_request_never_left_is_free_again(make_service, start_emulator):
    port = free_port()
    service = make_service(api_host=f"http://127.0.0.1:{port}")
    key = uuid.uuid4().hex
    with pytest.raises(errors.Unavailable):
        service.invoke_action(ctx(key), action_name="echo", payload={})
    with pytest.raises(errors.Unavailable) as again:
        service.invoke_action(ctx(key), action_name="echo", payload={})
    # Nothing was sent either time, so the second attempt really ran (a new execution).
    assert len(service.store.list(limit=10)[0]) == 2
    assert again.value.execution_id


def test_expired_keys_are_forgotten(make_service):
    service = make_service(IDEMPOTENCY_TTL="1")
    key = uuid.uuid4().hex
    first = service.invoke_action(ctx(key), action_name="echo", payload={})
    time.sleep(2.1)
    second = service.invoke_action(ctx(key), action_name="echo", payload={"other": True})
    assert second.execution_id != first.execution_id


# --- cache ----------------------------------------------------------------------------------


def test_cacheable_action_is_served_from_cache_and_recorded(make_service, db_url, emu):
    service = make_service(db_url, CACHEABLE_ACTIONS="echo=60")
    since = now_ms()
    payload = {"cache": uuid.uuid4().hex}
    first = service.invoke_action(ctx(), action_name="echo", payload=payload)
    second = service.invoke_action(ctx(), action_name="echo", payload=payload)
    other = service.invoke_action(ctx(), action_name="echo", payload={"cache": "different"})
    assert not first.cached and second.cached and not other.cached
    assert second.result == first.result and second.execution_id != first.execution_id
    record = service.get_execution(second.execution_id)
    assert record.cached is True and record.status == "succeeded"
    time.sleep(0.3)
    assert runs_since(emu, "echo", since) == 2  # first and other, not second


def test_actions_not_declared_cacheable_always_run(make_service, emu):
    service = make_service(CACHEABLE_ACTIONS="hello=60")
    since = now_ms()
    for _ in range(2):
        service.invoke_action(ctx(), action_name="echo", payload={"x": 1})
    time.sleep(0.3)
    assert runs_since(emu, "echo", since) == 2


# --- rate limits ---------------------------------------------------------------------------


def limiter_service(make_service, **env):
    from owaction.ratelimit import RateLimiter

    service = make_service(**env)
    service.rate_limiter = RateLimiter(service.settings)
    service.rate_limiter.reset()
    return service


def test_caller_limit_answers_throttled_with_retry_after(make_service):
    service = limiter_service(make_service, RATE_LIMIT_CALLER="2/minute")
    for _ in range(2):
        service.invoke_action(ctx(caller="busy"), action_name="echo", payload={})
    with pytest.raises(errors.Throttled) as info:
        service.invoke_action(ctx(caller="busy"), action_name="echo", payload={})
    assert 1 <= info.value.retry_after <= 60
    service.invoke_action(ctx(caller="other"), action_name="echo", payload={})


def test_action_limit_applies_across_callers(make_service):
    service = limiter_service(make_service, RATE_LIMIT_ACTION="1/minute")
    service.invoke_action(ctx(caller="a"), action_name="hello", payload={})
    with pytest.raises(errors.Throttled):
        service.invoke_action(ctx(caller="b"), action_name="hello", payload={})


def _redis_answers() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.skipif(not _redis_answers(), reason="no Redis on 127.0.0.1:6379")
def test_redis_limits_are_shared_between_processes(make_service):
    # Two services are two processes' worth of state; Redis is what they share.
    env = {"REDIS_URL": "redis://127.0.0.1:6379/15",
           "RATE_LIMIT_CALLER": "3/minute", "MODULE_NAME": f"rl-{uuid.uuid4().hex[:6]}"}
    one = limiter_service(make_service, **env)
    two = limiter_service(make_service, **env)
    one.invoke_action(ctx(caller="shared"), action_name="echo", payload={})
    two.invoke_action(ctx(caller="shared"), action_name="echo", payload={})
    one.invoke_action(ctx(caller="shared"), action_name="echo", payload={})
    with pytest.raises(errors.Throttled):
        two.invoke_action(ctx(caller="shared"), action_name="echo", payload={})


def test_with_redis_unreachable_invocations_pass_but_token_requests_stay_limited(make_service):
    from owaction.ratelimit import RateLimiter
    from tests.procs import free_port

    service = make_service(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                           RATE_LIMIT_CALLER="1/minute", RATE_LIMIT_TOKEN="2/minute")
    service.rate_limiter = RateLimiter(service.settings)  # no reset(): Redis is not there
    for _ in range(3):  # the invocation limit fails open: OpenWhisk's own limits still apply
        service.invoke_action(ctx(caller="busy"), action_name="echo", payload={})
    limiter = service.rate_limiter
    limiter.check_token_request("203.0.113.9")
    limiter.check_token_request("203.0.113.9")
    with pytest.raises(errors.Throttled) as info:  # guessing keys stays slow without Redis
        limiter.check_token_request("203.0.113.9")
    assert info.value.retry_after >= 1
    limiter.check_token_request("203.0.113.10")


def test_by_default_the_module_sets_no_invocation_limit_of_its_own(make_service):
    service = limiter_service(make_service)
    assert service.settings.rate_limit_caller == "" == service.settings.rate_limit_action
    for _ in range(50):
        service.rate_limiter.check_invocation("router_module", "hello")


# --- circuit breaker --------------------------------------------------------------------------


def test_breaker_opens_after_consecutive_5xx_and_fails_fast(make_service, emu):
    service = make_service(BREAKER_FAIL_MAX="3", BREAKER_RESET_TIMEOUT="30")
    emu.fault(method="POST", path="/actions/echo", status=503, times=3)
    for _ in range(3):
        with pytest.raises(errors.Unavailable):
            service.invoke_action(ctx(), action_name="echo", payload={})
    emu.fault(method="POST", path="/actions/echo", status=503, times=1)
    with pytest.raises(errors.Unavailable) as info:
        service.invoke_action(ctx(), action_name="echo", payload={})
    assert info.value.retry_after and info.value.retry_after > 0
    # Failing fast means the request never reached OpenWhisk: the fault is still unused.
    faults = requests.get(f"{emu.url}/_emulator/faults", timeout=5).json()
    assert [f["times"] for f in faults] == [1]
    assert service.health()["breaker"] == "open"


def test_action_failures_do_not_open_the_breaker(make_service):
    service = make_service(BREAKER_FAIL_MAX="2")
    for _ in range(4):
        assert service.invoke_action(ctx(), action_name="fail").outcome == "failed"
    assert service.health()["breaker"] == "closed"


# --- callbacks -------------------------------------------------------------------------------


class Receiver:
    """A tiny HTTP server that refuses the first N callbacks, then accepts."""

    def __init__(self, refuse: int):
        self.refuse = refuse
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                status = 503 if len(receiver.received) <= receiver.refuse else 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_callback_to_a_host_not_allowed_is_refused(make_service):
    service = make_service()
    with pytest.raises(errors.InvalidInput):
        service.invoke_action(ctx(callback_url="http://169.254.169.254/latest"),
                              action_name="echo", payload={})
    assert service.store.list(limit=5)[0] == []


def test_callback_is_signed_retried_and_recorded(make_service, db_url):
    receiver = Receiver(refuse=2)
    try:
        service = make_service(db_url, CALLBACK_ALLOWED_HOSTS="127.0.0.1",
                               CALLBACK_SECRET="cb-secret-" + "k" * 20)
        result = service.invoke_action(ctx(callback_url=receiver.url), action_name="echo",
                                       payload={"cb": 1})
        worker = CompletionWorker(service, owner="w", callbacks=CallbackDeliverer(
            service.settings, service.store, delay=lambda attempt: 0.2))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            worker.run_once()
            record = service.get_execution(result.execution_id)
            if record.callback_state in ("delivered", "failed"):
                break
            time.sleep(0.25)
        assert record.callback_state == "delivered"
        assert record.callback_attempts == 3 and record.callback_status_code == 204
        headers, body = receiver.received[-1]
        assert verify(service.settings.callback_secret, headers["X-Owaction-Timestamp"], body,
                      headers["X-Owaction-Signature"])
        sent = json.loads(body)["execution"]
        assert sent["execution_id"] == result.execution_id and sent["result"] == {"cb": 1}
        assert "lease_owner" not in sent and "idempotency_key" not in sent
        worker.close()
    finally:
        receiver.close()


def test_callback_gives_up_after_the_bounded_attempts(make_service):
    receiver = Receiver(refuse=100)
    try:
        service = make_service(CALLBACK_ALLOWED_HOSTS="127.0.0.1")
        result = service.invoke_action(ctx(callback_url=receiver.url), action_name="echo",
                                       payload={})
        deliverer = CallbackDeliverer(service.settings, service.store, max_attempts=3,
                                      delay=lambda attempt: 0.05)
        for _ in range(20):
            deliverer.deliver_due()
            time.sleep(0.1)
        record = service.get_execution(result.execution_id)
        assert record.callback_state == "failed" and record.callback_attempts == 3
        assert len(receiver.received) == 3
        deliverer.close()
    finally:
        receiver.close()


# --- replayed errors ------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "raised", "code", "retry_after"), [
    ({"status": 429, "headers": {"Retry-After": "7"},
      "body": {"error": "Too many requests", "code": "x"}}, errors.Throttled, "throttled", 7),
    ({"status": 415, "body": {"error": "unsupported media type", "code": "x"}},
     errors.InvalidInput, "invalid_request", None),
])
def test_a_replayed_failure_raises_the_same_error_again(make_service, emu, fault, raised, code,
                                                       retry_after):
    service = make_service()
    key = uuid.uuid4().hex
    emu.fault(method="POST", path="/actions/echo", times=1, **fault)
    with pytest.raises(raised) as first:
        service.invoke_action(ctx(key), action_name="echo", payload={})
    with pytest.raises(errors.ServiceError) as again:
        service.invoke_action(ctx(key), action_name="echo", payload={})
    assert type(again.value) is type(first.value) is raised
    assert again.value.code == first.value.code == code
    assert again.value.retry_after == first.value.retry_after == retry_after
    assert again.value.message == first.value.message
    assert again.value.execution_id == first.value.execution_id
