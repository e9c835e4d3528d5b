"""Bad input from one caller must not hurt the others: refused before it is recorded or sent,
never counted by the circuit breaker; health probes merged; the breaker's changes logged."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from owaction import errors
from owaction.logs import AAA_LOGGER
from owaction.openwhisk import OpenWhiskClient, TransportError
from owaction.service import ActionService, CallContext
from tests.openwhisk.conftest import remaining_uses
from tests.procs import free_port

CTX = CallContext(source="rest", caller="svc-a", request_id="req-1")
NOT_FINITE = ['{"x": NaN}', '{"x": Infinity}', '{"x": -Infinity}', '{"x": 1e400}',
              '{"x": [1, {"y": -1e999}]}', {"x": float("nan")}, {"x": [float("inf")]}]


def rows(service: ActionService):
    return service.store.list(limit=500)[0]


@pytest.mark.parametrize("payload", NOT_FINITE)
def test_a_payload_json_cannot_carry_is_invalid_before_anything_is_recorded(make_service,
                                                                            payload):
    service = make_service(BREAKER_FAIL_MAX="1")
    for call, kw in ((service.invoke_action, {"action_name": "echo"}),
                     (service.invoke_web_action, {"action_name": "webheaders"}),
                     (service.fire_trigger, {"trigger_name": "ping"})):
        with pytest.raises(errors.InvalidInput, match="NaN, Infinity"):
            call(CTX, payload=payload, **kw)
    assert rows(service) == []
    assert service.breaker_state() == "closed"
    assert service.invoke_action(CTX, action_name="hello").outcome == "succeeded"


@pytest.mark.parametrize("name", ["Host", "Transfer-Encoding", "connection", "Content-Length",
                                  "Keep-Alive", "TE", "Trailer", "Upgrade", "Proxy-Connection"])
def test_hop_by_hop_and_framing_headers_are_invalid_and_named(make_service, name):
    service = make_service()
    with pytest.raises(errors.InvalidInput, match=f"header '{name}'"):
        service.invoke_web_action(CTX, action_name="webheaders", headers={name: "1"})
    assert rows(service) == []


def test_a_web_action_that_does_not_exist_is_not_found(make_service):
    service = make_service()
    with pytest.raises(errors.NotFound):
        service.invoke_web_action(CTX, action_name="no-such-web-action")
    assert [(r.status, r.status_code) for r in rows(service)] == [("error", 404)]


def test_a_secured_web_action_is_refused_clearly_without_its_secret(make_service):
    with pytest.raises(errors.PermissionDenied, match="WEB_ACTION_SECRETS"):
        make_service().invoke_web_action(CTX, action_name="websecret")
    with pytest.raises(errors.PermissionDenied, match="WEB_ACTION_KEY_ALLOWED"):
        make_service().invoke_web_action(CTX, action_name="webkey")


def test_secrets_come_from_the_variables_the_configuration_names(make_service):
    service = make_service(WEB_ACTION_SECRETS="default/websecret=OW_TEST_WEB_SECRET",
                           OW_TEST_WEB_SECRET="example-web-secret",
                           WEB_ACTION_KEY_ALLOWED="guest/default/webkey")
    secret = service.invoke_web_action(CTX, action_name="websecret")
    assert secret.status_code == 200
    assert secret.result["headers"]["x-require-whisk-auth"] == "example-web-secret"
    keyed = service.invoke_web_action(CTX, action_name="webkey")
    assert keyed.result["headers"]["authorization"].startswith("Basic ")


def test_health_probes_are_one_at_a_time_and_never_trip_the_breaker(make_service, emu):
    service = make_service(BREAKER_FAIL_MAX="1")
    # Every probe would time out (1 s) against this delay; only one may be sent.
    emu.fault(method="GET", path="/api/v1$", delay_ms=1500, times=100)
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: service.health(), range(200)))
    assert remaining_uses(emu) == [99]
    assert {a["breaker"] for a in answers} == {"closed"}
    # Each waited for the first probe's answer (it timed out) instead of guessing.
    assert {a["openwhisk"] for a in answers} == {"unreachable"}


def test_checks_during_the_first_probe_wait_for_its_answer(make_service, emu):
    service = make_service()
    emu.fault(method="GET", path="/api/v1$", delay_ms=300, times=1)
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: service.health()["openwhisk"], range(20)))
    assert answers == ["reachable"] * 20
    assert remaining_uses(emu) == []
    assert service.invoke_action(CTX, action_name="hello").outcome == "succeeded"


def test_the_breaker_opening_and_closing_are_system_lines(base_env, caplog):
    from owaction.config import load_settings

    settings = load_settings(dict(base_env, BREAKER_FAIL_MAX="1", BREAKER_RESET_TIMEOUT="0.3"))
    client = OpenWhiskClient.from_settings(settings)
    good_host = client.api_host
    try:
        with caplog.at_level(logging.INFO, logger=AAA_LOGGER):
            client.api_host = f"http://127.0.0.1:{free_port()}"
            with pytest.raises(TransportError):
                client.list_rules()
            time.sleep(0.4)
            client.api_host = good_host
            client.list_rules()
    finally:
        client.close()
    changes = [(r.aaa_event, r.aaa_action, r.aaa_result, r.levelname) for r in caplog.records
               if getattr(r, "aaa_action", None) == "circuit_breaker"]
    assert changes == [("SYSTEM", "circuit_breaker", "OPEN", "WARNING"),
                       ("SYSTEM", "circuit_breaker", "HALF_OPEN", "INFO"),
                       ("SYSTEM", "circuit_breaker", "CLOSED", "INFO")]


def test_a_callers_deadline_bounds_a_web_action_and_its_timeout_is_not_counted(make_service,
                                                                              emu):
    service = make_service(BREAKER_FAIL_MAX="1")
    emu.fault(path="/web/guest/default/webheaders", delay_ms=3000, times=1)
    ctx = CallContext(source="grpc", caller="svc-a", request_id="req-2",
                      deadline=time.monotonic() + 0.5)
    started = time.monotonic()
    with pytest.raises(errors.UpstreamTimeout):
        service.invoke_web_action(ctx, action_name="webheaders")
    assert time.monotonic() - started < 2
    assert [r.status for r in rows(service)] == ["timeout"]
    assert service.breaker_state() == "closed"
