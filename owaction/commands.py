"""WaddleBot #commands: the mapping from a command to an OpenWhisk action, and the reply.

The commands file (``COMMANDS_FILE``, YAML or JSON)::

    commands:
      "#weather":
        action: waddlebot/weather      # [package/]action
        timeout: 5000                  # ms the router's user waits; optional
        description: Weather for a place
        usage: "#weather <place>"
      "#hello":
        action: hello
      "#old":
        action: hello
        enabled: false                 # answered with "disabled", never invoked

A command is matched without its prefix (``#`` or ``!``) and case-insensitively. A command not in
the file is looked up as ``UNMAPPED_COMMAND_PACKAGE/<name>`` when that setting is set, and is
otherwise answered "unknown command". The file is re-read when it changes (checked at most once a
second) and on SIGHUP; a file that does not parse or validate is refused with a clear error and
the previous mapping stays in force.

The action receives this payload (the module SDK's shape plus the raw pieces)::

    {"community": {"id": ...}, "trigger": {"type": "command", "command": "#weather",
     "context_text": "berlin tomorrow"}, "user": {"id": ...}, "entity": {"id": ...},
     "request_id": "<session id>", "timestamp": "<ISO-8601 UTC>",
     "args": ["berlin", "tomorrow"], "args_text": "berlin tomorrow",
     "message": "#weather berlin tomorrow", "session_id": "<session id>"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from owaction.names import InvalidName, check_name, split_action
from owaction.reloadable import ReloadableFile

RESPONSE_ACTIONS = ("chat", "media", "ticker", "general", "form")


class CommandFileError(ValueError):
    """The commands file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Command:
    command: str  # as written in the file, e.g. "#weather"
    action: str  # [package/]action
    timeout_ms: int | None = None
    description: str = ""
    usage: str = ""
    enabled: bool = True
    mapped: bool = True  # False when found through the unmapped-command package

    def as_registration(self) -> dict:
        return {"command": self.command, "description": self.description, "usage": self.usage,
                "action": self.action}


def command_key(command: str) -> str:
    """How a command is matched: no prefix, lower case."""
    text = command.strip().split(" ", 1)[0] if isinstance(command, str) else ""
    return text.lstrip("#!").lower()


def parse_commands(text: str, *, source: str = "commands file", max_timeout_ms: int) -> dict:
    """The mapping from key to Command; CommandFileError naming each problem."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise CommandFileError(f"{source} is not valid YAML or JSON: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CommandFileError(f"{source} must be a mapping with a 'commands' key")
    entries = data.get("commands", {})
    if isinstance(entries, list):
        entries = {str(e.get("command")): e for e in entries if isinstance(e, dict)}
    if not isinstance(entries, dict):
        raise CommandFileError(f"{source}: 'commands' must be a mapping or a list")
    problems: list[str] = []
    out: dict[str, Command] = {}
    for name, spec in entries.items():
        if isinstance(spec, str):
            spec = {"action": spec}
        if not isinstance(spec, dict):
            problems.append(f"{name}: must be an action name or a mapping")
            continue
        key = command_key(str(name))
        if not key:
            problems.append(f"{name!r}: empty command")
            continue
        action = spec.get("action")
        try:
            split_action(action)
        except InvalidName as exc:
            problems.append(f"{name}: action {exc}")
            continue
        timeout = spec.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int)
            or not 1 <= timeout <= max_timeout_ms
        ):
            problems.append(f"{name}: timeout must be 1..{max_timeout_ms} ms")
            continue
        enabled = spec.get("enabled", True)
        if not isinstance(enabled, bool):
            problems.append(f"{name}: enabled must be true or false")
            continue
        if key in out:
            problems.append(f"{name}: defined twice")
            continue
        command = str(name) if str(name)[:1] in "#!" else f"#{name}"
        out[key] = Command(command=command, action=action, timeout_ms=timeout,
                           description=str(spec.get("description", "")),
                           usage=str(spec.get("usage", "")), enabled=enabled)
    if problems:
        raise CommandFileError(f"{source}: " + "; ".join(problems))
    return out


class CommandMap(ReloadableFile):
    """The live mapping; safe to share between threads and greenlets."""

    what = "commands"
    file_error = CommandFileError

    def __init__(self, path: str = "", *, unmapped_package: str = "",
                 max_timeout_ms: int = 60000):
        self.unmapped_package = unmapped_package
        self.max_timeout_ms = max_timeout_ms
        super().__init__(path)

    @property
    def commands(self) -> list[Command]:
        return list(self.entries.values())

    def parse(self, text: str) -> dict[str, Command]:
        return parse_commands(text, source=self.path, max_timeout_ms=self.max_timeout_ms)

    def lookup(self, command: str) -> Command | None:
        self.maybe_reload()
        key = command_key(command)
        found = self.entries.get(key)
        if found is not None:
            return found
        if self.unmapped_package and key:
            try:
                check_name(key)
            except InvalidName:
                return None
            return Command(command=f"#{key}", action=f"{self.unmapped_package}/{key}",
                           mapped=False)
        return None


def action_payload(*, command: str, args: str, user_id: str, entity_id: str,
                   community_id: str, session_id: str, message: str, timestamp: str) -> dict:
    """What the action receives: the module SDK's shape plus args and the message."""
    args_text = args or ""
    return {
        "community": {"id": community_id},
        "trigger": {"type": "command", "command": command, "context_text": args_text},
        "user": {"id": user_id},
        "entity": {"id": entity_id},
        "request_id": session_id,
        "session_id": session_id,
        "timestamp": timestamp,
        "args": args_text.split(),
        "args_text": args_text,
        "message": message or (f"{command} {args_text}".strip()),
    }


def reply_fields(result: Any) -> dict:
    """ModuleResponse fields from an action's result, whichever of the accepted shapes it has:
    ModuleResponse-like, ``{message}``, ``{text}``, ``{body: {...}}``, the SDK's
    ``{success, response_type, message}``, or a plain string."""
    if isinstance(result, dict) and isinstance(result.get("body"), dict | str) and not (
        {"chat_message", "response_action", "message", "text"} & result.keys()
    ):
        result = result["body"]
    if isinstance(result, str):
        return {"response_action": "chat", "chat_message": result, "response_data": {}}
    if not isinstance(result, dict):
        return {"response_action": "general", "chat_message": None,
                "response_data": {"result": result}}
    action = result.get("response_action") or result.get("response_type") or "chat"
    if action not in RESPONSE_ACTIONS:
        action = "chat"
    message = result.get("chat_message")
    if message is None:
        message = result.get("message", result.get("text"))
    if message is not None and not isinstance(message, str):
        message = json.dumps(message)
    data = result.get("response_data")
    if not isinstance(data, dict):
        data = {k: v for k, v in result.items()
                if k not in ("chat_message", "message", "text", "response_action",
                             "response_type", "success")}
    out = {"response_action": action, "chat_message": message, "response_data": data}
    for key in ("media_type", "media_url", "ticker_text"):
        if isinstance(result.get(key), str):
            out[key] = result[key]
    if isinstance(result.get("ticker_duration"), int) and not isinstance(
        result.get("ticker_duration"), bool
    ):
        out["ticker_duration"] = result["ticker_duration"]
    if result.get("success") is False:
        out["success"] = False
    return out
