"""The emulator's action runtime running python:3 actions in real processes (plain threads)."""

from __future__ import annotations

import json
import os
import re
import shutil
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from openwhisk_emulator.runtime import MAX_RESULT_BYTES, ActionCode, Runtime

LOG_LINE = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (stdout|stderr): (.*)\Z", re.S)


def cold_start(outcome) -> bool:
    """The run started a new process: it measured a whole number of milliseconds of init."""
    return (isinstance(outcome.init_ms, int) and not isinstance(outcome.init_ms, bool)
            and outcome.init_ms >= 0)


def python_action(code: str, **limits) -> ActionCode:
    limits.setdefault("timeout_ms", 10000)
    return ActionCode(
        key=f"guest/{uuid.uuid4().hex[:8]}@0.0.1", kind="python:3",
        code=textwrap.dedent(code), **limits,
    )


def texts(logs: list[str], stream: str | None = None) -> list[str]:
    """The text of each log line (of one stream), after checking every line's shape."""
    out = []
    for line in logs:
        match = LOG_LINE.match(line)
        assert match, f"not an OpenWhisk log line: {line!r}"
        if stream is None or match.group(1) == stream:
            out.append(match.group(2))
    return out


@pytest.fixture
def runtime():
    rt = Runtime(max_warm_per_action=2, idle_seconds=60)
    yield rt
    rt.close()


PID_ACTION = """
import os
def main(args):
    return {"pid": os.getpid()}
"""


def run(rt: Runtime, action: ActionCode, params: dict | None = None, **env):
    return rt.run(action, params or {}, activation_env=env)


# --- results ---------------------------------------------------------------------------------


def test_python_action_result_and_printed_line_come_back_separately(runtime):
    action = python_action("""
        def main(args):
            print("hello from", args["name"])
            return {"message": "Hello " + args.get("name", "World")}
    """)
    outcome = run(runtime, action, {"name": "Bob"})
    assert outcome.status == "success"
    assert outcome.result == {"message": "Hello Bob"}
    assert texts(outcome.logs) == ["hello from Bob"]
    assert outcome.logs[0].split(" ")[1] == "stdout:"
    assert outcome.size == len(json.dumps({"message": "Hello Bob"}))
    assert outcome.timed_out is False
    assert outcome.start_ms <= outcome.end_ms


def test_python_action_entry_point_is_the_function_exec_main_names(runtime):
    action = python_action("def handler(args):\n    return {'via': 'handler'}\n", main="handler")
    assert run(runtime, action).result == {"via": "handler"}


def test_python_array_result_is_a_success(runtime):
    outcome = run(runtime, python_action("def main(args):\n    return [1, 'two', {'3': 3}]\n"))
    assert (outcome.status, outcome.result) == ("success", [1, "two", {"3": 3}])


def test_result_with_top_level_error_is_an_application_error(runtime):
    outcome = run(runtime, python_action("def main(args):\n    return {'error': 'no such user'}\n"))
    assert (outcome.status, outcome.result) == ("application error", {"error": "no such user"})


def test_python_exception_is_an_application_error_with_the_traceback_on_stderr(runtime):
    # OpenWhisk's python runtime catches the exception and answers {"error": str(exc)}.
    outcome = run(runtime, python_action("def main(args):\n    raise ValueError('boom')\n"))
    assert (outcome.status, outcome.result) == ("application error", {"error": "boom"})
    stderr = texts(outcome.logs, "stderr")
    assert stderr[0] == "Traceback (most recent call last):"
    assert stderr[-1] == "ValueError: boom"
    assert not any("zygote" in line for line in stderr), "runner frames leak into the traceback"


def test_unicode_survives_params_result_and_logs(runtime):
    action = python_action("""
        def main(args):
            print(args["text"])
            return {"echo": args["text"]}
    """)
    outcome = run(runtime, action, {"text": "héllo wörld ✓"})
    assert outcome.result == {"echo": "héllo wörld ✓"}
    assert texts(outcome.logs) == ["héllo wörld ✓"]


def test_printed_json_cannot_forge_the_result(runtime):
    action = python_action("""
        import sys
        def main(args):
            print('{"status": "result", "size": 15}')
            print('{"forged": true}')
            sys.stderr.write('{"ok": true}\\n')
            return {"real": True}
    """)
    outcome = run(runtime, action)
    assert outcome.result == {"real": True}
    assert texts(outcome.logs, "stdout") == ['{"status": "result", "size": 15}', '{"forged": true}']
    assert texts(outcome.logs, "stderr") == ['{"ok": true}']


def test_action_and_activation_env_vars_reach_the_action(runtime):
    action = ActionCode(
        key="guest/envs@0.0.1", kind="python:3",
        code="import os\ndef main(args):\n"
        "    return {k: os.environ.get(k) for k in sorted(os.environ) if k.startswith('__OW_')}\n",
        env=(("__OW_API_HOST", "http://127.0.0.1:3233"), ("__OW_NAMESPACE", "guest"),
             ("__OW_ACTION_NAME", "/guest/envs"), ("__OW_ACTION_VERSION", "0.0.1"),
             ("__OW_API_KEY", "uuid:key")),
    )
    first = run(runtime, action, __OW_ACTIVATION_ID="a" * 32, __OW_DEADLINE="1700000000000",
                __OW_TRANSACTION_ID="tx1")
    assert first.result == {
        "__OW_ACTION_NAME": "/guest/envs", "__OW_ACTION_VERSION": "0.0.1",
        "__OW_ACTIVATION_ID": "a" * 32, "__OW_API_HOST": "http://127.0.0.1:3233",
        "__OW_API_KEY": "uuid:key", "__OW_DEADLINE": "1700000000000",
        "__OW_NAMESPACE": "guest", "__OW_TRANSACTION_ID": "tx1",
    }
    second = run(runtime, action, __OW_ACTIVATION_ID="b" * 32, __OW_DEADLINE="1700000001000",
                 __OW_TRANSACTION_ID="tx2")
    assert second.init_ms is None
    assert second.result["__OW_ACTIVATION_ID"] == "b" * 32
    assert second.result["__OW_TRANSACTION_ID"] == "tx2"


def test_action_does_not_see_the_emulators_environment(runtime, monkeypatch):
    monkeypatch.setenv("OWACTION_SECRET_OF_THE_EMULATOR", "do-not-leak")
    fresh = Runtime()
    try:
        outcome = run(fresh, python_action(
            "import os\ndef main(args):\n    return {'seen': os.environ.get("
            "'OWACTION_SECRET_OF_THE_EMULATOR')}\n"))
    finally:
        fresh.close()
    assert outcome.result == {"seen": None}


def test_kinds_lists_python_always_and_nodejs_only_with_node_on_path(runtime):
    expected = ["python:3"] + (["nodejs:20", "nodejs:default"] if shutil.which("node") else [])
    assert runtime.kinds() == expected


def test_unknown_kind_is_a_whisk_internal_error(runtime):
    action = ActionCode(key="guest/j@1", kind="java:8", code="class A {}")
    outcome = run(runtime, action)
    assert outcome.status == "whisk internal error"
    assert outcome.result == {"error": "The kind 'java:8' is not supported."}


# --- warm and cold ---------------------------------------------------------------------------


def test_cold_start_records_init_time_and_the_warm_process_is_reused(runtime):
    action = python_action(PID_ACTION)
    cold = run(runtime, action)
    warm = run(runtime, action)
    assert cold_start(cold)
    assert warm.init_ms is None
    assert warm.result["pid"] == cold.result["pid"]
    assert cold.result["pid"] != os.getpid()


def test_a_new_action_version_never_reuses_the_old_versions_process(runtime):
    first = python_action(PID_ACTION)
    second = ActionCode(key=first.key.replace("@0.0.1", "@0.0.2"), kind="python:3",
                        code=first.code)
    a = run(runtime, first)
    b = run(runtime, second)
    assert cold_start(b)
    assert a.result["pid"] != b.result["pid"]


def test_concurrent_runs_of_one_action_use_several_processes_and_the_pool_is_capped(runtime):
    action = python_action("""
        import os, time
        def main(args):
            time.sleep(1)  # long enough that all six overlap even on a busy machine
            return {"pid": os.getpid(), "n": args["n"]}
    """)
    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda n: run(runtime, action, {"n": n}), range(6)))
    assert [o.result["n"] for o in outcomes] == list(range(6))
    assert len({o.result["pid"] for o in outcomes}) == 6
    assert all(cold_start(o) for o in outcomes)
    assert runtime.warm_count(action.key) == 2  # max_warm_per_action


def test_fifty_concurrent_runs_on_threads_all_succeed(runtime):
    action = python_action("""
        import time
        def main(args):
            time.sleep(0.5)
            return {"n": args["n"]}
    """)
    with ThreadPoolExecutor(50) as pool:
        outcomes = list(pool.map(lambda n: run(runtime, action, {"n": n}), range(50)))
    assert [(o.status, o.result) for o in outcomes] == [("success", {"n": n}) for n in range(50)]


def test_idle_warm_processes_are_reaped_after_idle_seconds():
    rt = Runtime(max_warm_per_action=2, idle_seconds=0.3)
    try:
        action = python_action(PID_ACTION)
        first = run(rt, action)
        assert rt.warm_count(action.key) == 1
        deadline = time.monotonic() + 10
        while rt.warm_count(action.key) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.warm_count(action.key) == 0
        assert _gone(first.result["pid"])
        again = run(rt, action)
        assert cold_start(again)
        assert again.result["pid"] != first.result["pid"]
    finally:
        rt.close()


def test_close_kills_every_action_process():
    rt = Runtime()
    pid = run(rt, python_action(PID_ACTION)).result["pid"]
    os.kill(pid, 0)  # alive: raises ProcessLookupError otherwise
    rt.close()
    assert _gone(pid)


def _gone(pid: int, wait: float = 5.0) -> bool:
    """Whether the process ended (and was reaped) within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


# --- failure modes ---------------------------------------------------------------------------


def test_infinite_loop_is_killed_at_the_time_limit(runtime):
    action = python_action(
        "def main(args):\n    print('spinning')\n    while True:\n        pass\n", timeout_ms=300
    )
    began = time.monotonic()
    outcome = run(runtime, action)
    assert time.monotonic() - began < 10
    assert outcome.status == "action developer error"
    assert outcome.result == {"error": "The action exceeded its time limits of 300 milliseconds."}
    assert outcome.timed_out is True
    assert texts(outcome.logs) == ["spinning"]
    assert outcome.end_ms - outcome.start_ms >= 300
    again = run(runtime, action)
    assert cold_start(again), "the killed process must not be reused"


def test_infinite_loop_at_load_time_exceeds_the_limit_during_initialization(runtime):
    outcome = run(runtime, python_action("while True:\n    pass\n", timeout_ms=200))
    assert outcome.status == "action developer error"
    assert outcome.result == {
        "error": "The action exceeded its time limits of 200 milliseconds during initialization."
    }
    assert outcome.timed_out is True
    assert outcome.init_ms >= 200
    # No run happened: the run "starts" where init ended, so start - initTime is the init start.
    assert outcome.start_ms - outcome.init_ms <= outcome.end_ms - 200


@pytest.mark.parametrize(
    "body",
    ["import sys\n    sys.exit(3)", "import os\n    os._exit(0)", "import os\n    os.abort()"],
    ids=["sys.exit", "os._exit", "abort"],
)
def test_exit_or_crash_during_run_is_a_developer_error(runtime, body):
    action = python_action(f"def main(args):\n    print('before')\n    {body}\n")
    outcome = run(runtime, action)
    assert outcome.status == "action developer error"
    assert outcome.result == {
        "error": "The action did not produce a valid response and exited unexpectedly."
    }
    assert outcome.timed_out is False
    if "os._exit" not in body and "abort" not in body:
        assert texts(outcome.logs) == ["before"]
    assert cold_start(run(runtime, action))


def test_exit_during_initialization_is_a_developer_error(runtime):
    outcome = run(runtime, python_action("import sys\nsys.exit(1)\n"))
    assert outcome.result == {"error": "The action did not initialize and exited unexpectedly."}
    assert outcome.status == "action developer error"


def test_syntax_error_fails_initialization_with_the_reason(runtime):
    outcome = run(runtime, python_action("def main(args) return 1\n"))
    assert outcome.status == "action developer error"
    assert outcome.result["error"].startswith(
        "The action failed during initialization: SyntaxError: "
    )
    assert cold_start(outcome)
    assert texts(outcome.logs, "stderr")[-1].startswith("SyntaxError:")


def test_missing_entry_function_fails_initialization(runtime):
    outcome = run(runtime, python_action("def other(args):\n    return {}\n"))
    assert outcome.result == {
        "error": "The action failed during initialization: "
        "NameError: the action defines no function 'main'"
    }


def test_allocating_past_the_memory_limit_exhausts_memory(runtime):
    action = python_action("""
        def main(args):
            hoard = []
            while True:
                hoard.append(bytearray(10 * 1024 * 1024))
    """, memory_mb=128)
    outcome = run(runtime, action)
    assert outcome.status == "action developer error"
    assert outcome.result == {"error": "The action exhausted its memory and was aborted."}
    assert cold_start(run(runtime, action))


def test_memory_within_the_limit_is_fine(runtime):
    action = python_action(
        "def main(args):\n    block = bytearray(60 * 1024 * 1024)\n    return {'n': len(block)}\n",
        memory_mb=256,
    )
    assert run(runtime, action).result == {"n": 60 * 1024 * 1024}


@pytest.mark.parametrize(
    ("returned", "produced"),
    [("'hello'", '"hello"'), ("None", "null"), ("42", "42"), ("{1, 2}", "{1, 2}"),
     ("{'a': float('nan')}", '{"a": NaN}')],
    ids=["string", "None", "number", "set", "NaN"],
)
def test_result_that_is_not_a_json_object_or_array_is_a_developer_error(
    runtime, returned, produced
):
    action = python_action(f"def main(args):\n    return {returned}\n")
    outcome = run(runtime, action)
    assert outcome.status == "action developer error"
    assert outcome.result == {
        "error": f"The action did not produce a valid JSON or JSON Array response: {produced}"
    }
    assert cold_start(run(runtime, action)), "a failed process is never reused"


def test_result_over_one_megabyte_is_an_application_error_with_the_truncated_response(runtime):
    action = python_action("def main(args):\n    return {'blob': 'a' * 2000000}\n")
    outcome = run(runtime, action)
    size = len(json.dumps({"blob": "a" * 2000000}))
    assert outcome.status == "application error"
    prefix = (
        f"The action produced a response that exceeded the allowed length: {size} > 1048576 "
        'bytes. The truncated response was: {"blob": "aaa'
    )
    assert outcome.result["error"].startswith(prefix)
    assert len(outcome.result["error"]) < MAX_RESULT_BYTES + 200
    assert outcome.size == size


def test_result_of_exactly_the_limit_is_accepted(runtime):
    padding = MAX_RESULT_BYTES - len(json.dumps({"b": ""}))
    action = python_action(f"def main(args):\n    return {{'b': 'x' * {padding}}}\n")
    outcome = run(runtime, action)
    assert outcome.status == "success"
    assert outcome.size == MAX_RESULT_BYTES


def test_printing_megabytes_truncates_logs_with_the_openwhisk_warning(runtime):
    action = python_action("""
        def main(args):
            line = "y" * 99
            for _ in range(60000):
                print(line)
            return {"done": True}
    """, logs_mb=1)
    outcome = run(runtime, action)
    assert outcome.status == "success"
    assert outcome.result == {"done": True}
    lines = texts(outcome.logs)
    assert lines[-1] == (
        "Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes."
    )
    assert outcome.logs[-1].split(" ")[1] == "stderr:"
    kept = lines[:-1]
    assert len(kept) == 1048576 // 100  # 99 characters and a newline each
    assert set(kept) == {"y" * 99}


def test_one_endless_line_is_truncated_without_being_held_in_memory(runtime):
    action = python_action("""
        import sys
        def main(args):
            chunk = "z" * 65536
            for _ in range(200):
                sys.stdout.write(chunk)
            return {"done": True}
    """, logs_mb=1)
    outcome = run(runtime, action)
    assert outcome.result == {"done": True}
    assert texts(outcome.logs) == [
        "Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes."
    ]


def test_log_limit_zero_keeps_only_the_warning(runtime):
    action = python_action("def main(args):\n    print('x')\n    return {}\n", logs_mb=0)
    outcome = run(runtime, action)
    assert texts(outcome.logs) == [
        "Logs were truncated because the total bytes size exceeds the limit of 0 bytes."
    ]


def test_output_without_a_final_newline_is_still_a_line(runtime):
    action = python_action(
        "import sys\ndef main(args):\n    sys.stdout.write('no newline')\n    return {}\n"
    )
    assert texts(run(runtime, action).logs) == ["no newline"]


def test_a_failing_activation_does_not_harm_others_running_beside_it(runtime):
    looping = python_action("def main(args):\n    while True:\n        pass\n", timeout_ms=500)
    crashing = python_action("import os\ndef main(args):\n    os._exit(1)\n")
    healthy = python_action(
        "import time\ndef main(args):\n    time.sleep(0.3)\n    return {'ok': args['n']}\n"
    )
    with ThreadPoolExecutor(8) as pool:
        bad = [pool.submit(run, runtime, looping), pool.submit(run, runtime, crashing)]
        good = [pool.submit(run, runtime, healthy, {"n": n}) for n in range(6)]
        assert [f.result().result for f in good] == [{"ok": n} for n in range(6)]
        assert [f.result().status for f in bad] == ["action developer error"] * 2
    assert run(runtime, healthy, {"n": 9}).result == {"ok": 9}
