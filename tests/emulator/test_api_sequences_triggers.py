"""Sequences (records, short-circuit, limits, cycles) and triggers with rules."""

from __future__ import annotations

import json

from tests.emulator.conftest import annotations, poll_activation, put_action, put_sequence


def invoke(emu, name, body=None, **params):
    return emu.api("POST", f"/namespaces/_/actions/{name}", json=body, params=params)


def test_sequence_record_links_components_by_cause_and_logs(emu):
    r = invoke(emu, "hello-sequence", {"name": "Seq"}, blocking="true")
    assert r.status_code == 200
    seq = r.json()
    assert seq["response"]["result"] == {"message": "Hello Seq"}
    notes = annotations(seq)
    assert notes["kind"] == "sequence"
    assert notes["topmost"] is True
    assert notes["path"] == "guest/hello-sequence"
    assert "causedBy" not in notes
    full = poll_activation(emu, seq["activationId"])
    assert len(full["logs"]) == 2
    components = [poll_activation(emu, cid) for cid in full["logs"]]
    assert [c["name"] for c in components] == ["echo", "hello"]
    for component in components:
        assert component["cause"] == seq["activationId"]
        assert annotations(component)["causedBy"] == "sequence"
    assert seq["duration"] == sum(c["duration"] for c in components)


def test_sequence_short_circuits_on_an_error(emu, uname):
    name = uname("seqfail")
    assert put_sequence(emu, name, ["/guest/fail", "/guest/hello"]).status_code == 200
    r = invoke(emu, name, blocking="true")
    assert r.status_code == 502
    assert r.json()["response"]["result"] == {"error": "something went wrong"}
    full = poll_activation(emu, r.json()["activationId"])
    assert len(full["logs"]) == 1


def test_nested_sequences_mark_the_inner_one_as_caused(emu, uname):
    inner, outer = uname("inner"), uname("outer")
    put_sequence(emu, inner, ["/_/echo"])
    put_sequence(emu, outer, [f"/_/{inner}", "/_/hello"])
    seq = invoke(emu, outer, {"name": "N"}, blocking="true").json()
    assert seq["response"]["result"] == {"message": "Hello N"}
    full = poll_activation(emu, seq["activationId"])
    inner_record = poll_activation(emu, full["logs"][0])
    assert inner_record["cause"] == seq["activationId"]
    notes = annotations(inner_record)
    assert notes["causedBy"] == "sequence"
    assert "topmost" not in notes


def test_sequence_creation_errors(emu, uname):
    r = put_sequence(emu, uname(), [])
    assert (r.status_code, r.json()["error"]) == (400, "No component specified for the sequence.")
    r = put_sequence(emu, uname(), ["/_/no-such-action"])
    assert (r.status_code, r.json()["error"]) == (400, "Sequence component does not exist.")
    r = put_sequence(emu, uname(), ["/_/echo"] * 51)
    assert (r.status_code, r.json()["error"]) == (400, "Too many actions in the sequence.")
    assert put_sequence(emu, uname(), ["/_/echo"] * 50).status_code == 200


def test_sequence_may_not_refer_to_itself(emu, uname):
    a, b = uname("a"), uname("b")
    put_sequence(emu, a, ["/_/echo"])
    put_sequence(emu, b, [f"/_/{a}"])
    r = put_sequence(emu, a, [f"/_/{b}"], overwrite=True)
    assert (r.status_code, r.json()["error"]) == (400, "Sequence may not refer to itself.")
    r = put_sequence(emu, a, [f"/_/{a}"], overwrite=True)
    assert r.status_code == 400


def test_sequence_stores_components_as_actions_parameter(emu):
    doc = emu.api("GET", "/namespaces/_/actions/hello-sequence").json()
    assert doc["exec"] == {"kind": "sequence", "components": ["/guest/echo", "/guest/hello"]}
    assert {"key": "_actions", "value": ["/guest/echo", "/guest/hello"]} in doc["parameters"]


def test_fire_with_active_rule_is_202_and_records_rule_lines(emu):
    r = emu.api("POST", "/namespaces/_/triggers/ping", json={"hello": "rule"})
    assert r.status_code == 202
    trigger_id = r.json()["activationId"]
    assert r.headers["x-openwhisk-activation-id"] == trigger_id
    record = poll_activation(emu, trigger_id)
    assert record["name"] == "ping"
    assert record["response"]["result"] == {"hello": "rule"}
    assert "end" not in record and "duration" not in record
    lines = [json.loads(line) for line in record["logs"]]
    assert len(lines) == 1
    line = lines[0]
    assert {k: line[k] for k in ("rule", "action", "statusCode", "success")} == {
        "rule": "guest/ping-rule", "action": "guest/echo", "statusCode": 0, "success": True}
    echoed = poll_activation(emu, line["activationId"])
    result = echoed["response"]["result"]
    assert result["hello"] == "rule"
    assert "authorization" not in result["__ow_headers"]


def test_fire_without_active_rule_is_204(emu, uname):
    r = emu.api("POST", "/namespaces/_/triggers/lonely", json={})
    assert r.status_code == 204
    assert r.content == b""
    trig, rule = uname("trig"), uname("rule")
    emu.api("PUT", f"/namespaces/_/triggers/{trig}", json={})
    emu.api("PUT", f"/namespaces/_/rules/{rule}", json={"trigger": trig, "action": "echo"})
    emu.api("POST", f"/namespaces/_/rules/{rule}", json={"status": "inactive"})
    assert emu.api("POST", f"/namespaces/_/triggers/{trig}", json={}).status_code == 204


def test_rule_whose_action_is_gone_logs_an_error_line(emu, uname):
    trig, rule, action = uname("trig"), uname("rule"), uname("act")
    put_action(emu, action)
    emu.api("PUT", f"/namespaces/_/triggers/{trig}", json={})
    emu.api("PUT", f"/namespaces/_/rules/{rule}", json={"trigger": trig, "action": action})
    emu.api("DELETE", f"/namespaces/_/actions/{action}")
    r = emu.api("POST", f"/namespaces/_/triggers/{trig}", json={})
    assert r.status_code == 202
    line = json.loads(poll_activation(emu, r.json()["activationId"])["logs"][0])
    assert line["statusCode"] == 1 and line["success"] is False
    assert line["error"] == "The requested resource does not exist."


def test_fire_unknown_trigger_is_404(emu):
    assert emu.api("POST", "/namespaces/_/triggers/nope-none", json={}).status_code == 404
