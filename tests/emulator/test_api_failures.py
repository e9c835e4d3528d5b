"""Every failure mode through the HTTP API: 502 with OpenWhisk's developer-error messages."""

from __future__ import annotations

import pytest

from tests.emulator.conftest import annotations, poll_activation, put_action

CASES = {
    "crash": ("import os\ndef main(args):\n    os._exit(3)\n",
              "The action did not produce a valid response and exited unexpectedly."),
    "exit": ("import sys\ndef main(args):\n    sys.exit(0)\n",
             "The action did not produce a valid response and exited unexpectedly."),
    "nonjson": ("def main(args):\n    return 'just a string'\n",
                "The action did not produce a valid JSON or JSON Array response"),
    "memory": ("def main(args):\n    blocks = []\n    while True:\n"
               "        blocks.append(bytearray(16 * 1024 * 1024))\n",
               "The action exhausted its memory and was aborted."),
    "syntax": ("def main(args) return 1\n", "The action failed during initialization"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_failing_action_is_502_developer_error_and_the_emulator_carries_on(emu, uname, case):
    code, message = CASES[case]
    name = uname(case)
    put_action(emu, name, code, limits={"memory": 128, "timeout": 20000})
    r = emu.api("POST", f"/namespaces/_/actions/{name}", params={"blocking": "true"})
    assert r.status_code == 502
    response = r.json()["response"]
    assert response["status"] == "action developer error"
    assert response["success"] is False
    assert response["result"]["error"].startswith(message)
    assert annotations(r.json())["timeout"] is False
    again = emu.api("POST", "/namespaces/_/actions/hello",
                    params={"blocking": "true", "result": "true"})
    assert again.json() == {"message": "Hello World"}


def test_huge_output_is_truncated_at_the_log_limit(emu, uname):
    name = uname("chatty")
    code = "def main(args):\n    print('x' * (3 * 1024 * 1024))\n    return {'done': True}\n"
    put_action(emu, name, code, limits={"logs": 1})
    r = emu.api("POST", f"/namespaces/_/actions/{name}", params={"blocking": "true"})
    assert r.status_code == 200
    record = poll_activation(emu, r.json()["activationId"])
    assert record["logs"][-1].endswith(
        "Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes.")
    assert sum(len(line) for line in record["logs"]) < 1.2 * 1024 * 1024


def test_warm_process_is_reused_and_only_the_cold_start_has_init_time(emu, uname):
    name = uname("warm")
    code = ("import os\ncount = 0\ndef main(args):\n    global count\n    count += 1\n"
            "    return {'pid': os.getpid(), 'count': count}\n")
    put_action(emu, name, code)
    first = emu.api("POST", f"/namespaces/_/actions/{name}", params={"blocking": "true"}).json()
    second = emu.api("POST", f"/namespaces/_/actions/{name}", params={"blocking": "true"}).json()
    assert "initTime" in annotations(first)
    assert "initTime" not in annotations(second)
    assert second["response"]["result"] == {"pid": first["response"]["result"]["pid"],
                                            "count": 2}
