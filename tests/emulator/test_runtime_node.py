"""The emulator's action runtime running nodejs actions in real node processes."""

from __future__ import annotations

import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from openwhisk_emulator.runtime import ActionCode, Runtime
from tests.emulator.test_runtime import texts

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH"),
]

HELLO = "function main(params) { return {message: 'Hello ' + (params.name || 'World')}; }"


def node_action(code: str, kind: str = "nodejs:20", **limits) -> ActionCode:
    limits.setdefault("timeout_ms", 10000)
    return ActionCode(key=f"guest/{uuid.uuid4().hex[:8]}@0.0.1", kind=kind, code=code, **limits)


@pytest.fixture
def runtime():
    rt = Runtime(max_warm_per_action=2, idle_seconds=60)
    yield rt
    rt.close()


def run(rt: Runtime, action: ActionCode, params: dict | None = None, **env):
    return rt.run(action, params or {}, activation_env=env)


@pytest.mark.parametrize("kind", ["nodejs:20", "nodejs:default"])
def test_waddlebot_hello_action_answers_with_and_without_a_name(runtime, kind):
    action = node_action(HELLO, kind=kind)
    named = run(runtime, action, {"name": "Bob"})
    assert (named.status, named.result) == ("success", {"message": "Hello Bob"})
    assert run(runtime, action).result == {"message": "Hello World"}


def test_promise_result_is_awaited(runtime):
    action = node_action(
        "function main(p) { return new Promise(r => setTimeout(() => r({late: p.n}), 50)); }"
    )
    assert run(runtime, action, {"n": 7}).result == {"late": 7}


def test_async_main_and_array_result(runtime):
    action = node_action("async function main(p) { return [1, 'two']; }")
    outcome = run(runtime, action)
    assert (outcome.status, outcome.result) == ("success", [1, "two"])


def test_undefined_result_is_an_empty_object(runtime):
    assert run(runtime, node_action("function main() { }")).result == {}


def test_entry_point_through_exports_module_exports_and_exec_main(runtime):
    via_exports = node_action("exports.main = function (p) { return {via: 'exports'}; };")
    via_module = node_action("module.exports = function (p) { return {via: 'module'}; };")
    via_name = ActionCode(key="guest/named@1", kind="nodejs:20", main="handler",
                          code="function handler(p) { return {via: 'handler'}; }")
    assert run(runtime, via_exports).result == {"via": "exports"}
    assert run(runtime, via_module).result == {"via": "module"}
    assert run(runtime, via_name).result == {"via": "handler"}


def test_console_lines_become_stdout_and_stderr_log_lines(runtime):
    action = node_action(
        "function main() { console.log('to out'); console.error('to err'); return {}; }"
    )
    outcome = run(runtime, action)
    assert texts(outcome.logs, "stdout") == ["to out"]
    assert texts(outcome.logs, "stderr") == ["to err"]


def test_env_vars_reach_the_action_and_change_per_activation(runtime):
    action = ActionCode(
        key="guest/nodeenv@1", kind="nodejs:20", env=(("__OW_NAMESPACE", "guest"),),
        code="function main() { return {ns: process.env.__OW_NAMESPACE,"
        " id: process.env.__OW_ACTIVATION_ID, pid: process.pid}; }",
    )
    first = run(runtime, action, __OW_ACTIVATION_ID="1" * 32)
    second = run(runtime, action, __OW_ACTIVATION_ID="2" * 32)
    assert first.result["ns"] == "guest"
    assert (first.result["id"], second.result["id"]) == ("1" * 32, "2" * 32)
    assert first.init_ms is not None and second.init_ms is None
    assert first.result["pid"] == second.result["pid"]


def test_concurrent_node_runs_use_several_processes(runtime):
    action = node_action(
        "function main(p) {"
        " return new Promise(r => setTimeout(() => r({pid: process.pid}), 1000)); }"
    )
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda _: run(runtime, action), range(4)))
    assert len({o.result["pid"] for o in outcomes}) == 4
    assert runtime.warm_count(action.key) == 2


def test_synchronous_throw_is_a_developer_error_like_the_nodejs_runtime(runtime):
    outcome = run(runtime, node_action("function main() { throw new Error('boom'); }"))
    assert outcome.status == "action developer error"
    assert outcome.result == {"error": "An error has occurred: Error: boom"}
    assert texts(outcome.logs, "stderr")[0] == "Error: boom"


def test_rejected_promise_is_an_application_error_with_the_serialized_error(runtime):
    action = node_action("function main() { return Promise.reject(new Error('no')); }")
    outcome = run(runtime, action)
    assert outcome.status == "application error"
    assert outcome.result["error"]["name"] == "Error"
    assert outcome.result["error"]["message"] == "no"
    assert outcome.result["error"]["stack"].startswith("Error: no")


def test_rejected_with_a_plain_value_keeps_it_as_the_error(runtime):
    outcome = run(runtime, node_action("function main() { return Promise.reject({code: 42}); }"))
    assert (outcome.status, outcome.result) == ("application error", {"error": {"code": 42}})


def test_process_exit_is_a_developer_error(runtime):
    outcome = run(runtime, node_action("function main() { console.log('bye'); process.exit(2); }"))
    assert outcome.result == {
        "error": "The action did not produce a valid response and exited unexpectedly."
    }
    assert texts(outcome.logs) == ["bye"]


def test_uncaught_async_exception_crashes_into_a_developer_error(runtime):
    action = node_action(
        "function main() { setTimeout(() => { throw new Error('late'); }, 10);"
        " return new Promise(() => {}); }"
    )
    outcome = run(runtime, action)
    assert outcome.status == "action developer error"
    assert outcome.result == {
        "error": "The action did not produce a valid response and exited unexpectedly."
    }


def test_infinite_loop_is_killed_at_the_time_limit(runtime):
    action = node_action("function main() { while (true) {} }", timeout_ms=500)
    outcome = run(runtime, action)
    assert outcome.result == {"error": "The action exceeded its time limits of 500 milliseconds."}
    assert outcome.timed_out is True


def test_heap_past_the_memory_limit_exhausts_memory(runtime):
    action = node_action(
        "function main() { const hoard = [];"
        " while (true) { hoard.push(new Array(1e6).fill(Math.random())); } }",
        memory_mb=128,
    )
    outcome = run(runtime, action)
    assert outcome.status == "action developer error"
    assert outcome.result == {"error": "The action exhausted its memory and was aborted."}


@pytest.mark.parametrize(
    ("returned", "produced"), [("'hi'", '"hi"'), ("null", "null"), ("42", "42")]
)
def test_non_object_result_is_a_developer_error(runtime, returned, produced):
    outcome = run(runtime, node_action(f"function main() {{ return {returned}; }}"))
    assert outcome.result == {
        "error": f"The action did not produce a valid JSON or JSON Array response: {produced}"
    }


def test_syntax_error_fails_initialization(runtime):
    outcome = run(runtime, node_action("function main() { return {"))
    assert outcome.status == "action developer error"
    assert outcome.result["error"].startswith(
        "The action failed during initialization: SyntaxError: "
    )


def test_missing_entry_function_fails_initialization(runtime):
    outcome = run(runtime, node_action("function other() { return {}; }"))
    assert outcome.result == {
        "error": "The action failed during initialization: "
        "Error: Action entrypoint 'main' is not a function."
    }


def test_printing_megabytes_truncates_logs(runtime):
    action = node_action(
        "function main() { const l = 'n'.repeat(99);"
        " for (let i = 0; i < 30000; i++) console.log(l); return {done: true}; }",
        logs_mb=1,
    )
    outcome = run(runtime, action)
    assert outcome.result == {"done": True}
    lines = texts(outcome.logs)
    assert lines[-1] == (
        "Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes."
    )
    assert len(lines) - 1 == 1048576 // 100
