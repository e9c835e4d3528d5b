"""WEB_ACTION_SECRETS and WEB_ACTION_KEY_ALLOWED: names in the configuration, secrets only in
the variables they name, never shown."""

from __future__ import annotations

import pytest

from owaction.config import ConfigError, load_settings
from owaction.logs import secrets_of
from owaction.openwhisk import OpenWhiskClient

SECRET = "s3cret-" + "w" * 20


def test_the_secret_is_read_from_the_variable_named_and_shown_nowhere(base_env):
    settings = load_settings(dict(base_env, WEB_ACTION_SECRETS="pkg/*=MY_WEB_SECRET",
                                  MY_WEB_SECRET=SECRET))
    assert settings.web_action_secret_map == {"pkg/*": SECRET}
    shown = repr(settings) + str(settings.as_env()) + str(settings.as_dict())
    assert SECRET not in shown and "MY_WEB_SECRET" in shown
    assert SECRET in secrets_of(settings)  # scrubbed from every log line
    assert settings.replace(rest_port=9001).web_action_secret_map == {"pkg/*": SECRET}
    client = OpenWhiskClient.from_settings(settings)
    try:
        assert client.web_auth.secret_for("guest", "pkg", "any") == SECRET
        assert client.web_auth.secret_for("other", "pkg", "any") is None
    finally:
        client.close()


@pytest.mark.parametrize("env, problem", [
    ({"WEB_ACTION_SECRETS": "pkg/a=UNSET_WEB_SECRET"}, "UNSET_WEB_SECRET"),
    ({"WEB_ACTION_SECRETS": "pkg/a=X", "X": "two words"}, "visible ASCII"),
    ({"WEB_ACTION_SECRETS": "pkg/a=not-a-name"}, "environment variable"),
    ({"WEB_ACTION_SECRETS": "a=X", "X": "y"}, "package/action"),
    ({"WEB_ACTION_KEY_ALLOWED": "*/x"}, "package/action"),
    ({"WEB_ACTION_KEY_ALLOWED": "a/b/c/d"}, "package/action"),
])
def test_bad_web_action_settings_are_refused_by_name(base_env, env, problem):
    with pytest.raises(ConfigError, match=problem):
        load_settings(dict(base_env, **env))
