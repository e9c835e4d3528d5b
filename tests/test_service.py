"""The action service against the emulator on a real port and real databases."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from owaction import errors
from owaction.service import ActionService, CallContext
from tests.procs import free_port

CTX = CallContext(source="rest", caller="svc-a", request_id="req-1")


def rows(service: ActionService):
    return service.store.list(limit=500)[0]


def activation_count(emu, name: str) -> int:
    return len(emu.activations(name))


# --- invoke ---------------------------------------------------------------------------------


def test_blocking_invoke_succeeds_and_is_recorded(make_service, db_url):
    service = make_service(db_url)
    result = service.invoke_action(CTX, action_name="hello", payload={"name": "Ada"})
    assert result.outcome == "succeeded" and result.success
    assert result.result == {"message": "Hello Ada"}
    assert len(result.activation_id) == 32
    assert result.start_time and result.end_time >= result.start_time
    record = service.get_execution(result.execution_id)
    assert record.status == "succeeded" and record.success is True
    assert record.result == {"message": "Hello Ada"}
    assert record.activation_id == result.activation_id
    assert record.payload == {"name": "Ada"}
    assert record.caller == "svc-a" and record.source == "rest" and record.request_id == "req-1"
    assert record.status_code == 200 and record.completed_at is not None


def test_payload_may_be_json_text(make_service):
    result = make_service().invoke_action(CTX, action_name="echo", payload='{"a": [1, 2]}')
    assert result.result == {"a": [1, 2]}


def test_application_error_is_a_failed_result_not_an_exception(make_service, db_url):
    service = make_service(db_url)
    result = service.invoke_action(CTX, action_name="fail")
    assert result.outcome == "failed" and not result.success
    assert result.status == "application error"
    assert result.error == "something went wrong"
    record = service.get_execution(result.execution_id)
    assert (record.status, record.status_code, record.success) == ("failed", 502, False)


def test_unknown_action_is_not_found_and_recorded_as_error(make_service, db_url):
    service = make_service(db_url)
    with pytest.raises(errors.NotFound) as info:
        service.invoke_action(CTX, action_name="no-such-action")
    record = service.get_execution(info.value.execution_id)
    assert (record.status, record.status_code) == ("error", 404)


@pytest.mark.parametrize("name", ["../x", "a%2Fb", "a/b/c", "x" * 300, "", " lead"])
def test_invalid_names_are_refused_before_anything_is_recorded(make_service, name):
    service = make_service()
    with pytest.raises(errors.InvalidInput):
        service.invoke_action(CTX, action_name=name)
    assert rows(service) == []


@pytest.mark.parametrize("payload", ["[1, 2]", "not json", 42, [1], '"text"'])
def test_payload_must_be_a_json_object(make_service, payload):
    service = make_service()
    with pytest.raises(errors.InvalidInput):
        service.invoke_action(CTX, action_name="echo", payload=payload)
    assert rows(service) == []


def test_payload_over_the_limit_is_too_large(make_service):
    service = make_service(MAX_PAYLOAD_BYTES="1000")
    with pytest.raises(errors.PayloadTooLarge):
        service.invoke_action(CTX, action_name="echo", payload={"x": "y" * 2000})
    with pytest.raises(errors.PayloadTooLarge):
        service.invoke_action(CTX, action_name="echo", payload=json.dumps({"x": "y" * 2000}))
    assert rows(service) == []


@pytest.mark.parametrize("timeout", [-1, 60001, True, 1.5])
def test_timeout_out_of_range_is_invalid(make_service, timeout):
    service = make_service()
    with pytest.raises(errors.InvalidInput):
        service.invoke_action(CTX, action_name="echo", timeout_ms=timeout)
    assert rows(service) == []


def test_non_blocking_is_accepted_then_refreshed_on_read(make_service, db_url):
    service = make_service(db_url)
    result = service.invoke_action_async(CTX, action_name="hello")
    assert result.outcome == "accepted" and result.status == "accepted"
    assert len(result.activation_id) == 32
    deadline = time.monotonic() + 15
    record = service.get_execution(result.execution_id)
    while record.status == "accepted" and time.monotonic() < deadline:
        time.sleep(0.2)
        record = service.get_execution(result.execution_id)
    assert record.status == "succeeded"
    assert record.result == {"message": "Hello World"}


def test_blocking_call_demoted_by_openwhisk_is_accepted(make_service, start_emulator):
    slow = start_emulator("--max-blocking-wait-ms", "500")
    service = make_service(api_host=slow.url, OPENWHISK_BLOCKING_WAIT_MS="500",
                           MAX_ACTION_TIMEOUT="500", REQUEST_TIMEOUT="5")
    result = service.invoke_action(CTX, action_name="sleep", payload={"ms": 1500})
    assert result.outcome == "accepted" and result.activation_id
    assert service.get_execution(result.execution_id, refresh=False).status == "accepted"


def test_sequence_runs_its_components(make_service):
    result = make_service().invoke_sequence(CTX, sequence_name="hello-sequence",
                                            payload={"name": "Seq"})
    assert result.outcome == "succeeded" and result.action_type == "sequence"
    assert result.result == {"message": "Hello Seq"}


def test_web_action_answers_with_status_headers_and_body(make_service):
    result = make_service().invoke_web_action(CTX, action_name="webstatus",
                                              payload={"status": 201}, method="POST")
    # No extension asked: OpenWhisk's .http, so the action's statusCode and headers are the answer.
    assert result.status_code == 201 and result.success
    assert json.loads(result.response_body) == {"created": True, "status": 201}
    assert result.response_headers["X-Example"] == "yes"


def test_web_action_json_extension_renders_the_whole_result(make_service):
    result = make_service().invoke_web_action(CTX, action_name="webhello", extension=".json",
                                              payload={"name": "Web"}, method="POST")
    assert result.status_code == 200 and result.success
    assert json.loads(result.response_body) == {"message": "Hello Web"}
    assert "json" in result.response_headers.get("Content-Type", "") + \
        result.response_headers.get("content-type", "")


def test_web_action_bad_method_is_invalid(make_service):
    with pytest.raises(errors.InvalidInput):
        make_service().invoke_web_action(CTX, action_name="webhello", method="TRACE")


def test_trigger_with_rule_is_accepted_and_without_is_done(make_service):
    service = make_service()
    fired = service.fire_trigger(CTX, trigger_name="ping", payload={"n": 1})
    assert fired.outcome == "accepted" and len(fired.activation_id) == 32
    lonely = service.fire_trigger(CTX, trigger_name="lonely")
    assert lonely.outcome == "succeeded" and lonely.activation_id is None
    assert lonely.status == "no active rule"


def test_activation_and_listing(make_service):
    service = make_service()
    result = service.invoke_action(CTX, action_name="hello")
    activation = service.get_activation(CTX, activation_id=result.activation_id)
    assert activation.activation_id == result.activation_id and activation.success
    with pytest.raises(errors.NotFound):
        service.get_activation(CTX, activation_id="0" * 32)
    with pytest.raises(errors.InvalidInput):
        service.get_activation(CTX, activation_id="../etc")
    names = {a.name for a in service.list_actions(CTX, limit=200)}
    assert {"hello", "echo", "sleep"} <= names
    assert len(service.list_actions(CTX, limit=2)) == 2
    for bad in (-1, 201):
        with pytest.raises(errors.InvalidInput):
            service.list_actions(CTX, limit=bad)


# --- failures -------------------------------------------------------------------------------


def test_openwhisk_unreachable_is_unavailable_and_recorded(make_service, db_url):
    service = make_service(db_url, api_host=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(errors.Unavailable) as info:
        service.invoke_action(CTX, action_name="hello")
    record = service.get_execution(info.value.execution_id)
    assert record.status == "error" and "unreachable" in record.error


def test_openwhisk_5xx_and_429_map_to_503_and_429(make_service, emu):
    service = make_service()
    emu.fault(method="POST", path="/actions/hello", status=503, times=1)
    with pytest.raises(errors.Unavailable):
        service.invoke_action(CTX, action_name="hello")
    emu.fault(method="POST", path="/actions/hello", status=429, headers={"Retry-After": "7"},
              body={"error": "Too many requests in the last minute (count: 9, allowed: 8).",
                    "code": "x"}, times=1)
    with pytest.raises(errors.Throttled) as info:
        service.invoke_action(CTX, action_name="hello")
    assert info.value.retry_after == 7
    assert all(r.status == "error" for r in rows(service))


def test_openwhisk_silent_past_the_deadline_is_a_timeout(make_service, emu):
    service = make_service()
    emu.fault(method="POST", path="/actions/hello", delay_ms=3000, times=1)
    ctx = CallContext(source="grpc", deadline=time.monotonic() + 1.0)
    with pytest.raises(errors.UpstreamTimeout) as info:
        service.invoke_action(ctx, action_name="hello")
    assert service.get_execution(info.value.execution_id).status == "timeout"


def test_database_down_means_unavailable_and_openwhisk_is_not_called(make_service, emu):
    service = make_service(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    before = activation_count(emu, "echo")
    with pytest.raises(errors.Unavailable):
        service.invoke_action(CTX, action_name="echo", payload={"db": "down"})
    assert activation_count(emu, "echo") == before
    assert service.health()["database"] == "unavailable"


def test_deadline_bounds_the_blocking_wait(make_service):
    service = make_service()
    ctx = CallContext(source="grpc", deadline=time.monotonic() + 1.0)
    started = time.monotonic()
    result = service.invoke_action(ctx, action_name="sleep", payload={"ms": 3000})
    assert result.outcome == "accepted"  # OpenWhisk was asked to answer before the deadline
    assert time.monotonic() - started < 3
    with pytest.raises(errors.UpstreamTimeout):
        service.invoke_action(CallContext(deadline=time.monotonic() - 1), action_name="hello")


# --- executions and stats ---------------------------------------------------------------------


def test_list_and_stats_come_from_the_store(make_service, db_url):
    service = make_service(db_url)
    service.invoke_action(CTX, action_name="hello")
    service.invoke_action(CTX, action_name="fail")
    service.invoke_action_async(CTX, action_name="echo")
    records, _ = service.list_executions(limit=10)
    assert len(records) == 3
    only_failed, _ = service.list_executions(status="failed")
    assert [r.action_name for r in only_failed] == ["fail"]
    stats = service.stats()
    assert stats["total_executions"] == 3
    with pytest.raises(errors.NotFound):
        service.get_execution("f" * 32)
    with pytest.raises(errors.InvalidInput):
        service.list_executions(limit=0)


def test_health_reports_database_and_openwhisk(make_service):
    health = make_service().health()
    assert health == {"database": "connected", "openwhisk": "reachable", "breaker": "closed",
                      "healthy": True}


# --- concurrency ------------------------------------------------------------------------------


def test_many_threads_in_flight_share_a_bounded_pool(make_service):
    service = make_service(DB_POOL_SIZE="4")
    seen: list[int] = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            seen.append(service.store.sessions_in_use)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=40) as pool:
            results = list(pool.map(
                lambda i: service.invoke_action(CTX, action_name="sleep", payload={"ms": 300}),
                range(40),
            ))
    finally:
        done.set()
        sampler.join(10)
    assert 1 <= max(seen) <= 4  # sessions were used, never more than DB_POOL_SIZE at once
    assert all(r.outcome == "succeeded" for r in results)
    assert all(r.status == "succeeded" for r in rows(service))
    assert service.store.sessions_in_use == 0


@pytest.mark.parametrize("headers", [{" x": "1"}, {"x": " lead"}, {"x": "é"}, {"a b": "c"},
                                     {"x": "line\nbreak"}])
def test_web_action_headers_that_cannot_be_sent_are_invalid(make_service, headers):
    service = make_service()
    with pytest.raises(errors.InvalidInput):
        service.invoke_web_action(CTX, action_name="webhello", headers=headers)
    assert rows(service) == []
    assert service.health()["breaker"] == "closed"


def test_call_context_rules_are_the_same_for_every_door():
    good = CallContext.for_request(
        source="grpc", caller="svc", request_id="abc-1.2_3", idempotency_key="key-1",
        traceparent="00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        callback_url="http://127.0.0.1/hook")
    assert good.request_id == "abc-1.2_3" and good.idempotency_key == "key-1"
    assert good.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    odd = CallContext.for_request(source="rest", caller="svc", request_id="bad id\n",
                                  traceparent="not-a-traceparent")
    assert len(odd.request_id) == 32 and odd.request_id != "bad id\n"
    assert odd.trace_id is None and odd.traceparent is None
    for key in ("", "k" * 256, "with space", "é"):
        with pytest.raises(errors.InvalidInput):
            CallContext.for_request(source="rest", caller="svc", request_id=None,
                                    idempotency_key=key)
    with pytest.raises(errors.InvalidInput):
        CallContext.for_request(source="rest", caller="svc", request_id=None,
                                callback_url="http://x/" + "a" * 2048)


def test_a_token_is_issued_by_the_service_for_a_valid_key_only(make_service):
    service = make_service(API_KEYS="svc-k=key-k-" + "y" * 20)
    ctx = CallContext(source="rest")
    issued = service.issue_token(ctx, api_key="key-k-" + "y" * 20, service="svc-k",
                                 address="192.0.2.1")
    claims = service.verifier.verify(issued.token)
    assert claims.service == issued.service == "svc-k"
    assert sorted(claims.permissions) == issued.permissions
    with pytest.raises(errors.Unauthenticated):
        service.issue_token(ctx, api_key="key-k-" + "z" * 20, service="svc-k")
    with pytest.raises(errors.PermissionDenied):
        service.issue_token(ctx, api_key="key-k-" + "y" * 20, service="svc-k",
                            permissions=["manage"])
    fewer = service.issue_token(ctx, api_key="key-k-" + "y" * 20, service="svc-k",
                                permissions=["read"])
    assert fewer.permissions == ["read"]
