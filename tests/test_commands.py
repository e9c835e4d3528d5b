"""Router #commands through the service: mapping, replies, failures, replays, reloads."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from owaction import errors
from owaction.commands import CommandFileError, CommandMap, parse_commands, reply_fields
from owaction.service import CallContext

ROUTER = CallContext(source="router", caller="router_module")
COMMANDS = {
    "commands": {
        "#weather": {"action": "waddlebot/weather", "description": "Weather for a place",
                     "usage": "#weather <place>", "timeout": 10000},
        "#hello": {"action": "hello"},
        "#echo": {"action": "echo"},
        "#broken": {"action": "fail"},
        "#slow": {"action": "sleep", "timeout": 300},
        "#nap": {"action": "sleep", "timeout": 5000},
        "#old": {"action": "hello", "enabled": False},
    }
}


@pytest.fixture
def commands_file(tmp_path):
    path = tmp_path / "commands.json"
    path.write_text(json.dumps(COMMANDS))
    return str(path)


def call(service, command, args="", session="sess_" + "0" * 32, **kw):
    return service.execute_command(
        ROUTER, command=command, args=args, user_id="u1", entity_id="e1", community_id="42",
        session_id=session, message=f"{command} {args}".strip(), **kw,
    )


def new_session() -> str:
    return "sess_" + os.urandom(16).hex()


def test_mapped_command_runs_its_action_with_the_context_payload(make_service, commands_file):
    service = make_service(commands_file=commands_file)
    reply = call(service, "#weather", "berlin tomorrow", session=new_session())
    assert reply["success"] is True
    assert reply["chat_message"] == "Weather for berlin tomorrow: sunny"
    assert reply["response_action"] == "chat"
    assert reply["module_name"] == "openwhisk_action_module"
    record = service.get_execution(reply["execution_id"])
    # The action's own duration, not the record's whole seconds (0 or 1000 for a quick one).
    assert reply["processing_time_ms"] == record.duration_ms < 1000
    assert call(service, "#weather", "berlin tomorrow", session=reply["session_id"]) == reply
    assert record.action_type == "command" and record.action_name == "waddlebot/weather"
    payload = record.payload
    assert payload["trigger"] == {"type": "command", "command": "#weather",
                                  "context_text": "berlin tomorrow"}
    assert payload["community"] == {"id": "42"} and payload["user"] == {"id": "u1"}
    assert payload["entity"] == {"id": "e1"} and payload["request_id"] == reply["session_id"]
    assert payload["args"] == ["berlin", "tomorrow"]
    assert payload["args_text"] == "berlin tomorrow"
    assert payload["message"] == "#weather berlin tomorrow"


def test_every_reply_field_of_module_response_is_present(make_service, commands_file):
    reply = call(make_service(commands_file=commands_file), "#hello", session=new_session())
    assert set(reply) == {
        "execution_id", "session_id", "module_name", "success", "response_action",
        "response_data", "media_type", "media_url", "ticker_text", "ticker_duration",
        "chat_message", "error_message", "processing_time_ms", "timestamp",
    }
    assert reply["chat_message"] == "Hello World" and reply["ticker_duration"] == 10


def test_unknown_command_gets_a_readable_reply_and_no_invocation(make_service, commands_file):
    service = make_service(commands_file=commands_file)
    reply = call(service, "#nope", session=new_session())
    assert reply["success"] is False
    assert reply["error_message"] == "Unknown command #nope."
    assert service.store.list(limit=10)[0] == []


def test_unmapped_command_goes_to_the_configured_package(make_service, commands_file):
    service = make_service(commands_file=commands_file, UNMAPPED_COMMAND_PACKAGE="waddlebot")
    reply = call(service, "!WEATHER", "paris", session=new_session())
    # "weather" is not in the file under "!", but matching ignores the prefix and case.
    assert reply["chat_message"] == "Weather for paris: sunny"
    service2 = make_service(UNMAPPED_COMMAND_PACKAGE="waddlebot")
    reply = call(service2, "#missing", session=new_session())
    assert reply["success"] is False and "unavailable" in reply["error_message"]


def test_disabled_command_is_refused(make_service, commands_file):
    reply = call(make_service(commands_file=commands_file), "#old", session=new_session())
    assert reply["success"] is False and "disabled" in reply["error_message"]


def test_failing_action_gives_a_user_message_without_internals(make_service, commands_file):
    reply = call(make_service(commands_file=commands_file), "#broken", session=new_session())
    assert reply["success"] is False
    assert reply["error_message"] == "Sorry, #broken failed. Please try again later."
    assert "something went wrong" not in json.dumps(reply)


def test_slow_action_past_its_command_timeout(make_service, commands_file):
    reply = call(make_service(commands_file=commands_file), "#slow", session=new_session())
    assert reply["success"] is False
    assert "took too long" in reply["error_message"]


def test_retry_with_the_same_session_while_in_flight_runs_once(make_service, commands_file, emu):
    service = make_service(commands_file=commands_file)
    session = new_session()
    started_ms = int(time.time() * 1000)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(call, service, "#nap", "", session)
        time.sleep(0.3)
        second = pool.submit(call, service, "#nap", "", session)
        replies = [first.result(timeout=30), second.result(timeout=30)]
    assert replies[0] == replies[1]
    assert replies[0]["success"] is True
    time.sleep(0.5)
    runs = [a for a in emu.activations("sleep") if a["start"] >= started_ms]
    assert len(runs) == 1
    # A third, later retry gets the stored reply too.
    assert call(service, "#nap", "", session) == replies[0]


def test_openwhisk_throttling_keeps_its_429_meaning(make_service, commands_file, emu):
    service = make_service(commands_file=commands_file)
    emu.fault(method="POST", path="/actions/hello", status=429, times=1,
              body={"error": "Too many requests", "code": "x"})
    with pytest.raises(errors.Throttled):
        call(service, "#hello", session=new_session())


@pytest.mark.parametrize("field", ["command", "session_id", "args"])
def test_wrong_types_are_invalid(make_service, commands_file, field):
    service = make_service(commands_file=commands_file)
    fields = {"command": "#hello", "args": "", "session_id": new_session()}
    fields[field] = 42
    with pytest.raises(errors.InvalidInput):
        service.execute_command(ROUTER, **fields)


# --- the commands file ----------------------------------------------------------------------


def test_yaml_and_list_forms_parse():
    parsed = parse_commands("commands:\n  - {command: '#a', action: pkg/x, timeout: 5}\n",
                            max_timeout_ms=60000)
    assert parsed["a"].action == "pkg/x" and parsed["a"].timeout_ms == 5


@pytest.mark.parametrize("text", [
    "commands: [unclosed",
    "commands:\n  '#a': {action: '../x'}",
    "commands:\n  '#a': {action: ok, timeout: 999999}",
    "commands:\n  '#a': {action: ok, enabled: maybe}",
    "- just a list",
])
def test_bad_files_are_refused_with_a_reason(text):
    with pytest.raises(CommandFileError) as info:
        parse_commands(text, source="commands.yaml", max_timeout_ms=60000)
    assert "commands.yaml" in str(info.value)


def test_changed_file_is_reloaded_and_a_bad_one_keeps_the_old_mapping(tmp_path, monkeypatch):
    path = tmp_path / "commands.yaml"
    path.write_text("commands:\n  '#a': {action: hello}\n")
    mapping = CommandMap(str(path))
    changes = []
    mapping.on_change(lambda m: changes.append(len(m.commands)))
    assert mapping.lookup("#a").action == "hello"
    path.write_text("commands:\n  '#a': {action: echo}\n  '#b': {action: hello}\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    monkeypatch.setattr(mapping, "_checked_at", 0.0)
    assert mapping.lookup("#a").action == "echo" and changes == [2]
    path.write_text("commands: [broken")
    os.utime(path, (time.time() + 10, time.time() + 10))
    monkeypatch.setattr(mapping, "_checked_at", 0.0)
    assert mapping.lookup("#b").action == "hello"  # previous mapping kept
    assert mapping.reload() is False


def test_a_bad_file_at_start_up_is_an_error():
    with pytest.raises(CommandFileError):
        CommandMap("/nonexistent/commands.yaml")


@pytest.mark.parametrize(("result", "expected"), [
    ("plain text", {"chat_message": "plain text"}),
    ({"message": "hi"}, {"chat_message": "hi"}),
    ({"text": "hey"}, {"chat_message": "hey"}),
    ({"body": {"message": "wrapped"}}, {"chat_message": "wrapped"}),
    ({"success": True, "response_type": "ticker", "message": "sdk", "ticker_text": "t"},
     {"response_action": "ticker", "chat_message": "sdk", "ticker_text": "t"}),
    ({"response_action": "media", "media_url": "https://x/y.png", "media_type": "image",
      "chat_message": None}, {"response_action": "media", "media_url": "https://x/y.png"}),
])
def test_reply_shapes(result, expected):
    fields = reply_fields(result)
    for key, value in expected.items():
        assert fields[key] == value
    assert fields["response_action"] in ("chat", "media", "ticker", "general", "form")


def test_commands_count_against_the_rate_limits_and_replays_do_not(make_service,
                                                                   commands_file):
    from owaction.ratelimit import RateLimiter

    service = make_service(commands_file=commands_file, RATE_LIMIT_CALLER="2/minute")
    service.rate_limiter = RateLimiter(service.settings)
    service.rate_limiter.reset()
    session = new_session()
    first = call(service, "#hello", session=session)
    assert call(service, "#hello", session=session) == first  # a replay: not counted
    call(service, "#hello", session=new_session())
    with pytest.raises(errors.Throttled):
        call(service, "#hello", session=new_session())


# --- the same pipeline as every invocation ----------------------------------------------------


def test_a_session_older_than_the_idempotency_ttl_runs_again(make_service, commands_file):
    service = make_service(commands_file=commands_file, IDEMPOTENCY_TTL="1")
    session = new_session()
    first = call(service, "#hello", session=session)
    time.sleep(2.1)  # the store keeps whole seconds
    again = call(service, "#hello", session=session)
    assert again["success"] is True
    assert again["execution_id"] != first["execution_id"]


def test_a_command_that_never_reached_openwhisk_frees_its_session(make_service, commands_file):
    from tests.procs import free_port

    service = make_service(commands_file=commands_file,
                           api_host=f"http://127.0.0.1:{free_port()}")
    session = new_session()
    first = call(service, "#hello", session=session)
    assert first["success"] is False and "unavailable" in first["error_message"]
    assert service.store.get(first["execution_id"]).idempotency_key is None
    # The retry runs (and fails) again rather than replaying a call that never happened.
    again = call(service, "#hello", session=session)
    assert again["execution_id"] != first["execution_id"]
