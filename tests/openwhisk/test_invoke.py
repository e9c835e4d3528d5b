"""Invoking actions, sequences, web actions and triggers against the emulator on a real port."""

from __future__ import annotations

import json
import re
import time

import pytest

from owaction.openwhisk import (
    ActionResult,
    Activation,
    ActivationPending,
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServerError,
    Throttled,
    TriggerFired,
    Unauthorized,
    Unavailable,
    WebActionResponse,
)
from owaction.openwhisk.models import STATUS_APPLICATION_ERROR, STATUS_WHISK_ERROR

ACTIVATION_ID = re.compile(r"\A[0-9a-f]{32}\Z")


def wait_for_activation(client, activation_id: str, timeout: float = 15) -> Activation:
    """Poll as a caller must: OpenWhisk answers 404 until the activation is stored."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.get_activation(activation_id)
        except NotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_blocking_invoke_returns_the_full_activation(client):
    before = int(time.time() * 1000)
    activation = client.invoke_action("hello", {"name": "Ada"})
    assert isinstance(activation, Activation)
    assert ACTIVATION_ID.match(activation.activation_id)
    assert activation.success is True
    assert activation.status == "success"
    assert activation.result == {"message": "Hello Ada"}
    assert activation.name == "hello"
    assert activation.namespace == "guest"
    assert activation.start >= before - 1000
    assert activation.end >= activation.start
    assert activation.duration == activation.end - activation.start
    assert activation.logs == ()  # a blocking answer never carries logs
    assert activation.annotation("kind") == "python:3"
    assert activation.annotation("path") == "guest/hello"
    assert activation.error is None


def test_blocking_invoke_with_result_returns_only_the_result_and_the_activation_id(client):
    out = client.invoke_action("echo", {"a": [1, 2], "b": {"c": None}}, result=True)
    assert isinstance(out, ActionResult)
    assert out.success is True
    assert out.result == {"a": [1, 2], "b": {"c": None}}
    assert ACTIVATION_ID.match(out.activation_id)
    assert client.get_activation(out.activation_id).result == out.result


def test_non_blocking_invoke_returns_pending_and_the_activation_completes_later(client):
    pending = client.invoke_action_async("echo", {"x": 1})
    assert isinstance(pending, ActivationPending)
    assert pending.demoted is False
    assert ACTIVATION_ID.match(pending.activation_id)
    activation = wait_for_activation(client, pending.activation_id)
    assert activation.activation_id == pending.activation_id
    assert activation.result == {"x": 1}


def test_blocking_invoke_past_its_wait_is_demoted_to_pending_not_an_error(client):
    out = client.invoke_action("sleep", {"ms": 1500}, timeout_ms=200)
    assert isinstance(out, ActivationPending)
    assert out.demoted is True
    # The action kept running and finishes normally.
    activation = wait_for_activation(client, out.activation_id)
    assert activation.result == {"slept_ms": 1500}


def test_demoted_blocking_invoke_with_result_is_pending_too(client):
    out = client.invoke_action("sleep", {"ms": 800}, result=True, timeout_ms=100)
    assert out == ActivationPending(out.activation_id, demoted=True)


def test_action_failure_is_an_activation_with_success_false_not_an_exception(client):
    activation = client.invoke_action("fail")
    assert isinstance(activation, Activation)
    assert activation.success is False
    assert activation.status == STATUS_APPLICATION_ERROR
    assert activation.error == "something went wrong"
    assert activation.result == {"error": "something went wrong"}


def test_action_failure_with_result_is_an_action_result_with_success_false(client):
    out = client.invoke_action("fail", result=True)
    assert isinstance(out, ActionResult)
    assert out.success is False
    assert out.result == {"error": "something went wrong"}
    assert ACTIVATION_ID.match(out.activation_id)


def test_whisk_internal_error_500_with_an_activation_body_is_an_activation(client, emu):
    body = {
        "activationId": "e" * 32, "namespace": "guest", "name": "hello", "version": "0.0.1",
        "subject": "guest", "start": 1, "end": 3, "duration": 2, "publish": False,
        "logs": [], "annotations": [],
        "response": {"status": "whisk internal error", "success": False,
                     "result": {"error": "Sequence failed."}},
    }
    emu.fault(method="POST", path="/actions/hello$", status=500, body=body,
              headers={"x-openwhisk-activation-id": "e" * 32})
    activation = client.invoke_action("hello")
    assert activation.activation_id == "e" * 32
    assert activation.success is False
    assert activation.status == STATUS_WHISK_ERROR
    assert activation.error == "Sequence failed."


def test_whisk_internal_error_with_result_is_an_action_result(client, emu):
    emu.fault(method="POST", path="/actions/hello$", status=500,
              body={"error": "Sequence failed."}, headers={"x-openwhisk-activation-id": "e" * 32})
    out = client.invoke_action("hello", result=True)
    assert out == ActionResult("e" * 32, {"error": "Sequence failed."}, success=False)


def test_an_array_result_is_valid(client, emu):
    emu.fault(method="POST", path="/actions/hello$", status=200, body=[1, "two", {"three": 3}],
              headers={"x-openwhisk-activation-id": "f" * 32})
    out = client.invoke_action("hello")
    assert out == ActionResult("f" * 32, [1, "two", {"three": 3}], success=True)


def test_sequence_runs_its_components_in_order(client):
    activation = client.invoke_sequence("hello-sequence", {"name": "Seq"})
    assert activation.success is True
    assert activation.result == {"message": "Hello Seq"}
    assert activation.annotation("kind") == "sequence"
    # A sequence's logs are its components' activation ids.
    full = wait_for_activation(client, activation.activation_id)
    assert len(full.logs) == 2 and all(ACTIVATION_ID.match(x) for x in full.logs)


def test_packaged_action_is_invoked_by_package_slash_name(client):
    out = client.invoke_action("waddlebot/weather", {"args": "Berlin"}, result=True)
    assert out.result == {"message": "Weather for Berlin: sunny"}


def test_unknown_action_is_not_found_with_openwhisks_message_and_transaction_id(client):
    with pytest.raises(NotFound) as info:
        client.invoke_action("no-such-action", request_id="trace-me-1")
    assert info.value.status_code == 404
    assert info.value.message == "The requested resource does not exist."
    assert info.value.request_id == "trace-me-1"


def test_wrong_credentials_are_unauthorized(make_client, emu):
    client = make_client(auth_key="23bc46b1-71f6-4ed5-8c54-816aa4f8c502:wrong")
    with pytest.raises(Unauthorized) as info:
        client.invoke_action("hello")
    assert info.value.status_code == 401
    assert info.value.message == "The supplied authentication is invalid"


def test_another_namespace_is_forbidden(client):
    with pytest.raises(Forbidden) as info:
        client.invoke_action("hello", namespace="someone-else")
    assert info.value.status_code == 403
    assert "someone-else/hello" in info.value.message


def test_name_of_another_collection_is_a_conflict(client):
    with pytest.raises(Conflict) as info:
        client.invoke_action("ping")
    assert info.value.status_code == 409
    assert info.value.message == "Resource by this name exists but is not in this collection."


def test_payload_over_one_mib_is_payload_too_large(client):
    with pytest.raises(PayloadTooLarge) as info:
        client.invoke_action("echo", {"blob": "x" * (1024 * 1024 + 10)})
    assert info.value.status_code == 413
    assert info.value.message.startswith("Request larger than allowed:")


def test_timeout_beyond_openwhisks_maximum_is_a_bad_request(client):
    with pytest.raises(BadRequest) as info:
        client.invoke_action("hello", timeout_ms=65000)
    assert info.value.status_code == 400
    assert "Timeout must be number of milliseconds up to 60000." in info.value.message


def test_throttled_invoke_carries_retry_after(client, emu):
    emu.fault(method="POST", path="/actions/hello$", status=429,
              body={"error": "Too many requests in the last minute (count: 61, allowed: 60).",
                    "code": "x"},
              headers={"Retry-After": "7"})
    with pytest.raises(Throttled) as info:
        client.invoke_action("hello")
    assert info.value.status_code == 429
    assert info.value.retry_after == 7.0
    assert info.value.message == "Too many requests in the last minute (count: 61, allowed: 60)."


def test_throttled_retry_after_as_an_http_date(client, emu):
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    emu.fault(method="POST", path="/actions/hello$", status=429, headers={"Retry-After": when})
    with pytest.raises(Throttled) as info:
        client.invoke_action("hello")
    assert 25 <= info.value.retry_after <= 31


def test_real_throttle_of_the_emulator_is_throttled(make_client, start_emulator):
    emu = start_emulator("--per-minute-limit", "2")
    client = make_client(api_host=emu.url, auth_key=emu.auth)
    client.invoke_action("echo", result=True)
    client.invoke_action("echo", result=True)
    with pytest.raises(Throttled) as info:
        client.invoke_action("echo", result=True)
    assert info.value.message == "Too many requests in the last minute (count: 2, allowed: 2)."


def test_502_without_an_activation_is_bad_gateway(client, emu):
    emu.fault(method="POST", path="/actions/hello$", status=502,
              body={"error": "The edge could not reach the controller.", "code": "abc"})
    with pytest.raises(BadGateway) as info:
        client.invoke_action("hello")
    assert info.value.status_code == 502
    assert info.value.message == "The edge could not reach the controller."
    assert info.value.request_id == "abc"


@pytest.mark.parametrize("status", [500, 503, 504])
def test_server_errors_on_invoke_raise_their_status(client, emu, status):
    emu.fault(method="POST", path="/actions/hello$", status=status)
    with pytest.raises(ServerError) as info:
        client.invoke_action("hello")
    assert info.value.status_code == status
    assert type(info.value).__name__ == {500: "ServerError", 503: "Unavailable",
                                         504: "Unavailable"}[status]


def test_non_json_error_body_keeps_its_text(client, emu):
    emu.fault(method="POST", path="/actions/hello$", status=503, body="<html>down</html>")
    with pytest.raises(ServerError) as info:
        client.invoke_action("hello")
    assert info.value.status_code == 503
    assert info.value.message == "<html>down</html>"


# --- triggers -------------------------------------------------------------------------------


def test_trigger_with_an_active_rule_fires_and_runs_the_rules_action(client):
    fired = client.fire_trigger("ping", {"hello": "rule"})
    assert isinstance(fired, TriggerFired)
    assert fired.fired and ACTIVATION_ID.match(fired.activation_id)
    trigger_activation = wait_for_activation(client, fired.activation_id)
    assert trigger_activation.name == "ping"
    assert trigger_activation.result == {"hello": "rule"}


def test_trigger_without_an_active_rule_is_fired_with_no_activation(client):
    assert client.fire_trigger("lonely", {"x": 1}) == TriggerFired(None)


def test_unknown_trigger_is_not_found(client):
    with pytest.raises(NotFound):
        client.fire_trigger("no-such-trigger")


# --- web actions ----------------------------------------------------------------------------


def test_web_action_json_answer(client):
    response = client.invoke_web_action("webhello", {"name": "Web"}, extension=".json")
    assert isinstance(response, WebActionResponse)
    assert response.status_code == 200
    assert response.content_type.startswith("application/json")
    assert response.body and b"Hello Web" in response.body
    assert ACTIVATION_ID.match(response.activation_id or "")


def test_web_action_http_answer_keeps_status_headers_and_body(client):
    response = client.invoke_web_action("webpage", method="GET", extension=".http")
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    assert response.text() == "<h1>Hello</h1>"


def test_web_action_error_status_is_its_answer_not_an_exception(client):
    response = client.invoke_web_action("webstatus", {"status": 404})
    assert response.status_code == 404
    assert ACTIVATION_ID.match(response.activation_id or "")


def test_openwhisks_own_refusal_of_a_web_action_is_an_error(client, emu):
    with pytest.raises(NotFound):
        client.invoke_web_action("no-such-web-action")
    emu.fault(path="/web/guest/default/webhello", status=503)
    with pytest.raises(Unavailable):
        client.invoke_web_action("webhello", {"name": "x"})


def test_the_default_extension_is_openwhisks_http(client):
    response = client.invoke_web_action("webstatus", {"status": 201})
    assert response.status_code == 201
    assert response.headers["X-Example"] == "yes"
    assert json.loads(response.body) == {"created": True, "status": 201}


@pytest.mark.parametrize("status, name", [(408, "BadRequest"), (415, "BadRequest"),
                                          (507, "ServerError")])
def test_statuses_outside_the_table_map_by_class(client, emu, status, name):
    emu.fault(method="POST", path="/actions/hello$", status=status)
    with pytest.raises(Exception) as info:
        client.invoke_action("hello")
    assert type(info.value).__name__ == name
    assert info.value.status_code == status


def test_a_success_status_with_a_body_openwhisk_never_sends_is_a_bad_gateway(client, emu):
    emu.fault(method="GET", path="/namespaces/[^/]+/actions$", status=200, body="not a list")
    with pytest.raises(BadGateway) as info:
        client.list_actions()
    assert "unexpected body" in info.value.message
    emu.fault(method="POST", path="/triggers/ping$", status=202, body={"no": "id"})
    with pytest.raises(BadGateway):
        client.fire_trigger("ping")
