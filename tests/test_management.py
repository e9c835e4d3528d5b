"""Managing entities through the service against the emulator on a real port."""

from __future__ import annotations

import logging
import uuid

import pytest

from owaction import errors
from owaction.service import CallContext
from owaction.service.entities import MAX_CODE_BYTES, MAX_PARAMETERS_BYTES, ActionSpec

CTX = CallContext(source="rest", caller="ops", request_id="req-m")
HELLO = "def main(args):\n    return {'version': %d, 'greeting': args.get('greeting')}\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def manager(make_service):
    return make_service().management


def audits(caplog, action: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "aaa_event", None) == "AUDIT"
            and r.aaa_action == action]


def test_action_created_from_code_runs_and_an_update_is_the_new_version(make_service, caplog):
    service = make_service()
    name = unique("hello")
    caplog.set_level(logging.INFO)
    created = service.management.put_action(CTX, name=name, spec=ActionSpec(
        kind="python:3", code=HELLO % 1, parameters={"greeting": "hi"}))
    assert (created["name"], created["kind"], created["version"]) == (name, "python:3", "0.0.1")
    assert created["parameters"] == {"greeting": "hi"} and created["code"] is None
    assert service.invoke_action(CTX, action_name=name).result == {"version": 1,
                                                                  "greeting": "hi"}
    updated = service.management.put_action(CTX, name=name, overwrite=True,
                                            spec=ActionSpec(kind="python:3", code=HELLO % 2))
    assert updated["version"] == "0.0.2"
    assert service.invoke_action(CTX, action_name=name).result["version"] == 2
    [line] = audits(caplog, "create_action")
    assert line.aaa_result == "SUCCESS"
    assert line.aaa_fields["caller"] == "ops" and line.aaa_fields["version"] == "0.0.1"
    assert line.aaa_fields["target"] == f"action:/guest/{name}"
    assert audits(caplog, "update_action")[0].aaa_fields["version"] == "0.0.2"
    # Neither the code nor a parameter value is ever in a log line.
    logged = " ".join(str(r.__dict__) for r in caplog.records)
    assert "def main" not in logged and "'hi'" not in logged


def test_create_of_an_existing_action_is_a_conflict(manager):
    name = unique("dup")
    manager.put_action(CTX, name=name, spec=ActionSpec(kind="python:3", code=HELLO % 1))
    with pytest.raises(errors.Conflict) as caught:
        manager.put_action(CTX, name=name, spec=ActionSpec(kind="python:3", code=HELLO % 1))
    assert caught.value.http_status == 409 and caught.value.grpc_status == "ALREADY_EXISTS"


def test_get_action_shows_code_only_when_asked(manager):
    name = unique("code")
    manager.put_action(CTX, name=name, spec=ActionSpec(kind="python:3", code=HELLO % 3,
                                                       web_export=True, raw_http=False))
    plain = manager.get_action(CTX, name=name)
    assert plain["code"] is None
    assert plain["annotations"]["web-export"] is True and plain["annotations"]["final"] is True
    assert manager.get_action(CTX, name=name, code=True)["code"] == HELLO % 3


def test_sequence_from_components_runs_them_in_order(make_service):
    service = make_service()
    first, seq = unique("first"), unique("seq")
    service.management.put_action(CTX, name=first, spec=ActionSpec(
        kind="python:3", code="def main(a):\n    return {'greeting': 'from first'}\n"))
    service.management.put_action(CTX, name=unique("unused"),
                                  spec=ActionSpec(kind="python:3", code=HELLO % 1))
    view = service.management.put_action(CTX, name=seq, spec=ActionSpec(
        components=(first, "/guest/echo")))
    assert view["kind"] == "sequence"
    assert view["components"] == [f"/guest/{first}", "/guest/echo"]
    result = service.invoke_sequence(CTX, sequence_name=seq)
    assert result.result == {"greeting": "from first"}


@pytest.mark.parametrize(("spec", "error"), [
    (ActionSpec(code="x"), errors.InvalidInput),
    (ActionSpec(), errors.InvalidInput),
    (ActionSpec(kind="python:3", code="x", components=("a",)), errors.InvalidInput),
    (ActionSpec(kind="python:3", code="x" * (MAX_CODE_BYTES + 1)), errors.PayloadTooLarge),
    (ActionSpec(kind="python:3", code="x",
                parameters={"big": "y" * MAX_PARAMETERS_BYTES}), errors.PayloadTooLarge),
    (ActionSpec(kind="python:3", code="x", limits={"memory": "lots"}), errors.InvalidInput),
])
def test_bad_action_specs_are_refused_before_openwhisk(manager, emu, spec, error):
    name = unique("bad")
    with pytest.raises(error):
        manager.put_action(CTX, name=name, spec=spec)
    assert emu.api("GET", f"/namespaces/_/actions/{name}").status_code == 404


@pytest.mark.parametrize("name", ["", "a/b/c", " lead", "x" * 257, "semi;colon"])
def test_names_are_checked_like_invocation_names(manager, name):
    with pytest.raises(errors.InvalidInput):
        manager.put_action(CTX, name=name, spec=ActionSpec(kind="python:3", code="x"))


def test_package_binding_carries_its_own_parameters(manager):
    package, binding = unique("pkg"), unique("bind")
    made = manager.put_package(CTX, name=package, parameters={"a": 1}, publish=True)
    assert made["publish"] is True and made["parameters"] == {"a": 1}
    manager.put_action(CTX, name=f"{package}/echo2",
                       spec=ActionSpec(kind="python:3", code="def main(a):\n    return a\n"))
    bound = manager.put_package(CTX, name=binding, binding=package, parameters={"b": 2})
    assert bound["binding"] == f"/guest/{package}" and bound["parameters"] == {"b": 2}
    assert manager.get_package(CTX, name=package)["actions"] == ["echo2"]
    with pytest.raises(errors.Conflict):
        manager.delete_package(CTX, name=package)
    manager.delete_package(CTX, name=binding)
    manager.delete_package(CTX, name=package, force=True)
    with pytest.raises(errors.NotFound):
        manager.get_package(CTX, name=package)


def test_default_is_a_reserved_package_name(manager):
    with pytest.raises(errors.InvalidInput):
        manager.put_package(CTX, name="default")


def test_rule_links_a_trigger_and_can_be_disabled_and_enabled(make_service, emu):
    service = make_service()
    trigger, rule = unique("trig"), unique("rule")
    made = service.management.put_trigger(CTX, name=trigger, parameters={"greeting": "t"})
    assert made["parameters"] == {"greeting": "t"} and made["feed"] is None
    view = service.management.put_rule(CTX, name=rule, trigger=trigger, action="echo")
    assert (view["status"], view["trigger"], view["action"]) == (
        "active", f"/guest/{trigger}", "/guest/echo")
    assert service.fire_trigger(CTX, trigger_name=trigger).outcome == "accepted"
    off = service.management.set_rule_state(CTX, name=rule, active=False)
    assert off["status"] == "inactive"
    assert service.fire_trigger(CTX, trigger_name=trigger).status == "no active rule"
    assert service.management.set_rule_state(CTX, name=rule, active=True)["status"] == "active"
    shown = service.management.get_trigger(CTX, name=trigger)
    assert shown["rules"] == {f"guest/{rule}": {"action": "/guest/echo", "status": "active"}}
    listed = service.management.list_entities(CTX, collection="rules")
    assert {"name": rule, "status": "active"}.items() <= next(
        r for r in listed if r["name"] == rule).items()
    service.management.delete_rule(CTX, name=rule)
    service.management.delete_trigger(CTX, name=trigger)
    with pytest.raises(errors.NotFound):
        service.management.get_trigger(CTX, name=trigger)


def test_a_feed_outside_whisk_system_is_refused(manager, emu):
    name = unique("trig")
    with pytest.raises(errors.InvalidInput, match="whisk.system"):
        manager.put_trigger(CTX, name=name, feed="/guest/myfeed")
    assert emu.api("GET", f"/namespaces/_/triggers/{name}").status_code == 404


def test_deleting_a_missing_action_is_not_found_and_audited(manager, caplog):
    caplog.set_level(logging.INFO)
    with pytest.raises(errors.NotFound):
        manager.delete_action(CTX, name=unique("ghost"))
    [line] = audits(caplog, "delete_action")
    assert line.aaa_result == "FAILED" and line.aaa_fields["status"] == 404


ALARM = "/whisk.system/alarms/alarm"


def test_a_feed_trigger_runs_the_lifecycle_create_read_update_delete(manager, caplog):
    caplog.set_level(logging.INFO)
    name = unique("alarm")
    made = manager.put_trigger(CTX, name=name, feed=ALARM, parameters={
        "cron": "0 0 1 1 *", "trigger_payload": {"k": 1}})
    assert made["feed"] == ALARM and made["parameters"] == {}  # the parameters went to the feed
    assert audits(caplog, "create_trigger")[-1].aaa_fields["lifecycle"] == "CREATE"
    state = manager.get_trigger(CTX, name=name)["feed_state"]
    assert state["config"]["cron"] == "0 0 1 1 *" and "authKey" not in str(state)
    manager.put_trigger(CTX, name=name, feed=ALARM, overwrite=True,
                        parameters={"cron": "0 0 2 2 *"})
    assert audits(caplog, "update_trigger")[-1].aaa_fields["lifecycle"] == "UPDATE"
    assert manager.get_trigger(CTX, name=name)["feed_state"]["config"]["cron"] == "0 0 2 2 *"
    gone = manager.delete_trigger(CTX, name=name)
    assert gone["feed_error"] is None
    assert audits(caplog, "delete_trigger")[-1].aaa_fields["feed_delete"] == "done"
    # The namespace key went to the feed action, never into a log line.
    key = manager.client._key_text()
    assert key.split(":")[1] not in " ".join(str(r.__dict__) for r in caplog.records)


def test_a_trigger_whose_feed_refuses_it_is_not_left_behind(manager, emu):
    name = unique("badcron")
    with pytest.raises(errors.InvalidInput, match="refused CREATE"):
        manager.put_trigger(CTX, name=name, feed=ALARM, parameters={"cron": "not a cron"})
    assert emu.api("GET", f"/namespaces/_/triggers/{name}").status_code == 404


def test_a_feed_refusing_an_update_puts_the_trigger_back_as_it_was(manager, emu):
    name = unique("kept")
    manager.put_trigger(CTX, name=name, parameters={"x": 1})
    with pytest.raises(errors.InvalidInput):
        manager.put_trigger(CTX, name=name, overwrite=True, feed=ALARM,
                            parameters={"cron": "not a cron"})
    shown = manager.get_trigger(CTX, name=name)
    assert shown["parameters"] == {"x": 1} and shown["feed"] is None
