"""Package bindings: invoking, reading and listing through them, with OpenWhisk's merge order."""

from __future__ import annotations

import time

from tests.emulator.conftest import annotations, poll_activation, put_action, put_sequence

ECHO_PY = "def main(args):\n    return {k: v for k, v in args.items() if not k.startswith('__')}\n"


def kv(**pairs):
    return [{"key": k, "value": v} for k, v in pairs.items()]


def make_bound(emu, uname):
    """A package ``pkg`` with an echo action and a binding ``bnd`` of it; their names."""
    pkg, bnd = uname("pkg"), uname("bnd")
    r = emu.api("PUT", f"/namespaces/_/packages/{pkg}",
                json={"parameters": kv(p="package", pb="package", pa="package")})
    assert r.status_code == 200, r.text
    put_action(emu, f"{pkg}/echo", ECHO_PY, parameters=kv(pa="action", a="action", ai="action"))
    r = emu.api("PUT", f"/namespaces/_/packages/{bnd}", json={
        "binding": {"namespace": "_", "name": pkg},
        "parameters": kv(pb="binding", b="binding", pa="binding")})
    assert r.status_code == 200, r.text
    return pkg, bnd


def test_invoking_through_a_binding_merges_package_binding_action_and_request(emu, uname):
    pkg, bnd = make_bound(emu, uname)
    r = emu.api("POST", f"/namespaces/_/actions/{bnd}/echo", params={"blocking": "true"},
                json={"ai": "invoke", "i": "invoke"})
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["response"]["result"] == {
        "p": "package", "pb": "binding", "b": "binding",
        "pa": "action", "a": "action", "ai": "invoke", "i": "invoke",
    }
    notes = annotations(record)
    assert notes["binding"] == f"guest/{bnd}"
    assert notes["path"] == f"guest/{pkg}/echo"
    # The package itself still answers without the binding's parameters.
    direct = emu.api("POST", f"/namespaces/_/actions/{pkg}/echo",
                     params={"blocking": "true", "result": "true"}, json={})
    assert direct.json() == {"p": "package", "pb": "package", "pa": "action", "a": "action",
                             "ai": "action"}


def test_reading_and_listing_through_a_binding(emu, uname):
    pkg, bnd = make_bound(emu, uname)
    got = emu.api("GET", f"/namespaces/_/actions/{bnd}/echo").json()
    assert got["name"] == "echo"
    merged = {p["key"]: p["value"] for p in got["parameters"]}
    assert merged["pb"] == "binding" and merged["pa"] == "action" and merged["p"] == "package"
    listed = emu.api("GET", f"/namespaces/_/actions/{bnd}/").json()
    assert [a["name"] for a in listed] == ["echo"]
    doc = emu.api("GET", f"/namespaces/_/packages/{bnd}").json()
    assert [a["name"] for a in doc["actions"]] == ["echo"]
    assert emu.api("GET", f"/namespaces/_/actions/{bnd}/nope").status_code == 404


def test_deleting_a_binding_leaves_the_package_alone(emu, uname):
    pkg, bnd = make_bound(emu, uname)
    assert emu.api("DELETE", f"/namespaces/_/packages/{bnd}").status_code == 200
    assert emu.api("GET", f"/namespaces/_/actions/{pkg}/echo").status_code == 200
    assert emu.api("POST", f"/namespaces/_/actions/{bnd}/echo").status_code == 404


def test_sequences_and_rules_reach_actions_through_a_binding(emu, uname):
    _pkg, bnd = make_bound(emu, uname)
    seq = uname("seq")
    assert put_sequence(emu, seq, [f"/_/{bnd}/echo"]).status_code == 200
    r = emu.api("POST", f"/namespaces/_/actions/{seq}", params={"blocking": "true"},
                json={"i": "seq"})
    record = r.json()
    assert record["response"]["result"]["b"] == "binding"
    assert record["response"]["result"]["i"] == "seq"
    # A blocking sequence answer carries its components' ids in logs.
    assert len(record["logs"]) == 1
    component = poll_activation(emu, record["logs"][0])
    assert annotations(component)["binding"] == f"guest/{bnd}"

    trigger, rule = uname("trig"), uname("rule")
    assert emu.api("PUT", f"/namespaces/_/triggers/{trigger}", json={}).status_code == 200
    r = emu.api("PUT", f"/namespaces/_/rules/{rule}",
                json={"trigger": f"/_/{trigger}", "action": f"/_/{bnd}/echo"})
    assert r.status_code == 200, r.text
    fired = emu.api("POST", f"/namespaces/_/triggers/{trigger}", json={"i": "fired"})
    assert fired.status_code == 202
    deadline = time.monotonic() + 20
    while True:
        runs = [a for a in emu.activations(name=f"{_pkg}/echo")
                if a["response"]["result"].get("i") == "fired"]
        if runs:
            break
        assert time.monotonic() < deadline, "the rule's action never ran"
        time.sleep(0.1)
    assert runs[0]["response"]["result"]["b"] == "binding"


def test_a_rule_naming_a_missing_action_says_which(emu, uname):
    trigger = uname("trig")
    emu.api("PUT", f"/namespaces/_/triggers/{trigger}", json={})
    r = emu.api("PUT", f"/namespaces/_/rules/{uname('rule')}",
                json={"trigger": f"/_/{trigger}", "action": "/_/nope"})
    assert (r.status_code, r.json()["error"]) == (400, "action /guest/nope does not exist")
