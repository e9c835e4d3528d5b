"""The management RPCs through the gRPC process against the emulator."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest

from owaction.rpc import openwhisk_action_pb2 as pb
from tests.rpc.conftest import LIMITED, rpc_error

pytestmark = pytest.mark.postgres

MANAGE = ["execute_actions", "read", "manage"]
CODE = "def main(args):\n    return {'v': %d, 'p': args.get('p')}\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def call(grpc_module, rpc, request, permissions=MANAGE):
    return grpc_module.call(rpc, request, metadata=grpc_module.auth(LIMITED, permissions))


def test_action_from_code_is_created_invoked_updated_and_deleted(grpc_module, emu):
    name = unique("g-act")
    made = call(grpc_module, "PutAction", pb.PutActionRequest(
        name=name, kind="python:3", code=CODE % 1, parameters='{"p": "x"}'))
    assert (made.entity_type, made.name, made.version) == ("action", name, "0.0.1")
    assert json.loads(made.entity)["parameters"] == {"p": "x"}
    run = call(grpc_module, "InvokeAction", pb.InvokeActionRequest(action_name=name,
                                                                    blocking=True))
    assert json.loads(run.result) == {"v": 1, "p": "x"}
    with pytest.raises(grpc.RpcError) as caught:
        call(grpc_module, "PutAction", pb.PutActionRequest(name=name, kind="python:3",
                                                           code=CODE % 1))
    assert rpc_error(caught)[0] == grpc.StatusCode.ALREADY_EXISTS
    updated = call(grpc_module, "PutAction", pb.PutActionRequest(
        name=name, kind="python:3", code=CODE % 2, overwrite=True))
    assert updated.version == "0.0.2"
    run = call(grpc_module, "InvokeAction", pb.InvokeActionRequest(action_name=name,
                                                                    blocking=True))
    assert json.loads(run.result)["v"] == 2
    shown = call(grpc_module, "GetAction", pb.GetActionRequest(name=name, code=True))
    assert json.loads(shown.entity)["code"] == CODE % 2
    call(grpc_module, "DeleteAction", pb.EntityRequest(name=name))
    with pytest.raises(grpc.RpcError) as caught:
        call(grpc_module, "GetAction", pb.GetActionRequest(name=name))
    assert rpc_error(caught)[0] == grpc.StatusCode.NOT_FOUND


def test_binding_trigger_and_rule_through_grpc(grpc_module, emu):
    package, binding = unique("g-pkg"), unique("g-bind")
    trigger, rule = unique("g-trig"), unique("g-rule")
    call(grpc_module, "PutPackage", pb.PutPackageRequest(name=package,
                                                         parameters='{"p": "package"}'))
    call(grpc_module, "PutAction", pb.PutActionRequest(name=f"{package}/a", kind="python:3",
                                                       code=CODE % 3))
    bound = call(grpc_module, "PutPackage", pb.PutPackageRequest(
        name=binding, binding=package, parameters='{"p": "binding"}'))
    assert json.loads(bound.entity)["binding"] == f"/guest/{package}"
    run = call(grpc_module, "InvokeAction", pb.InvokeActionRequest(
        action_name=f"{binding}/a", blocking=True))
    assert json.loads(run.result) == {"v": 3, "p": "binding"}
    call(grpc_module, "PutTrigger", pb.PutTriggerRequest(name=trigger))
    made = call(grpc_module, "PutRule", pb.PutRuleRequest(name=rule, trigger=trigger,
                                                          action="echo"))
    assert made.status == "active"
    off = call(grpc_module, "SetRuleState", pb.SetRuleStateRequest(name=rule, active=False))
    assert off.status == "inactive"
    listed = call(grpc_module, "ListEntities", pb.ListEntitiesRequest(collection="rules"))
    assert {(i.name, i.status) for i in listed.items} >= {(rule, "inactive")}
    for rpc, request in (("DeleteRule", pb.EntityRequest(name=rule)),
                         ("DeleteTrigger", pb.EntityRequest(name=trigger)),
                         ("DeletePackage", pb.DeletePackageRequest(name=binding)),
                         ("DeletePackage", pb.DeletePackageRequest(name=package, force=True))):
        assert call(grpc_module, rpc, request).success


@pytest.mark.parametrize(("rpc", "request_"), [
    ("PutAction", pb.PutActionRequest(name="g-denied", kind="python:3", code="x")),
    ("DeleteAction", pb.EntityRequest(name="echo")),
    ("PutPackage", pb.PutPackageRequest(name="g-denied")),
    ("DeletePackage", pb.DeletePackageRequest(name="g-denied")),
    ("PutTrigger", pb.PutTriggerRequest(name="g-denied")),
    ("DeleteTrigger", pb.EntityRequest(name="g-denied")),
    ("PutRule", pb.PutRuleRequest(name="g-denied", trigger="t", action="echo")),
    ("DeleteRule", pb.EntityRequest(name="ping-rule")),
    ("SetRuleState", pb.SetRuleStateRequest(name="ping-rule", active=False)),
    ("CreateRoute", pb.CreateRouteRequest(basepath="/b", relpath="/r", verb="GET",
                                          action="echo")),
    ("DeleteRoute", pb.DeleteRouteRequest(basepath="/b")),
])
def test_every_change_is_permission_denied_without_manage(grpc_module, emu, rpc, request_):
    with pytest.raises(grpc.RpcError) as caught:
        call(grpc_module, rpc, request_, permissions=["execute_actions", "read"])
    assert rpc_error(caught)[0] == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call(rpc, request_)  # the router: never manage
    assert rpc_error(caught)[0] == grpc.StatusCode.PERMISSION_DENIED
    assert emu.api("GET", "/namespaces/_/rules/ping-rule").json()["status"] == "active"
    assert "permission=manage" in grpc_module.proc.output()


@pytest.mark.parametrize("request_", [
    pb.PutActionRequest(name="a/b/c", kind="python:3", code="x"),
    pb.PutActionRequest(name="g-nokind", code="x"),
    pb.PutActionRequest(name="g-badparams", kind="python:3", code="x", parameters="[1]"),
    pb.PutActionRequest(name="g-badauth", kind="python:3", code="x",
                        require_whisk_auth="{not json"),
])
def test_bad_put_action_is_invalid_argument(grpc_module, emu, request_):
    with pytest.raises(grpc.RpcError) as caught:
        call(grpc_module, "PutAction", request_)
    assert rpc_error(caught)[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_code_above_the_payload_limit_fits_a_put_action(grpc_module, emu):
    name = unique("g-big")
    code = CODE % 5 + "# " + "x" * (2 * 1024 * 1024) + "\n"
    made = call(grpc_module, "PutAction", pb.PutActionRequest(name=name, kind="python:3",
                                                              code=code))
    assert made.version == "0.0.1"
