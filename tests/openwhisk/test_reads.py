"""Listing and reading entities and activations against the emulator."""

from __future__ import annotations

import pytest

from owaction.openwhisk import ActionInfo, BadRequest, NotFound


def test_list_actions_returns_typed_infos_including_packaged_ones(client):
    actions = client.list_actions(limit=200)
    assert all(isinstance(a, ActionInfo) for a in actions)
    by_name = {(a.namespace, a.name): a for a in actions}
    hello = by_name[("guest", "hello")]
    assert hello.kind == "python:3"
    assert hello.published is False
    assert hello.version
    assert ("guest/waddlebot", "weather") in by_name


def test_list_actions_limit_skip_and_count(client):
    total = client.list_actions(count=True)
    assert isinstance(total, int) and total >= 7
    first_two = client.list_actions(limit=2)
    assert len(first_two) == 2
    assert [a.name for a in client.list_actions(limit=1, skip=1)] == [first_two[1].name]
    assert client.list_actions(count=True, skip=1) == total - 1


def test_list_actions_of_one_package(client):
    actions = client.list_actions(package="waddlebot")
    assert [(a.namespace, a.name) for a in actions] == [("guest/waddlebot", "weather")]


def test_list_actions_limit_over_200_is_a_bad_request(client):
    with pytest.raises(BadRequest) as info:
        client.list_actions(limit=201)
    assert info.value.message == "The value '201' is not in the range of 0 to 200 for actions."


def test_get_action_with_and_without_code(client):
    without = client.get_action("hello")
    assert without["name"] == "hello"
    assert "code" not in without["exec"]
    with_code = client.get_action("hello", code=True)
    assert "def main" in with_code["exec"]["code"]


def test_unknown_activation_is_not_found(client):
    with pytest.raises(NotFound):
        client.get_activation("0" * 32)


def test_packages_triggers_and_rules_are_listed_and_read(client):
    assert "waddlebot" in [p["name"] for p in client.list_packages()]
    package = client.get_package("waddlebot")
    assert [a["name"] for a in package["actions"]] == ["weather"]
    assert {"ping", "lonely"} <= {t["name"] for t in client.list_triggers()}
    assert client.get_trigger("ping")["name"] == "ping"
    assert client.list_triggers(count=True) >= 2
    assert "ping-rule" in [r["name"] for r in client.list_rules()]
    rule = client.get_rule("ping-rule")
    assert rule["status"] == "active"
    assert client.list_rules(count=True) >= 1


def test_disable_and_enable_a_rule(client):
    try:
        client.disable_rule("ping-rule")
        assert client.get_rule("ping-rule")["status"] == "inactive"
        assert client.fire_trigger("ping").fired is False
    finally:
        client.enable_rule("ping-rule")
    assert client.get_rule("ping-rule")["status"] == "active"
    assert client.fire_trigger("ping").fired is True


def test_unknown_package_trigger_and_rule_are_not_found(client):
    for call in (lambda: client.get_package("nope"), lambda: client.get_trigger("nope"),
                 lambda: client.get_rule("nope"), lambda: client.enable_rule("nope")):
        with pytest.raises(NotFound):
            call()


def test_info_answers(client):
    assert client.info(timeout=2.0)["api_version"] == "1.0.0"
