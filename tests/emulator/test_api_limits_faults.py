"""Throttles (429s), fault injection, and 200 blocking invocations in flight at once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests


def invoke(emu, name, body=None, **params):
    return emu.api("POST", f"/namespaces/_/actions/{name}", json=body, params=params)


def test_per_minute_limit_answers_429_with_counts(start_emulator):
    emu = start_emulator("--per-minute-limit", "3")
    assert emu.api("GET", "/namespaces/_/limits").json()["invocationsPerMinute"] == 3
    for _ in range(3):
        assert invoke(emu, "hello").status_code == 202
    r = invoke(emu, "hello", blocking="true")
    assert r.status_code == 429
    assert r.json()["error"] == "Too many requests in the last minute (count: 3, allowed: 3)."
    # OpenWhisk throttles before looking the action up.
    assert invoke(emu, "no-such-action").status_code == 429


def test_concurrent_limit_answers_429_while_activations_run(start_emulator):
    emu = start_emulator("--concurrent-limit", "2")
    assert emu.api("GET", "/namespaces/_/limits").json()["concurrentInvocations"] == 2
    first = [invoke(emu, "sleep", {"ms": 3000}) for _ in range(2)]
    assert [r.status_code for r in first] == [202, 202]
    r = invoke(emu, "hello", blocking="true")
    assert r.status_code == 429
    assert r.json()["error"] == "Too many concurrent requests in flight (count: 2, allowed: 2)."


def test_fires_per_minute_limit(start_emulator):
    emu = start_emulator("--fires-per-minute", "1")
    assert emu.api("GET", "/namespaces/_/limits").json()["firesPerMinute"] == 1
    assert emu.api("POST", "/namespaces/_/triggers/lonely", json={}).status_code == 204
    r = emu.api("POST", "/namespaces/_/triggers/ping", json={})
    assert r.status_code == 429
    assert r.json()["error"] == "Too many requests in the last minute (count: 1, allowed: 1)."


def test_fault_answers_status_body_and_headers_the_given_number_of_times(emu):
    emu.fault(method="POST", path="/actions/hello$", status=503, body={"error": "down"},
              headers={"Retry-After": "1"}, times=2)
    listed = requests.get(emu.url + "/_emulator/faults", timeout=5).json()
    assert listed[0]["times"] == 2 and listed[0]["status"] == 503
    before = len(emu.activations("hello"))
    for _ in range(2):
        r = invoke(emu, "hello", blocking="true")
        assert r.status_code == 503
        assert r.json() == {"error": "down"}
        assert r.headers["Retry-After"] == "1"
    assert len(emu.activations("hello")) == before  # the action never ran
    assert invoke(emu, "hello", blocking="true").status_code == 200
    assert requests.get(emu.url + "/_emulator/faults", timeout=5).json() == []


def test_fault_matches_method_and_path_only(emu):
    emu.fault(method="POST", path="/actions/echo", status=500, times=-1)
    assert emu.api("GET", "/namespaces/_/actions/echo").status_code == 200
    assert invoke(emu, "hello", blocking="true").status_code == 200
    for _ in range(3):
        r = invoke(emu, "echo", blocking="true")
        assert r.status_code == 500
        assert r.json()["error"] == "Fault injected by the emulator."
    emu.reset_faults()
    assert invoke(emu, "echo", blocking="true").status_code == 200


def test_delay_only_fault_delays_then_proceeds(emu):
    emu.fault(path="/actions/hello", delay_ms=600)
    started = time.monotonic()
    r = invoke(emu, "hello", blocking="true", result="true")
    assert time.monotonic() - started >= 0.6
    assert r.status_code == 200
    assert r.json() == {"message": "Hello World"}


def test_drop_fault_closes_the_connection_without_an_answer(emu):
    emu.fault(path="/actions/hello", drop=True)
    with pytest.raises(requests.ConnectionError):
        invoke(emu, "hello", blocking="true")
    assert invoke(emu, "hello", blocking="true").status_code == 200


def test_bad_fault_specs_are_400(emu):
    for spec in ({"path": "("}, {"status": 99}, {"times": 0, "status": 500}, {"path": "x"},
                 {"status": 500, "unknown": 1}):
        r = requests.post(emu.url + "/_emulator/faults", json=spec, timeout=5)
        assert r.status_code == 400, spec


@pytest.mark.slow
def test_two_hundred_blocking_invocations_in_flight_at_once(start_emulator):
    emu = start_emulator()
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=200))

    def call(i: int):
        return session.post(
            f"{emu.url}/api/v1/namespaces/_/actions/sleep",
            params={"blocking": "true", "result": "true"},
            json={"ms": 1000}, auth=emu.basic_auth, timeout=120,
        )

    with ThreadPoolExecutor(max_workers=200) as pool:
        responses = list(pool.map(call, range(200)))
    assert [r.status_code for r in responses] == [200] * 200
    assert all(r.json() == {"slept_ms": 1000} for r in responses)
