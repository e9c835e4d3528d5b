"""Managing OpenWhisk end to end: gunicorn, the gRPC process and the `owaction` CLI as real
processes, sharing PostgreSQL, against the emulator (its alarms feed and API gateway)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
import requests

from owaction.rpc import openwhisk_action_pb2 as pb
from tests.conftest import fresh_pg_database, module_env
from tests.rest.conftest import Gunicorn, rest_env
from tests.rest.helpers import make_token
from tests.rpc.conftest import LIMITED, GrpcModule, rpc_error

pytestmark = pytest.mark.postgres

OWACTION = str(Path(sys.executable).parent / "owaction")
MANAGE = ["execute_actions", "read", "manage"]
HELLO = "def main(args):\n    return {'version': %d, 'greeting': args.get('greeting')}\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def stack(emulator, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("manage")
    with fresh_pg_database("owaction_manage") as db_url:
        env = rest_env(module_env(tmp, emulator, db_url), WEB_WORKERS="2",
                       GRPC_METRICS_PORT="0")
        rest = Gunicorn(env, tmp)
        grpc_module = GrpcModule(tmp, env)
        try:
            yield rest, grpc_module, env, tmp
        finally:
            rest.stop()
            grpc_module.stop()


def cli(stack, *args: str) -> tuple[int, dict | None, str]:
    """``owaction ARGS --url <gunicorn>``: exit code, the JSON it printed, its stderr."""
    rest, _, env, tmp = stack
    proc = subprocess.run([OWACTION, *args, "--url", rest.url], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=tmp, timeout=60)
    body = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, body, proc.stderr


def grpc_call(grpc_module, rpc, request, permissions=MANAGE):
    return grpc_module.call(rpc, request, metadata=grpc_module.auth(LIMITED, permissions))


def activations_of(emu, name: str) -> int:
    return len(emu.activations(name))


def wait_for(check, timeout: float = 15.0, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    return check()


def test_action_from_code_invoked_updated_and_deleted_through_every_door(stack, emu):
    rest, grpc_module, _, tmp = stack
    api = rest.api(make_token(permissions=MANAGE))
    name = unique("hello")
    source = tmp / f"{name}.py"
    source.write_text(HELLO % 1)
    code, made, err = cli(stack, "action", "create", name, str(source), "-p", "greeting", "hi")
    assert code == 0, err
    assert (made["version"], made["kind"]) == ("0.0.1", "python:3")
    assert api.post("/api/v1/actions/invoke", {"action_name": name}).body["result"] == {
        "version": 1, "greeting": "hi"}
    code, _, err = cli(stack, "action", "create", name, str(source))
    assert code == 1 and "409" in err
    updated = grpc_call(grpc_module, "PutAction", pb.PutActionRequest(
        name=name, kind="python:3", code=HELLO % 2, overwrite=True))
    assert updated.version == "0.0.2"
    run = grpc_call(grpc_module, "InvokeAction", pb.InvokeActionRequest(action_name=name,
                                                                         blocking=True))
    assert json.loads(run.result) == {"version": 2, "greeting": "hi"}
    code, shown, _ = cli(stack, "action", "get", name, "--code")
    assert code == 0 and shown["code"] == HELLO % 2
    assert cli(stack, "action", "delete", name)[0] == 0
    assert api.get(f"/api/v1/actions/{name}").status == 404
    assert cli(stack, "action", "get", name)[0] == 1


def test_invoking_through_a_binding_merges_its_parameters(stack, emu):
    rest, grpc_module, _, _ = stack
    api = rest.api(make_token(permissions=MANAGE))
    package, binding = unique("pkg"), unique("bind")
    assert api.request("PUT", f"/api/v1/packages/{package}",
                       json={"parameters": {"greeting": "from package"}}).status == 200
    assert api.request("PUT", f"/api/v1/actions/{package}/hello",
                       json={"kind": "python:3", "code": HELLO % 7}).status == 200
    code, bound, err = cli(stack, "package", "bind", package, binding,
                           "-p", "greeting", "from binding")
    assert code == 0, err
    assert bound["binding"] == f"/guest/{package}"
    run = grpc_call(grpc_module, "InvokeAction", pb.InvokeActionRequest(
        action_name=f"{binding}/hello", blocking=True))
    assert json.loads(run.result) == {"version": 7, "greeting": "from binding"}
    direct = api.post("/api/v1/actions/invoke", {"action_name": f"{package}/hello"})
    assert direct.body["result"]["greeting"] == "from package"
    assert cli(stack, "package", "delete", binding)[0] == 0
    assert cli(stack, "package", "delete", package)[0] == 1  # not empty: 409
    assert cli(stack, "package", "delete", package, "--force")[0] == 0


def test_an_alarm_feed_fires_the_rule_until_it_is_disabled(stack, emu):
    rest, grpc_module, _, tmp = stack
    api = rest.api(make_token(permissions=MANAGE))
    action, trigger, rule = unique("ticked"), unique("tick"), unique("tick-rule")
    source = tmp / f"{action}.py"
    source.write_text("def main(args):\n    return {'got': args.get('beat')}\n")
    assert cli(stack, "action", "create", action, str(source))[0] == 0
    made = api.request("PUT", f"/api/v1/triggers/{trigger}", json={
        "feed": "/whisk.system/alarms/alarm",
        "parameters": {"cron": "* * * * * *", "trigger_payload": {"beat": "tock"}}})
    assert made.status == 200, made.body
    assert made.body["feed"] == "/whisk.system/alarms/alarm"
    code, linked, err = cli(stack, "rule", "create", rule, trigger, action)
    assert code == 0 and linked["status"] == "active", err
    # The provider fires every second: the rule's action runs on schedule.
    assert wait_for(lambda: activations_of(emu, action) >= 2), "the alarm never ran the action"
    [latest, *_] = emu.activations(action)
    assert latest["response"]["result"] == {"got": "tock"}
    shown = grpc_call(grpc_module, "GetTrigger", pb.EntityRequest(name=trigger))
    assert json.loads(shown.entity)["feed_state"]["config"]["cron"] == "* * * * * *"
    code, off, _ = cli(stack, "rule", "disable", rule)
    assert code == 0 and off["status"] == "inactive"
    time.sleep(1.5)  # a firing already on its way may still land
    before = activations_of(emu, action)
    time.sleep(3)
    assert activations_of(emu, action) == before, "a disabled rule still ran the action"
    assert cli(stack, "rule", "delete", rule)[0] == 0
    code, gone, err = cli(stack, "trigger", "delete", trigger)
    assert code == 0 and gone["feed_error"] is None, err
    assert api.get(f"/api/v1/triggers/{trigger}").status == 404
    assert cli(stack, "action", "delete", action)[0] == 0


def test_an_api_route_serves_its_web_action(stack, emu):
    rest, grpc_module, _, tmp = stack
    action, base = unique("webby"), f"/{unique('base')}"
    source = tmp / f"{action}.py"
    source.write_text("def main(args):\n    return {'routed': args.get('q')}\n")
    assert cli(stack, "action", "create", action, str(source), "--web", "true")[0] == 0
    code, route, err = cli(stack, "route", "create", base, "/hi", "get", action)
    assert code == 0, err
    assert (route["basepath"], route["relpath"], route["verb"]) == (base, "/hi", "GET")
    served = requests.get(route["url"], params={"q": "yes"}, timeout=30)
    assert served.status_code == 200 and served.json() == {"routed": "yes"}
    listed = grpc_call(grpc_module, "ListRoutes", pb.ListRoutesRequest(basepath=base))
    assert [(r.relpath, r.verb) for r in listed.routes] == [("/hi", "GET")]
    code, deleted, _ = cli(stack, "route", "delete", base)
    assert code == 0 and deleted == {"deleted": 1}
    assert requests.get(route["url"], timeout=30).status_code == 404
    assert cli(stack, "action", "delete", action)[0] == 0


def test_every_door_refuses_changes_without_manage(stack, emu):
    rest, grpc_module, _, tmp = stack
    name = unique("denied")
    plain = rest.api(make_token())  # execute_actions and read
    reply = plain.request("PUT", f"/api/v1/actions/{name}",
                          json={"kind": "python:3", "code": HELLO % 1})
    assert reply.status == 403 and reply.error_code == "permission_denied"
    with pytest.raises(grpc.RpcError) as caught:
        grpc_module.call("PutAction", pb.PutActionRequest(name=name, kind="python:3",
                                                          code="x"))  # the router's token
    assert rpc_error(caught)[0] == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as caught:
        grpc_call(grpc_module, "SetRuleState", pb.SetRuleStateRequest(name="ping-rule"),
                  permissions=["execute_actions", "read"])
    assert rpc_error(caught)[0] == grpc.StatusCode.PERMISSION_DENIED
    source = tmp / f"{name}.py"
    source.write_text(HELLO % 1)
    code, _, err = cli(stack, "action", "create", name, str(source), "--token", make_token())
    assert code == 1 and "403" in err
    assert emu.api("GET", f"/namespaces/_/actions/{name}").status_code == 404
    assert emu.api("GET", "/namespaces/_/rules/ping-rule").json()["status"] == "active"
    assert "AUTHZ" in rest.proc.output() and "permission=manage" in grpc_module.proc.output()
