"""The hooks file: what it accepts, what it refuses and why, and reloading that keeps the last
good hooks."""

from __future__ import annotations

import logging
import os
import time

import pytest

from owaction.webhooks.hooks import HookFileError, HookMap, parse_hooks

ENV = {"TW_SECRET": "s3cret-value-1234"}
GOOD = "webhooks:\n  tw: {verify: twitch, secret_env: TW_SECRET, fire_trigger: ping}\n"


def test_a_hook_reads_its_secret_from_the_named_variable_and_never_shows_it():
    (hook,) = parse_hooks(GOOD, environ=ENV).values()
    assert hook.secret == ENV["TW_SECRET"]
    assert hook.target_kind == "trigger" and hook.target == "ping"
    assert ENV["TW_SECRET"] not in repr(hook)
    assert ENV["TW_SECRET"] not in str(hook.describe())


def test_json_works_as_well_as_yaml():
    text = '{"webhooks": {"gh": {"verify": "github", "secret_env": "TW_SECRET", ' \
           '"invoke_action": "pkg/act", "payload": {"ref": "ref"}}}}'
    hook = parse_hooks(text, environ=ENV)["gh"]
    assert hook.target_kind == "action" and hook.payload == (("ref", "ref"),)


@pytest.mark.parametrize(("text", "reason"), [
    ("webhooks: [broken", "not valid YAML"),
    ("webhooks:\n  tw: {verify: twitch, secret_env: UNSET_VAR, fire_trigger: ping}",
     "UNSET_VAR is not set"),
    ("webhooks:\n  tw: {verify: twitch, secret: inline, secret_env: TW_SECRET, "
     "fire_trigger: ping}", "unknown keys secret"),
    ("webhooks:\n  tw: {verify: magic, secret_env: TW_SECRET, fire_trigger: ping}",
     "verify must be one of"),
    ("webhooks:\n  tw: {verify: twitch, secret_env: TW_SECRET}", "exactly one of"),
    ("webhooks:\n  tw: {verify: twitch, secret_env: TW_SECRET, fire_trigger: ping, "
     "invoke_action: echo}", "exactly one of"),
    ("webhooks:\n  tw: {verify: twitch, secret_env: TW_SECRET, invoke_action: '../x'}",
     "invoke_action"),
    ("webhooks:\n  tw: {verify: hmac, secret_env: TW_SECRET, fire_trigger: ping}",
     "signature_header is required"),
    ("webhooks:\n  tw: {verify: hmac, secret_env: TW_SECRET, fire_trigger: ping, "
     "signature_header: X-Sig, algorithm: md5}", "algorithm must be one of"),
    ("webhooks:\n  tw: {verify: github, secret_env: TW_SECRET, fire_trigger: ping, "
     "signature_header: X-Sig}", "for verify: hmac only"),
    ("webhooks:\n  tw: {verify: github, secret_env: TW_SECRET, fire_trigger: ping, "
     "extension: .http}", "extension is for web_action"),
    ("webhooks:\n  'bad name': {verify: github, secret_env: TW_SECRET, fire_trigger: ping}",
     "a hook name is"),
])
def test_bad_files_are_refused_with_a_reason(text, reason):
    with pytest.raises(HookFileError) as info:
        parse_hooks(text, source="hooks.yaml", environ=ENV)
    assert "hooks.yaml" in str(info.value) and reason in str(info.value)


def test_a_changed_file_is_reloaded_and_a_bad_one_keeps_the_old_hooks(tmp_path, monkeypatch,
                                                                        caplog):
    path = tmp_path / "webhooks.yaml"
    path.write_text(GOOD)
    hooks = HookMap(str(path), environ=ENV)
    assert hooks.get("tw").target == "ping"
    path.write_text(GOOD.replace("ping", "lonely"))
    os.utime(path, (time.time() + 5, time.time() + 5))
    monkeypatch.setattr(hooks, "_checked_at", 0.0)
    assert hooks.get("tw").target == "lonely"
    path.write_text("webhooks: [broken")
    os.utime(path, (time.time() + 10, time.time() + 10))
    monkeypatch.setattr(hooks, "_checked_at", 0.0)
    with caplog.at_level(logging.ERROR):
        assert hooks.get("tw").target == "lonely"  # the previous hooks are kept
    (refused,) = [r for r in caplog.records if getattr(r, "aaa_result", "") == "REFUSED"]
    assert refused.aaa_action == "webhooks_reload"
    assert "keeping the previous 1 webhooks" in refused.aaa_fields["msg"]
    assert hooks.reload() is False  # what SIGHUP calls


def test_a_bad_file_at_start_up_is_an_error():
    with pytest.raises(HookFileError):
        HookMap("/nonexistent/webhooks.yaml")
