"""The circuit breaker hook: what counts as a failure, failing fast when open, probing."""

from __future__ import annotations

import time

import pybreaker
import pytest

from owaction.openwhisk import CircuitOpen, ConnectFailed, NotFound, Unavailable
from tests.openwhisk.conftest import remaining_uses
from tests.procs import free_port


def breaker(fail_max: int = 2, reset_timeout: float = 60) -> pybreaker.CircuitBreaker:
    return pybreaker.CircuitBreaker(fail_max=fail_max, reset_timeout=reset_timeout)


def test_consecutive_5xx_open_the_breaker_and_it_fails_fast_without_the_network(
        make_client, emu):
    guard = breaker(fail_max=2, reset_timeout=60)
    client = make_client(breaker=guard, get_retries=0)
    emu.fault(method="POST", path="/actions/hello$", status=503, times=2)
    for _ in range(2):
        with pytest.raises(Unavailable):
            client.invoke_action("hello")
    assert guard.current_state == pybreaker.STATE_OPEN
    # The emulator now answers normally, so only the breaker can make this fail, and the
    # extra fault below stays unused: nothing reached the network.
    emu.fault(method="POST", path="/actions/hello$", status=503, times=1)
    with pytest.raises(CircuitOpen) as info:
        client.invoke_action("hello")
    assert info.value.request_sent is False
    assert 55 < info.value.retry_after <= 60
    assert remaining_uses(emu) == [1]


def test_transport_failures_count(make_client):
    guard = breaker(fail_max=2)
    client = make_client(api_host=f"http://127.0.0.1:{free_port()}", breaker=guard,
                         get_retries=0)
    for _ in range(2):
        with pytest.raises(ConnectFailed):
            client.list_actions()
    with pytest.raises(CircuitOpen):
        client.list_actions()


def test_4xx_and_action_failures_do_not_count(make_client, emu):
    guard = breaker(fail_max=2)
    client = make_client(breaker=guard)
    for _ in range(3):
        with pytest.raises(NotFound):
            client.invoke_action("no-such-action")
        assert client.invoke_action("fail").success is False  # OpenWhisk's 502
        assert client.invoke_action("fail", result=True).success is False
    assert guard.current_state == pybreaker.STATE_CLOSED
    assert guard.fail_counter == 0


def test_a_success_resets_the_count_of_failures(make_client, emu):
    guard = breaker(fail_max=2)
    client = make_client(breaker=guard, get_retries=0)
    emu.fault(method="POST", path="/actions/hello$", status=500)
    with pytest.raises(Exception):  # noqa: B017 - the ServerError is asserted elsewhere
        client.invoke_action("hello")
    assert guard.fail_counter == 1
    client.invoke_action("hello")
    assert guard.fail_counter == 0


def test_after_the_reset_timeout_one_probe_closes_the_breaker(make_client, emu):
    guard = breaker(fail_max=1, reset_timeout=0.5)
    client = make_client(breaker=guard, get_retries=0)
    emu.fault(method="GET", path="/namespaces/[^/]+/rules$", status=504)
    with pytest.raises(Unavailable):
        client.list_rules()
    with pytest.raises(CircuitOpen):
        client.list_rules()
    time.sleep(0.6)
    assert "ping-rule" in [r["name"] for r in client.list_rules()]
    assert guard.current_state == pybreaker.STATE_CLOSED


def test_a_failed_probe_opens_the_breaker_again_and_the_caller_sees_the_real_error(
        make_client, emu):
    guard = breaker(fail_max=1, reset_timeout=0.5)
    client = make_client(breaker=guard, get_retries=0)
    emu.fault(method="GET", path="/namespaces/[^/]+/rules$", status=503, times=2)
    with pytest.raises(Unavailable):
        client.list_rules()
    time.sleep(0.6)
    with pytest.raises(Unavailable):
        client.list_rules()
    assert guard.current_state == pybreaker.STATE_OPEN
    with pytest.raises(CircuitOpen):
        client.list_rules()


def test_web_actions_own_5xx_does_not_count_but_openwhisks_does(make_client, emu):
    guard = breaker(fail_max=1)
    client = make_client(breaker=guard)
    emu.fault(path="/web/", status=500,
              headers={"x-openwhisk-activation-id": "a" * 32})
    assert client.invoke_web_action("webhello").status_code == 500
    assert guard.current_state == pybreaker.STATE_CLOSED
    emu.fault(path="/web/", status=503)
    with pytest.raises(Unavailable):  # OpenWhisk's own 503: no activation id
        client.invoke_web_action("webhello")
    assert guard.current_state == pybreaker.STATE_OPEN


def test_from_settings_builds_a_breaker_from_the_settings(base_env):
    from owaction.config import load_settings
    from owaction.openwhisk import OpenWhiskClient

    env = dict(base_env, BREAKER_FAIL_MAX="3", BREAKER_RESET_TIMEOUT="12",
               OPENWHISK_POOL_SIZE="42", REQUEST_TIMEOUT="75", OPENWHISK_KEEPALIVE_IDLE="7")
    client = OpenWhiskClient.from_settings(load_settings(env))
    try:
        assert client.breaker.fail_max == 3
        assert client.breaker.reset_timeout == 12
        assert client.read_timeout == 75
        assert client.keepalive_idle == 7
        assert client._session.get_adapter(client.api_host)._pool_maxsize == 42
        assert client.verify is True
    finally:
        client.close()
    without = OpenWhiskClient.from_settings(load_settings(env), breaker=None)
    assert without.breaker is None
    without.close()
