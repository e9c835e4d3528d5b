"""The official OpenWhisk JS client (npm ``openwhisk``), unchanged, runs a scenario against us."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest

from tests.procs import ROOT

JS_DIR = ROOT / "tests" / "js"


def _missing() -> str | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are needed for the official JS client test"
    if not (JS_DIR / "node_modules" / "openwhisk").is_dir():
        return "tests/js/node_modules is missing: run `make test` (or `npm install` in tests/js)"
    return None


@pytest.mark.node
@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_official_js_client_scenario(emu):
    env = {**os.environ, "OW_APIHOST": emu.url, "OW_AUTH": emu.auth,
           "OW_SUFFIX": uuid.uuid4().hex[:8]}
    done = subprocess.run(["node", str(JS_DIR / "scenario.js")], cwd=JS_DIR, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "createdVersion": "0.0.1",
        "blockingResult": {"message": "Hello JS"},
        "polledResult": {"message": "Hello Later"},
        "polledSameId": True,
        "listed": True,
        "ruleResult": {"message": "Hello Trigger"},
        "webStatus": 200,
        "webBody": {"message": "Hello Web"},
    }
