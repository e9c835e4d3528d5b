"""Tracing: off (and never imported) without OTEL settings; with them, spans for the OpenWhisk
call and the database, a caller's traceparent continued, sent on, and stored."""

from __future__ import annotations

import subprocess
import sys

import pytest

from owaction import tracing
from owaction.service import CallContext

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


def test_without_otel_settings_nothing_is_imported_or_configured(tmp_path):
    code = (
        "import sys\n"
        "from owaction import tracing\n"
        "import owaction.service, owaction.store, owaction.rest, owaction.rpc.server\n"
        "assert tracing.configure('x') is False and not tracing.enabled()\n"
        "with tracing.span('nothing') as s: assert s is None\n"
        "assert tracing.current_traceparent() is None\n"
        # pybreaker imports OpenTelemetry's API when it is installed; the tracing SDK is ours.
        "assert 'opentelemetry.sdk.trace' not in sys.modules\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("env", "wanted"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, False),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, False),
])
def test_the_standard_variables_switch_tracing_on(env, wanted):
    assert tracing.wanted(env) is wanted


@pytest.fixture
def spans():
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    assert tracing.configure("owaction-test", exporter=exporter)
    yield exporter
    tracing._TRACER = None  # the provider stays, but our spans stop (tests only)


def test_spans_continue_the_callers_trace_and_it_is_stored(make_service, spans):
    service = make_service()
    ctx = CallContext(source="rest", caller="svc", traceparent=TRACEPARENT,
                      trace_id=CALLER_TRACE)
    with tracing.span("HTTP POST /api/v1/actions/invoke", kind="server",
                      traceparent=TRACEPARENT):
        result = service.invoke_action(ctx, action_name="hello", payload={})
    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    assert "openwhisk invoke_action" in names and "db session" in names
    assert {format(s.context.trace_id, "032x") for s in finished} == {CALLER_TRACE}
    openwhisk = next(s for s in finished if s.name == "openwhisk invoke_action")
    assert openwhisk.attributes["action"] == "hello"
    assert service.get_execution(result.execution_id).trace_id == CALLER_TRACE


def test_a_new_trace_is_stored_when_the_caller_sent_none(make_service, spans):
    service = make_service()
    with tracing.span("request", kind="server"):
        result = service.invoke_action(CallContext(source="grpc"), action_name="echo")
    root = next(s for s in spans.get_finished_spans() if s.name == "request")
    stored = service.get_execution(result.execution_id).trace_id
    assert stored == format(root.context.trace_id, "032x")


def test_traceparent_sent_to_openwhisk_is_the_client_span(make_service, spans):
    service = make_service()
    seen = []
    original = service.client.invoke_action

    def recording(*args, **kwargs):
        seen.append(kwargs.get("headers"))
        return original(*args, **kwargs)

    service.client.invoke_action = recording
    with tracing.span("request", kind="server", traceparent=TRACEPARENT):
        service.invoke_action(CallContext(traceparent=TRACEPARENT), action_name="echo")
    sent = seen[0]["traceparent"]
    client_span = next(s for s in spans.get_finished_spans()
                       if s.name == "openwhisk invoke_action")
    assert sent.split("-")[1] == CALLER_TRACE
    assert sent.split("-")[2] == format(client_span.context.span_id, "016x")


def test_a_router_command_has_its_openwhisk_span(make_service, spans, tmp_path):
    commands = tmp_path / "commands.json"
    commands.write_text('{"commands": {"#hello": {"action": "hello"}}}')
    service = make_service(commands_file=str(commands))
    reply = service.execute_command(CallContext(source="router", caller="router_module"),
                                    command="#hello", session_id="sess_span")
    assert reply["success"] is True
    openwhisk = next(s for s in spans.get_finished_spans()
                     if s.name == "openwhisk execute_command")
    assert openwhisk.attributes["action"] == "hello"
    assert openwhisk.attributes["execution_id"] == reply["execution_id"]
