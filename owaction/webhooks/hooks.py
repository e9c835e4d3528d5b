"""The hooks file (``WEBHOOKS_FILE``, YAML or JSON): which senders may call which target.

Secrets are never in the file: each hook names the environment variable holding its secret,
read when the file is (re)loaded. A file naming an unset variable is refused like any other bad
file, so a hook can never run without a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from owaction.config import RATE_LIMIT_RE
from owaction.names import InvalidName, check_name, split_action
from owaction.reloadable import ReloadableFile
from owaction.webhooks import VERIFIERS
from owaction.webhooks.signatures import ALGORITHMS

TARGETS = {"fire_trigger": "trigger", "invoke_action": "action", "web_action": "web"}
HOOK_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
_HEADER = re.compile(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}\Z")
_PATH = re.compile(r"\A[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*\Z")
_KNOWN = {"verify", "secret_env", "payload", "tolerance", "signature_header", "algorithm",
          "encoding", "prefix", "timestamp_header", "id_header", "event_header", "description",
          "extension", "rate_limit", *TARGETS}


class HookFileError(ValueError):
    """The hooks file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Hook:
    name: str
    verifier: str  # twitch | github | hmac
    secret_env: str
    target_kind: str  # trigger | action | web
    target: str  # trigger name, [package/]action
    secret: str = field(default="", repr=False)
    payload: tuple[tuple[str, str], ...] = ()  # (key the action gets, dotted path in the body)
    tolerance: int | None = None  # seconds a signed timestamp may be off
    extension: str = ".json"  # web_action only: how OpenWhisk answers (.http for statusCode/body)
    rate_limit: str = ""  # e.g. 120/minute; empty: WEBHOOK_RATE_LIMIT
    description: str = ""
    # generic HMAC only
    signature_header: str = ""
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    timestamp_header: str = ""
    id_header: str = ""
    event_header: str = ""

    def describe(self) -> dict[str, Any]:
        """What ``owaction webhook list`` shows: never the secret itself."""
        return {"hook": self.name, "verify": self.verifier, "target": self.target_kind,
                "name": self.target, "secret_env": self.secret_env,
                "description": self.description}


def _web_extension(value: Any) -> bool:
    from owaction.service.validation import WEB_EXTENSIONS  # here: the service imports us

    return isinstance(value, str) and value in WEB_EXTENSIONS[1:]


def _check_header(spec: dict, key: str, problems: list[str], name: str) -> str:
    value = spec.get(key, "")
    if value and (not isinstance(value, str) or not _HEADER.match(value)):
        problems.append(f"{name}: {key} must be an HTTP header name")
        return ""
    return value or ""


def _hook(name: str, spec: Any, environ: Mapping[str, str]) -> tuple[Hook | None, list[str]]:
    problems: list[str] = []
    if not isinstance(spec, dict):
        return None, [f"{name}: must be a mapping"]
    if not HOOK_NAME.match(name):
        problems.append(f"{name!r}: a hook name is 1-64 of [A-Za-z0-9._-]")
    unknown = sorted(set(spec) - _KNOWN)
    if unknown:
        problems.append(f"{name}: unknown keys {', '.join(map(str, unknown))}")
    verifier = spec.get("verify")
    if verifier not in VERIFIERS:
        problems.append(f"{name}: verify must be one of {', '.join(VERIFIERS)}")
    secret_env = spec.get("secret_env")
    secret = ""
    if not isinstance(secret_env, str) or not _ENV_NAME.match(secret_env):
        problems.append(f"{name}: secret_env must name an environment variable")
    else:
        secret = environ.get(secret_env, "")
        if not secret:
            problems.append(f"{name}: the environment variable {secret_env} is not set")
    targets = [key for key in TARGETS if key in spec]
    target = spec.get(targets[0]) if len(targets) == 1 else None
    if len(targets) != 1:
        problems.append(f"{name}: exactly one of {', '.join(TARGETS)} is required")
    else:
        try:
            if targets[0] == "fire_trigger":
                check_name(target, "fire_trigger")
            else:
                split_action(target)
        except InvalidName as exc:
            problems.append(f"{name}: {targets[0]} {exc}")
    mapping = spec.get("payload") or {}
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _PATH.match(v) for k, v in mapping.items()
    ):
        problems.append(f"{name}: payload maps names to dotted paths in the body "
                        "(e.g. user: event.user_login)")
        mapping = {}
    tolerance = spec.get("tolerance")
    if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, int)
                                  or not 1 <= tolerance <= 86400):
        problems.append(f"{name}: tolerance must be 1..86400 seconds")
    extension = spec.get("extension", ".json")
    if "extension" in spec and (targets != ["web_action"] or not _web_extension(extension)):
        problems.append(f"{name}: extension is for web_action, one of .json, .http, .text, "
                        ".html, .svg")
    rate_limit = spec.get("rate_limit", "")
    if not isinstance(rate_limit, str) or (rate_limit and not RATE_LIMIT_RE.match(rate_limit)):
        problems.append(f"{name}: rate_limit must look like 600/minute")
        rate_limit = ""
    options = {key: _check_header(spec, key, problems, name)
               for key in ("signature_header", "timestamp_header", "id_header", "event_header")}
    algorithm, encoding = spec.get("algorithm", "sha256"), spec.get("encoding", "hex")
    prefix = spec.get("prefix", "")
    if verifier == "hmac":
        if not options["signature_header"]:
            problems.append(f"{name}: signature_header is required for verify: hmac")
        if algorithm not in ALGORITHMS:
            problems.append(f"{name}: algorithm must be one of {', '.join(ALGORITHMS)}")
        if encoding not in ("hex", "base64"):
            problems.append(f"{name}: encoding must be hex or base64")
        if not isinstance(prefix, str):
            problems.append(f"{name}: prefix must be a string")
    elif set(spec) & {"signature_header", "timestamp_header", "id_header", "event_header",
                      "algorithm", "encoding", "prefix"}:
        problems.append(f"{name}: header, algorithm, encoding and prefix options are for "
                        "verify: hmac only (Twitch and GitHub fix their own)")
    if problems:
        return None, problems
    return Hook(
        name=name, verifier=verifier, secret_env=secret_env, secret=secret,
        target_kind=TARGETS[targets[0]], target=target, payload=tuple(mapping.items()),
        tolerance=tolerance, description=str(spec.get("description", "")), extension=extension,
        rate_limit=rate_limit.strip(),
        algorithm=algorithm, encoding=encoding, prefix=prefix, **options,
    ), []


def parse_hooks(text: str, *, source: str = "hooks file",
                environ: Mapping[str, str] | None = None) -> dict[str, Hook]:
    """The hooks by name; HookFileError naming every problem."""
    environ = os.environ if environ is None else environ
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise HookFileError(f"{source} is not valid YAML or JSON: {exc}") from None
    data = {} if data is None else data
    if not isinstance(data, dict) or not isinstance(data.get("webhooks", {}), dict):
        raise HookFileError(f"{source} must be a mapping with a 'webhooks' mapping")
    problems: list[str] = []
    hooks: dict[str, Hook] = {}
    for name, spec in (data.get("webhooks") or {}).items():
        hook, found = _hook(str(name), spec, environ)
        problems += found
        if hook is not None:
            hooks[hook.name] = hook
    if problems:
        raise HookFileError(f"{source}: " + "; ".join(problems))
    return hooks


class HookMap(ReloadableFile):
    """The live hooks; re-read when the file changes and on ``reload()`` (SIGHUP)."""

    what = "webhooks"
    file_error = HookFileError

    def __init__(self, path: str = "", *, environ: Mapping[str, str] | None = None):
        self.environ = os.environ if environ is None else environ
        super().__init__(path)

    def parse(self, text: str) -> dict[str, Hook]:
        return parse_hooks(text, source=self.path, environ=self.environ)

    @property
    def hooks(self) -> list[Hook]:
        return list(self.entries.values())

    def get(self, name: str) -> Hook | None:
        self.maybe_reload()
        return self.entries.get(name)
