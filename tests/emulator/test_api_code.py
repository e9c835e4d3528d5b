"""Action code as OpenWhisk takes it: zips detected and run, empty code, ``:default`` kinds."""

from __future__ import annotations

import base64
import io
import json
import shutil
import zipfile

import pytest

from tests.emulator.conftest import annotations, put_action

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH")


def zipped(files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return base64.b64encode(buffer.getvalue()).decode()


def invoke(emu, name, body=None):
    return emu.api("POST", f"/namespaces/_/actions/{name}", params={"blocking": "true"},
                   json=body or {})


def test_a_python_zip_is_detected_and_runs_its_main_module(emu, uname):
    name = uname("pyzip")
    code = zipped({
        "__main__.py": "from helper import shout\n\ndef main(args):\n"
                       "    return {'said': shout(args.get('word', 'hi'))}\n",
        "helper.py": "def shout(word):\n    return word.upper() + '!'\n",
    })
    created = put_action(emu, name, code)  # no "binary" flag, as the JS client sends it
    assert created["exec"]["binary"] is True
    assert created["exec"]["kind"] == "python:3"
    r = invoke(emu, name, {"word": "zip"})
    assert r.status_code == 200, r.text
    assert r.json()["response"]["result"] == {"said": "ZIP!"}
    listed = [a for a in emu.api("GET", "/namespaces/_/actions", params={"limit": 0}).json()
              if a["name"] == name]
    assert listed[0]["exec"] == {"binary": True}
    # A second version is unpacked anew.
    code2 = zipped({"__main__.py": "def main(args):\n    return {'v': 2}\n"})
    emu.api("PUT", f"/namespaces/_/actions/{name}", params={"overwrite": "true"},
            json={"exec": {"kind": "python:3", "code": code2}})
    assert invoke(emu, name).json()["response"]["result"] == {"v": 2}


@needs_node
def test_a_nodejs_zip_runs_the_module_package_json_names(emu, uname):
    name = uname("jszip")
    code = zipped({
        "package.json": json.dumps({"main": "lib/app.js"}),
        "lib/app.js": "const t = require('./twice');\n"
                      "exports.main = (p) => ({twice: t(p.n)});\n",
        "lib/twice.js": "module.exports = (n) => 2 * n;\n",
    })
    created = put_action(emu, name, code, kind="nodejs:default")
    assert created["exec"]["binary"] is True
    assert invoke(emu, name, {"n": 21}).json()["response"]["result"] == {"twice": 42}
    index = uname("jsindex")
    put_action(emu, index, zipped({"index.js": "exports.main = (p) => p;"}), kind="nodejs:20")
    assert invoke(emu, index, {"a": 1}).json()["response"]["result"] == {"a": 1}


def test_base64_that_is_not_a_zip_fails_at_init(emu, uname):
    name = uname("notzip")
    assert put_action(emu, name, "abcdefgh")["exec"]["binary"] is True
    r = invoke(emu, name)
    assert r.status_code == 502
    error = r.json()["response"]["result"]["error"]
    assert error.startswith("The action failed during initialization: the code is not a valid zip")
    missing_main = uname("nomain")
    put_action(emu, missing_main, zipped({"other.py": "x = 1\n"}))
    r = invoke(emu, missing_main)
    assert "__main__.py" in r.json()["response"]["result"]["error"]


def test_empty_code_is_stored(emu, uname):
    name = uname("empty")
    created = put_action(emu, name, "")
    assert created["exec"] == {"kind": "python:3", "code": "", "binary": False}
    r = invoke(emu, name)
    assert r.status_code == 502
    assert "initialization" in r.json()["response"]["result"]["error"]


@pytest.mark.parametrize(("given", "stored"), [("python:default", "python:3"),
                                               pytest.param("nodejs:default", "nodejs:20",
                                                            marks=needs_node)])
def test_default_kinds_resolve_at_create_time(emu, uname, given, stored):
    created = put_action(emu, uname("kind"), "", kind=given)
    assert created["exec"]["kind"] == stored
    assert {a["key"]: a["value"] for a in created["annotations"]}["exec"] == stored


def test_a_blocking_atomic_answer_has_no_logs(emu, uname):
    name = uname("logs")
    put_action(emu, name, "def main(a):\n    print('hello')\n    return {}\n")
    record = invoke(emu, name).json()
    assert record["logs"] == []
    assert "kind" in annotations(record)
