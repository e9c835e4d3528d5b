"""Invoking actions over the REST API: status codes, bodies, records, waits and activations."""

from __future__ import annotations

import re
import time

import pytest

from tests.emulator.conftest import annotations, poll_activation, put_action

HEX32 = re.compile(r"\A[0-9a-f]{32}\Z")
LOG_LINE = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z stdout: hi there\Z")


def invoke(emu, name, body=None, **params):
    params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
    return emu.api("POST", f"/namespaces/_/actions/{name}", json=body, params=params)


def test_blocking_invoke_returns_the_full_record_without_logs(emu):
    r = invoke(emu, "hello", {"name": "Ann"}, blocking=True)
    assert r.status_code == 200
    record = r.json()
    assert HEX32.match(record["activationId"])
    assert r.headers["x-openwhisk-activation-id"] == record["activationId"]
    size = record["response"].pop("size")
    assert isinstance(size, int) and size >= len('{"message":"Hello Ann"}')
    assert record["response"] == {"status": "success", "success": True,
                                  "result": {"message": "Hello Ann"}}
    assert record["logs"] == []
    assert record["namespace"] == "guest"
    assert record["name"] == "hello"
    assert record["version"] == "0.0.1"
    assert record["subject"] == "guest"
    assert record["publish"] is False
    assert record["end"] >= record["start"]
    assert record["duration"] == record["end"] - record["start"]
    notes = annotations(record)
    assert notes["path"] == "guest/hello"
    assert notes["kind"] == "python:3"
    assert notes["timeout"] is False
    assert notes["limits"] == {"timeout": 10000, "memory": 256, "logs": 10, "concurrency": 1}
    assert notes["waitTime"] >= 0


def test_result_true_returns_only_the_result(emu):
    r = invoke(emu, "hello", blocking=True, result=True)
    assert r.status_code == 200
    assert r.json() == {"message": "Hello World"}
    assert HEX32.match(r.headers["x-openwhisk-activation-id"])


def test_packaged_action_invokes_through_its_package_path(emu):
    r = invoke(emu, "waddlebot/weather", {"args": "berlin"}, blocking=True, result=True)
    assert r.json() == {"message": "Weather for berlin: sunny"}


def test_application_error_is_502_with_the_record(emu):
    r = invoke(emu, "fail", blocking=True)
    assert r.status_code == 502
    response = r.json()["response"]
    response.pop("size", None)
    assert response == {"status": "application error", "success": False,
                        "result": {"error": "something went wrong"}}
    r = invoke(emu, "fail", blocking=True, result=True)
    assert r.status_code == 502
    assert r.json() == {"error": "something went wrong"}


def test_time_limit_is_a_developer_error_and_annotated(emu, uname):
    name = uname("loop")
    put_action(emu, name, "def main(args):\n    while True:\n        pass\n",
               limits={"timeout": 300})
    r = invoke(emu, name, blocking=True)
    assert r.status_code == 502
    record = r.json()
    assert record["response"]["status"] == "action developer error"
    assert record["response"]["result"] == {
        "error": "The action exceeded its time limits of 300 milliseconds."}
    assert annotations(record)["timeout"] is True


def test_array_results_are_returned_as_the_body_even_without_result(emu, uname):
    name = uname("arr")
    put_action(emu, name, "def main(args):\n    return [1, 2, {'a': 3}]\n")
    r = invoke(emu, name, blocking=True)
    assert r.status_code == 200
    assert r.json() == [1, 2, {"a": 3}]


def test_default_parameters_merge_under_the_request(emu, uname):
    name = uname("echo")
    put_action(emu, name, "def main(args):\n    return args\n",
               parameters=[{"key": "a", "value": 1}, {"key": "b", "value": 2}])
    r = invoke(emu, name, {"b": 3}, blocking=True, result=True)
    assert r.json() == {"a": 1, "b": 3}


def test_final_parameters_cannot_be_overridden(emu, uname):
    name = uname("final")
    put_action(emu, name, parameters=[{"key": "name", "value": "fixed"}],
               annotations=[{"key": "final", "value": True}])
    r = invoke(emu, name, {"name": "other"}, blocking=True)
    assert r.status_code == 400
    assert r.json()["error"] == (
        "Request defines parameters that are not allowed (e.g., reserved properties)."
    )
    assert invoke(emu, name, blocking=True, result=True).json() == {"message": "Hello fixed"}


def test_non_blocking_invoke_is_202_and_the_activation_appears_when_done(emu):
    r = invoke(emu, "sleep", {"ms": 300})
    assert r.status_code == 202
    activation_id = r.json()["activationId"]
    assert r.json() == {"activationId": activation_id}
    assert r.headers["x-openwhisk-activation-id"] == activation_id
    early = emu.api("GET", f"/namespaces/_/activations/{activation_id}")
    assert early.status_code == 404
    assert early.json()["error"] == "The requested resource does not exist."
    record = poll_activation(emu, activation_id)
    assert record["response"]["result"] == {"slept_ms": 300}


def test_blocking_wait_past_timeout_answers_202_and_the_action_continues(emu):
    started = time.monotonic()
    r = invoke(emu, "sleep", {"ms": 1500}, blocking=True, timeout=300)
    assert r.status_code == 202
    assert time.monotonic() - started < 1.4
    activation_id = r.json()["activationId"]
    assert r.headers["x-openwhisk-activation-id"] == activation_id
    record = poll_activation(emu, activation_id)
    assert record["response"]["result"] == {"slept_ms": 1500}


def test_configured_maximum_blocking_wait_demotes_to_202(start_emulator):
    emu = start_emulator("--max-blocking-wait-ms", "500")
    r = invoke(emu, "sleep", {"ms": 1200}, blocking=True)
    assert r.status_code == 202
    r = invoke(emu, "hello", blocking=True, timeout=501)
    assert r.status_code == 400
    assert r.json()["error"].endswith("Timeout must be number of milliseconds up to 500.")


@pytest.mark.parametrize("value", ["0", "-5", "60001", "soon"])
def test_bad_timeout_is_400(emu, value):
    r = invoke(emu, "hello", blocking=True, timeout=value)
    assert r.status_code == 400
    assert r.json()["error"] == ("The query parameter 'timeout' was malformed:\n"
                                 "Timeout must be number of milliseconds up to 60000.")


def test_invoking_missing_action_is_404(emu):
    r = invoke(emu, "does-not-exist", blocking=True)
    assert r.status_code == 404
    assert r.json()["error"] == "The requested resource does not exist."


def test_array_body_is_400(emu):
    r = invoke(emu, "echo", [1, 2], blocking=True)
    assert r.status_code == 400


def test_payload_over_one_megabyte_is_413(emu):
    big = {"x": "a" * (1024 * 1024)}
    r = invoke(emu, "echo", big, blocking=True)
    assert r.status_code == 413
    assert re.fullmatch(r"Request larger than allowed: \d+ > 1048576 bytes\.", r.json()["error"])


def test_activation_result_logs_and_lists(emu, uname):
    name = uname("logger")
    put_action(emu, name, "def main(args):\n    print('hi there')\n    return {'ok': True}\n")
    record = invoke(emu, name, blocking=True).json()
    activation_id = record["activationId"]
    full = emu.api("GET", f"/namespaces/_/activations/{activation_id}").json()
    assert len(full["logs"]) == 1 and LOG_LINE.match(full["logs"][0])
    assert "statusCode" not in full["response"]
    result = emu.api("GET", f"/namespaces/_/activations/{activation_id}/result").json()
    assert result == full["response"]
    assert {k: result[k] for k in ("status", "success", "result")} == {
        "status": "success", "success": True, "result": {"ok": True}}
    logs = emu.api("GET", f"/namespaces/_/activations/{activation_id}/logs").json()
    assert logs == {"logs": full["logs"]}

    rows = emu.api("GET", "/namespaces/_/activations", params={"name": name}).json()
    assert [r["activationId"] for r in rows] == [activation_id]
    assert rows[0]["statusCode"] == 0
    assert "logs" not in rows[0] and "response" not in rows[0]
    docs = emu.api("GET", "/namespaces/_/activations",
                   params={"name": name, "docs": "true"}).json()
    assert docs[0]["logs"] == full["logs"]
    count = emu.api("GET", "/namespaces/_/activations", params={"name": name, "count": "true"})
    assert count.json() == {"activations": 1}
    since = emu.api("GET", "/namespaces/_/activations",
                    params={"name": name, "since": record["start"] + 10_000}).json()
    assert since == []
    upto = emu.api("GET", "/namespaces/_/activations",
                   params={"name": name, "upto": record["start"]}).json()
    assert len(upto) == 1


def test_activation_list_filters_packaged_names(emu):
    invoke(emu, "waddlebot/weather", blocking=True)
    rows = emu.api("GET", "/namespaces/_/activations",
                   params={"name": "waddlebot/weather"}).json()
    assert rows and all(r["name"] == "weather" for r in rows)


def test_activation_query_errors(emu):
    cases = [
        ({"docs": "true", "count": "true"}, "The parameter 'docs' is not permitted with 'count'."),
        ({"since": "yesterday"}, "Parameter is not a valid value for epoch seconds: yesterday"),
        ({"name": "a/b/c"},
         "Parameter may be a 'simple' name or 'package-name/simple' name: a/b/c"),
        ({"limit": 500}, "The value '500' is not in the range of 0 to 200 for activations."),
    ]
    for params, message in cases:
        r = emu.api("GET", "/namespaces/_/activations", params=params)
        assert r.status_code == 400, params
        assert r.json()["error"] == message


def test_activation_id_must_be_32_hex(emu):
    r = emu.api("GET", "/namespaces/_/activations/abc")
    assert r.status_code == 400
    assert r.json()["error"] == "Activation id length is 3 but must be 32."
    r = emu.api("GET", "/namespaces/_/activations/" + "z" * 32)
    assert r.status_code == 400
    assert r.json()["error"] == "The activation id is not valid."


def test_action_versions_get_fresh_processes(emu, uname):
    name = uname("ver")
    put_action(emu, name, "def main(args):\n    return {'v': 1}\n")
    assert invoke(emu, name, blocking=True, result=True).json() == {"v": 1}
    emu.api("PUT", f"/namespaces/_/actions/{name}", params={"overwrite": "true"},
            json={"exec": {"kind": "python:3", "code": "def main(args):\n    return {'v': 2}\n"}})
    assert invoke(emu, name, blocking=True, result=True).json() == {"v": 2}
    emu.api("DELETE", f"/namespaces/_/actions/{name}")
    put_action(emu, name, "def main(args):\n    return {'v': 3}\n")
    assert invoke(emu, name, blocking=True, result=True).json() == {"v": 3}


def test_nodejs_action_runs_when_node_is_present(emu):
    kinds_ok = emu.api("GET", "/namespaces/_/actions/hello-js")
    if kinds_ok.status_code == 404:
        pytest.skip("node is not on PATH, so hello-js was not seeded")
    r = invoke(emu, "hello-js", {"name": "JS"}, blocking=True, result=True)
    assert r.json() == {"message": "Hello JS"}
