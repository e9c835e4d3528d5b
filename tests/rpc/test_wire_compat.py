"""A client generated from WaddleBot's original proto (CONTRACT.md §1, nothing added) works
unchanged against this server. It runs in its own process: its messages have the same full names
as ours, which one protobuf descriptor pool cannot hold twice."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.postgres

ORIGINAL_PROTO = """
syntax = "proto3";
package openwhisk_action;

service OpenWhiskActionService {
  rpc InvokeAction(InvokeActionRequest) returns (InvokeActionResponse);
  rpc InvokeActionAsync(InvokeActionAsyncRequest) returns (InvokeActionAsyncResponse);
  rpc InvokeSequence(InvokeSequenceRequest) returns (InvokeSequenceResponse);
  rpc InvokeWebAction(InvokeWebActionRequest) returns (InvokeWebActionResponse);
  rpc FireTrigger(FireTriggerRequest) returns (FireTriggerResponse);
  rpc GetActivation(GetActivationRequest) returns (GetActivationResponse);
  rpc ListActions(ListActionsRequest) returns (ListActionsResponse);
}

message InvokeActionRequest {
  string namespace = 1; string action_name = 2; string payload = 3; bool blocking = 4;
  int32 timeout = 5;
}
message InvokeActionResponse {
  bool success = 1; string activation_id = 2; string result = 3; int64 duration = 4;
  int64 start_time = 5; int64 end_time = 6; string status = 7; string error = 8;
}
message InvokeActionAsyncRequest {
  string namespace = 1; string action_name = 2; string payload = 3;
}
message InvokeActionAsyncResponse { bool success = 1; string activation_id = 2; string error = 3; }
message InvokeSequenceRequest {
  string namespace = 1; string sequence_name = 2; string payload = 3;
}
message InvokeSequenceResponse {
  bool success = 1; string activation_id = 2; string result = 3; string error = 4;
}
message InvokeWebActionRequest {
  string namespace = 1; string package_name = 2; string action_name = 3; string payload = 4;
  string method = 5; map<string, string> headers = 6;
}
message InvokeWebActionResponse {
  bool success = 1; int32 status_code = 2; string response = 3;
  map<string, string> response_headers = 4; string error = 5;
}
message FireTriggerRequest { string namespace = 1; string trigger_name = 2; string payload = 3; }
message FireTriggerResponse { bool success = 1; string activation_id = 2; string error = 3; }
message GetActivationRequest { string namespace = 1; string activation_id = 2; }
message GetActivationResponse {
  bool success = 1; string activation_id = 2; string result = 3; int64 duration = 4;
  string status = 5; repeated string logs = 6; string error = 7;
}
message ListActionsRequest { string namespace = 1; int32 limit = 2; int32 skip = 3; }
message ListActionsResponse { bool success = 1; repeated ActionInfo actions = 2; string error = 3; }
message ActionInfo {
  string name = 1; string namespace = 2; string version = 3; bool published = 4;
}
"""

# The client a WaddleBot service would have written: only the original generated code.
CLIENT = """
import json, sys, time
import grpc
from google.protobuf.json_format import MessageToDict
import openwhisk_action_pb2 as pb
import openwhisk_action_pb2_grpc as pb_grpc

target, token = sys.argv[1], sys.argv[2]
md = (("authorization", "Bearer " + token),)
out = {}
with grpc.insecure_channel(target) as channel:
    stub = pb_grpc.OpenWhiskActionServiceStub(channel)
    def call(name, request):
        reply = getattr(stub, name)(request, metadata=md, timeout=30)
        return MessageToDict(reply, preserving_proto_field_name=True,
                             always_print_fields_with_no_presence=True)
    out["InvokeAction"] = call("InvokeAction", pb.InvokeActionRequest(
        namespace="guest", action_name="hello", payload='{"name": "Old"}', blocking=True,
        timeout=10000))
    out["InvokeActionFailed"] = call("InvokeAction", pb.InvokeActionRequest(
        action_name="fail", blocking=True))
    out["InvokeActionAsync"] = call("InvokeActionAsync", pb.InvokeActionAsyncRequest(
        action_name="echo", payload='{"old": true}'))
    out["InvokeSequence"] = call("InvokeSequence", pb.InvokeSequenceRequest(
        sequence_name="hello-sequence", payload='{"name": "Seq"}'))
    out["InvokeWebAction"] = call("InvokeWebAction", pb.InvokeWebActionRequest(
        package_name="default", action_name="webstatus", payload='{"status": 201}',
        method="POST", headers={"x-old": "1"}))
    out["FireTrigger"] = call("FireTrigger", pb.FireTriggerRequest(
        trigger_name="ping", payload="{}"))
    deadline = time.monotonic() + 15
    while True:
        try:
            out["GetActivation"] = call("GetActivation", pb.GetActivationRequest(
                activation_id=out["InvokeActionAsync"]["activation_id"]))
            break
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    out["ListActions"] = call("ListActions", pb.ListActionsRequest(limit=3))
print(json.dumps(out))
"""


def test_a_client_of_the_original_proto_works_unchanged(tmp_path, grpc_module):
    from grpc_tools import protoc

    (tmp_path / "openwhisk_action.proto").write_text(ORIGINAL_PROTO)
    assert protoc.main(["protoc", f"-I{tmp_path}", f"--python_out={tmp_path}",
                        f"--grpc_python_out={tmp_path}", "openwhisk_action.proto"]) == 0
    (tmp_path / "client.py").write_text(CLIENT)

    done = subprocess.run(
        [sys.executable, "client.py", grpc_module.target, grpc_module.token()],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )

    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    invoked = out["InvokeAction"]
    assert set(invoked) == {"success", "activation_id", "result", "duration", "start_time",
                            "end_time", "status", "error"}
    assert (invoked["success"], invoked["status"], invoked["error"]) == (True, "success", "")
    assert json.loads(invoked["result"]) == {"message": "Hello Old"}
    assert int(invoked["end_time"]) >= int(invoked["start_time"]) > 0
    failed = out["InvokeActionFailed"]
    assert (failed["success"], failed["status"], failed["error"]) == (
        False, "application error", "something went wrong")
    assert out["InvokeActionAsync"]["success"] is True
    assert len(out["InvokeActionAsync"]["activation_id"]) == 32
    assert json.loads(out["InvokeSequence"]["result"]) == {"message": "Hello Seq"}
    web = out["InvokeWebAction"]
    # The original module called the URL with no extension: OpenWhisk's .http answer.
    assert (web["success"], web["status_code"]) == (True, 201)
    assert json.loads(web["response"]) == {"created": True, "status": 201}
    assert out["FireTrigger"]["success"] is True and out["FireTrigger"]["activation_id"]
    activation = out["GetActivation"]
    assert activation["activation_id"] == out["InvokeActionAsync"]["activation_id"]
    assert (activation["success"], activation["status"]) == (True, "success")
    assert json.loads(activation["result"]) == {"old": True}
    listed = out["ListActions"]
    assert listed["success"] is True and len(listed["actions"]) == 3
    assert set(listed["actions"][0]) == {"name", "namespace", "version", "published"}
