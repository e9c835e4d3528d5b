"""Transport failures and retries: a POST is sent once, a GET is retried, and every library
exception comes out as the client's own error."""

from __future__ import annotations

import socket
import time

import pytest

from owaction.openwhisk import (
    Activation,
    ConnectFailed,
    ConnectionDropped,
    RequestTimedOut,
    Unavailable,
)
from tests.openwhisk.conftest import remaining_uses
from tests.openwhisk.recorder import Recorder
from tests.openwhisk.test_invoke import wait_for_activation
from tests.procs import free_port


def count_activations(emu, name: str) -> int:
    r = emu.api("GET", "/namespaces/_/activations", params={"name": name, "count": "true"})
    return r.json()["activations"]


def settle(emu, name: str, expected: int, timeout: float = 10) -> int:
    """Activations are stored when they complete; wait until ``expected`` are (or time out)."""
    deadline = time.monotonic() + timeout
    while (n := count_activations(emu, name)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return n


def test_post_is_sent_once_on_a_dropped_connection(client, emu):
    before = count_activations(emu, "echo")
    # Two uses: if the client retried, the second attempt would take the second use.
    emu.fault(method="POST", path="/actions/echo$", drop=True, times=2)
    with pytest.raises(ConnectionDropped) as info:
        client.invoke_action("echo", {"once": True})
    assert info.value.request_sent is True
    assert remaining_uses(emu) == [1]
    emu.reset_faults()
    client.invoke_action("echo", result=True)
    assert settle(emu, "echo", before + 1) == before + 1


def test_post_is_not_retried_on_503(client, emu):
    emu.fault(method="POST", path="/actions/hello$", status=503, times=2)
    with pytest.raises(Unavailable):
        client.invoke_action("hello")
    assert remaining_uses(emu) == [1]


def test_get_is_retried_on_a_dropped_connection(client, emu):
    activation = client.invoke_action("hello")
    emu.fault(method="GET", path="/activations/", drop=True, times=2)
    got = wait_for_activation(client, activation.activation_id)
    assert got.activation_id == activation.activation_id
    assert remaining_uses(emu) == []


@pytest.mark.parametrize("status", [502, 503, 504])
def test_get_is_retried_on_gateway_errors(make_client, emu, status):
    client = make_client(get_retries=3)
    emu.fault(method="GET", path="/namespaces/[^/]+/actions$", status=status, times=3)
    assert [a.name for a in client.list_actions(limit=200) if a.name == "hello"] == ["hello"]
    assert remaining_uses(emu) == []


def test_get_gives_up_after_its_retries_with_the_last_status(make_client, emu):
    client = make_client(get_retries=2)
    emu.fault(method="GET", path="/namespaces/[^/]+/actions$", status=503, times=4)
    with pytest.raises(Unavailable) as info:
        client.list_actions()
    assert info.value.status_code == 503
    assert remaining_uses(emu) == [1]  # 1 try + 2 retries


def test_get_is_not_retried_on_500(make_client, emu):
    client = make_client(get_retries=3)
    emu.fault(method="GET", path="/namespaces/[^/]+/actions$", status=500, times=2)
    with pytest.raises(Exception) as info:
        client.list_actions()
    assert type(info.value).__name__ == "ServerError"
    assert remaining_uses(emu) == [1]


def test_backoff_is_capped_exponential_with_the_jitter_applied(make_client, emu):
    slept: list[float] = []
    client = make_client(get_retries=4, backoff_base=0.1, backoff_max=0.3,
                         jitter=lambda d: d / 2, sleep=slept.append)
    emu.fault(method="GET", path="/namespaces/[^/]+/triggers$", status=503, times=4)
    client.list_triggers()
    assert slept == [0.05, 0.1, 0.15, 0.15]


def test_read_timeout_is_request_timed_out_and_a_post_is_not_retried(make_client, emu):
    client = make_client()
    emu.fault(method="POST", path="/actions/hello$", delay_ms=1500, times=2)
    started = time.monotonic()
    with pytest.raises(RequestTimedOut) as info:
        client.invoke_action("hello", blocking=False, read_timeout=0.4)
    assert time.monotonic() - started < 1.4
    assert info.value.request_sent is True
    assert remaining_uses(emu) == [1]


def test_get_read_timeouts_are_retried(make_client, emu):
    client = make_client(read_timeout=0.5, get_retries=2)
    emu.fault(method="GET", path="/namespaces/[^/]+/rules$", delay_ms=1500, times=1)
    assert "ping-rule" in [r["name"] for r in client.list_rules()]


def test_blocking_read_timeout_covers_the_blocking_wait_plus_a_margin(make_client, emu):
    # A read timeout shorter than the action would cut the call off; the blocking wait
    # it asks of OpenWhisk must win.
    client = make_client(read_timeout=0.3, blocking_margin=1.0)
    activation = client.invoke_action("sleep", {"ms": 800}, timeout_ms=5000)
    assert isinstance(activation, Activation)
    assert activation.result == {"slept_ms": 800}


def test_a_deadline_shorter_than_the_action_gets_a_demoted_answer_not_a_timeout(make_client):
    client = make_client()
    out = client.invoke_action("sleep", {"ms": 2000}, read_timeout=1.0)
    assert type(out).__name__ == "ActivationPending"
    assert out.demoted is True


def test_connection_refused_is_connect_failed_for_get_and_post(make_client):
    slept: list[float] = []
    client = make_client(api_host=f"http://127.0.0.1:{free_port()}", get_retries=2,
                         sleep=slept.append)
    with pytest.raises(ConnectFailed) as info:
        client.list_actions()
    assert info.value.request_sent is False
    assert len(slept) == 2
    # Nothing was sent, so even a POST may be tried again: it is harmless.
    with pytest.raises(ConnectFailed):
        client.invoke_action("hello")
    assert len(slept) == 4
    assert info.value.__cause__ is not None  # translated once, from the library's exception


def test_post_retried_after_refusal_is_sent_exactly_once_when_the_server_listens(make_client):
    port = free_port()
    servers: list[Recorder] = []

    def start_server_on_first_retry(delay: float) -> None:
        if not servers:
            servers.append(Recorder(port=port, headers={"x-openwhisk-activation-id": "a" * 32}))

    client = make_client(api_host=f"http://127.0.0.1:{port}", get_retries=2,
                         sleep=start_server_on_first_retry)
    try:
        out = client.invoke_action("echo", {"n": 1}, result=True)
        assert out.result == {"ok": True}
        assert [r["method"] for r in servers[0].requests] == ["POST"]
    finally:
        for server in servers:
            server.close()


def test_connect_timeout_is_connect_failed(make_client):
    # A listener that never accepts, with its backlog filled: further SYNs go unanswered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(16):
            filler = socket.socket()
            filler.settimeout(0.2)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        else:
            pytest.skip("this kernel accepts every connection into the backlog")
        client = make_client(api_host=f"http://127.0.0.1:{port}", connect_timeout=0.2,
                             get_retries=0)
        with pytest.raises(ConnectFailed) as info:
            client.info()
        assert info.value.request_sent is False
        assert "timed out" in str(info.value)
    finally:
        for sock in [*fillers, listener]:
            sock.close()


def test_requests_exceptions_never_leak(make_client, emu):
    import requests

    client = make_client(get_retries=0)
    emu.fault(method="GET", path="/namespaces/[^/]+/packages$", drop=True)
    with pytest.raises(ConnectionDropped) as info:
        client.list_packages()
    assert not isinstance(info.value, requests.RequestException)
    assert isinstance(info.value.__cause__, requests.RequestException)


def test_a_callers_deadline_bounds_the_retries(make_client):
    slept: list[float] = []

    def sleep(delay: float) -> None:
        slept.append(delay)
        time.sleep(delay)

    client = make_client(api_host=f"http://127.0.0.1:{free_port()}", get_retries=10,
                         backoff_base=0.2, backoff_max=10, sleep=sleep)
    started = time.monotonic()
    with pytest.raises(ConnectFailed):
        client.info(timeout=0.5)
    assert time.monotonic() - started < 1.0
    assert slept == [0.2]  # the next pause (0.4 s) would pass the deadline
