"""The `manage` permission: never implied, carried only by tokens and keys that say so."""

from __future__ import annotations

import pytest

from owaction.auth import DEFAULT_PERMISSIONS, PERMISSION_MANAGE, TokenVerifier
from owaction.config import ConfigError, load_settings
from tests.conftest import TEST_SECRET
from tests.rest.helpers import router_token

SERVICE_KEY = "router-key-" + "k" * 30


def verifier(**env: str) -> TokenVerifier:
    return TokenVerifier(load_settings({"MODULE_SECRET_KEY": TEST_SECRET,
                                        "API_KEYS": "ops=ops-key-xxxxxxxxxxxx,svc-a=a-key-xxxxxxxx",
                                        "SERVICE_KEY": SERVICE_KEY, **env}))


def test_router_tokens_and_the_service_key_never_carry_manage():
    v = verifier()
    assert v.verify(router_token()).permissions == frozenset(DEFAULT_PERMISSIONS)
    assert PERMISSION_MANAGE not in v.verify_service_key(SERVICE_KEY).permissions


def test_issued_tokens_carry_manage_only_when_asked():
    v = verifier()
    assert not v.verify(v.issue("svc-a")[0]).allows(PERMISSION_MANAGE)
    assert v.verify(v.issue("ops", ["manage"])[0]).permissions == {"manage"}


def test_api_key_permissions_say_what_each_key_carries():
    v = verifier(API_KEY_PERMISSIONS="ops=read+manage")
    assert v.permissions_for_key("ops") == ("read", "manage")
    assert v.permissions_for_key("svc-a") == DEFAULT_PERMISSIONS


@pytest.mark.parametrize("value", ["ops=admin", "ops=", "ops"])
def test_unknown_permissions_in_the_configuration_are_refused(value):
    with pytest.raises(ConfigError, match="API_KEY_PERMISSIONS"):
        verifier(API_KEY_PERMISSIONS=value)
