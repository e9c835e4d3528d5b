"""The /whisk.system catalog: utils and samples as real actions, sharing, and the 403s."""

from __future__ import annotations

import pytest

from tests.emulator.conftest import put_sequence


def system(emu, action, body=None):
    r = emu.api("POST", f"/namespaces/whisk.system/actions/{action}",
                params={"blocking": "true", "result": "true"}, json=body or {})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize(("action", "body", "expected"), [
    ("utils/echo", {"a": 1}, {"a": 1}),
    ("utils/sort", {"lines": ["pear", "apple", "fig"]},
     {"length": 3, "lines": ["apple", "fig", "pear"]}),
    ("utils/sort", {}, {"length": 0, "lines": []}),
    ("utils/head", {"lines": ["a", "b", "c"], "num": 2}, {"lines": ["a", "b"]}),
    ("utils/head", {"lines": ["a", "b"]}, {"lines": ["a"]}),
    ("utils/cat", {"lines": ["a", "b"]}, {"lines": ["a", "b"], "payload": "a\nb"}),
    ("utils/split", {"payload": "a\nb"}, {"lines": ["a", "b"]}),
    ("utils/split", {"payload": "a,b", "separator": ","}, {"lines": ["a", "b"]}),
    ("utils/smash", {"fieldName": "all", "x": 1}, {"all": {"x": 1}}),
    ("utils/namespace", {}, {"namespace": "guest"}),
    ("samples/greeting", {"name": "Ann", "place": "Oslo"}, {"payload": "Hello, Ann from Oslo!"}),
    ("samples/wordCount", {"payload": "one two three"}, {"count": 3}),
])
def test_catalog_actions(emu, action, body, expected):
    assert system(emu, action, body) == expected


def test_date_and_hosturl(emu):
    assert system(emu, "utils/date")["date"].endswith("Z")
    assert system(emu, "utils/hosturl") == {"url": emu.url}


def test_the_catalog_is_listed_as_shared_packages(emu):
    shared = emu.api("GET", "/namespaces/whisk.system/packages").json()
    assert {"utils", "samples", "alarms"} <= {p["name"] for p in shared}
    assert all(p["publish"] for p in shared)
    utils = emu.api("GET", "/namespaces/whisk.system/packages/utils").json()
    assert {a["name"] for a in utils["actions"]} == {
        "echo", "cat", "sort", "head", "split", "date", "hosturl", "namespace", "smash"}
    alarms = emu.api("GET", "/namespaces/whisk.system/packages/alarms").json()
    assert {f["name"] for f in alarms["feeds"]} == {"alarm", "once", "interval"}
    # Our own listings stay our own.
    ours = emu.api("GET", "/namespaces/_/packages").json()
    assert all(p["namespace"] == "guest" for p in ours)
    actions = emu.api("GET", "/namespaces/_/actions", params={"limit": 0}).json()
    assert all(a["namespace"].split("/")[0] == "guest" for a in actions)


def test_the_catalog_cannot_be_changed_by_a_guest(emu):
    r = emu.api("PUT", "/namespaces/whisk.system/actions/utils/echo", params={"overwrite": "true"},
                json={"exec": {"kind": "python:3", "code": "def main(a): return {}"}})
    assert r.status_code == 403
    assert emu.api("DELETE", "/namespaces/whisk.system/packages/utils").status_code == 403


def test_references_into_what_one_cannot_read_are_403_naming_the_package(emu, uname):
    expected = "The supplied authentication is not authorized to access 'whisk.system/nope'."
    r = emu.api("POST", "/namespaces/whisk.system/actions/nope/echo")
    assert (r.status_code, r.json()["error"]) == (403, expected)
    r = put_sequence(emu, uname("seq"), ["/whisk.system/nope/echo"])
    assert (r.status_code, r.json()["error"]) == (403, expected)
    trigger = uname("trig")
    emu.api("PUT", f"/namespaces/_/triggers/{trigger}", json={})
    r = emu.api("PUT", f"/namespaces/_/rules/{uname('rule')}",
                json={"trigger": f"/_/{trigger}", "action": "/whisk.system/nope/echo"})
    assert (r.status_code, r.json()["error"]) == (403, expected)
    r = emu.api("PUT", f"/namespaces/_/packages/{uname('bind')}",
                json={"binding": {"namespace": "whisk.system", "name": "nope"}})
    assert (r.status_code, r.json()["error"]) == (403, expected)
    # Shared ones are fine to reference; a missing action in them is then "does not exist".
    assert put_sequence(emu, uname("seq"), ["/whisk.system/utils/echo"]).status_code == 200
    r = put_sequence(emu, uname("seq"), ["/whisk.system/utils/nope"])
    assert (r.status_code, r.json()["error"]) == (400, "Sequence component does not exist.")


def test_a_binding_of_a_shared_package(emu, uname):
    bind = uname("utils")
    r = emu.api("PUT", f"/namespaces/_/packages/{bind}", json={
        "binding": {"namespace": "whisk.system", "name": "utils"},
        "parameters": [{"key": "fieldName", "value": "smashed"}]})
    assert r.status_code == 200, r.text
    r = emu.api("POST", f"/namespaces/_/actions/{bind}/smash",
                params={"blocking": "true", "result": "true"}, json={"a": 1})
    assert r.json() == {"smashed": {"a": 1}}
