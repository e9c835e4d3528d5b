"""POST /api/v1/execute: the WaddleBot router's #command call, in-process on SQLite against the
emulator; replies validated against /openapi.json."""

from __future__ import annotations

import json
import os

import pytest

from tests.rest.helpers import FlaskApi, make_token

SERVICE_KEY = "router-service-key-" + "k" * 24
EXECUTE = "/api/v1/execute"


@pytest.fixture
def router(make_app, emu, tmp_path):
    commands = tmp_path / "commands.json"
    commands.write_text(json.dumps({"commands": {
        "#weather": {"action": "waddlebot/weather"},
        "#oops": {"action": "fail"},
    }}))
    app = make_app(COMMANDS_FILE=str(commands), SERVICE_KEY=SERVICE_KEY)
    return FlaskApi(app)


def body(command: str, args: str = "", session: str | None = None) -> dict:
    return {"command": command, "args": args, "user_id": "u1", "entity_id": "e1",
            "community_id": "42", "session_id": session or "sess_" + os.urandom(16).hex(),
            "message": f"{command} {args}".strip()}


def test_the_router_with_its_service_key_gets_a_module_response(router):
    reply = router.post(EXECUTE, body("#weather", "berlin"),
                        headers={"X-Service-Key": SERVICE_KEY}, token=None)
    assert reply.status == 200
    assert reply.body["success"] is True
    assert reply.body["response_action"] == "chat"
    assert "berlin" in reply.body["chat_message"]
    assert reply.body["module_name"] == "openwhisk_action_module"


def test_a_bearer_token_works_too_and_ids_may_be_numbers(router):
    sent = body("#weather", "paris")
    sent["community_id"] = 42
    reply = router.post(EXECUTE, sent, token=make_token())
    assert reply.status == 200
    assert reply.body["success"] is True


def test_a_wrong_service_key_gets_401(router):
    reply = router.post(EXECUTE, body("#weather"), headers={"X-Service-Key": "nope"}, token=None)
    assert reply.status == 401
    assert reply.error_code == "invalid_service_key"


def test_neither_key_nor_token_gets_401(router):
    assert router.post(EXECUTE, body("#weather"), token=None).status == 401


def test_an_unknown_or_failing_command_is_still_a_200_the_chat_can_show(router):
    unknown = router.post(EXECUTE, body("#nothing"), token=make_token())
    assert unknown.status == 200
    assert unknown.body["success"] is False
    assert unknown.body["error_message"] == "Unknown command #nothing."
    failing = router.post(EXECUTE, body("#oops"), token=make_token())
    assert failing.status == 200
    assert failing.body["success"] is False
    assert failing.body["error_message"]


def test_a_retried_session_gets_the_same_reply_without_running_again(router):
    first = router.post(EXECUTE, body("#weather", "oslo", session="sess_" + "a" * 32),
                        token=make_token())
    again = router.post(EXECUTE, body("#weather", "oslo", session="sess_" + "a" * 32),
                        token=make_token())
    assert again.status == 200
    assert again.body["execution_id"] == first.body["execution_id"]
    assert again.body["chat_message"] == first.body["chat_message"]


@pytest.mark.parametrize("sent, needle", [
    ({"args": "x"}, "command: Field required"),
    ({"command": ["#weather"]}, "command: Input should be a valid string"),
    ({"command": "#weather", "session_id": "s-1", "message": "m" * 5000},
     "message must be at most 4096 characters"),
])
def test_a_malformed_command_body_gets_400(router, sent, needle):
    reply = router.post(EXECUTE, sent, token=make_token())
    assert reply.status == 400
    assert needle in reply.body["error"]["message"]
