"""The invoking use cases: actions, sequences, web actions and triggers."""

from __future__ import annotations

import json
from typing import Any

from owaction import errors
from owaction.names import (
    InvalidName,
    check_name,
    split_action,
)
from owaction.openwhisk.client import DEFAULT_WEB_EXTENSION, WEB_METHODS, reserved_header
from owaction.openwhisk.models import (
    TriggerFired,
    WebActionResponse,
)
from owaction.service.context import CallContext
from owaction.service.pipeline import Pipeline
from owaction.service.results import ExecutionResult
from owaction.service.validation import (
    HEADER_NAME,
    HEADER_VALUE,
    WEB_EXTENSIONS,
)
from owaction.store.records import ACCEPTED, FAILED, SUCCEEDED


class Invocations(Pipeline):
    """Each checks its input and hands the pipeline its OpenWhisk call."""

    def _invoke(self, ctx: CallContext, *, op: str, action_type: str, name: str,
                namespace: str | None, payload: Any, blocking: bool,
                timeout_ms: int | None) -> ExecutionResult:
        ns = self._namespace(namespace)
        name = self._action(name, "sequence_name" if action_type == "sequence" else "action_name")
        body = self._payload(payload)
        timeout_ms = self._timeout(timeout_ms)
        wait_ms, read_timeout = self._bounds(ctx, timeout_ms) if blocking else (None, None)

        def call(execution_id: str, started: float) -> ExecutionResult:
            if blocking:
                outcome = self.client.invoke_action(
                    name, body, namespace=ns, blocking=True, timeout_ms=wait_ms,
                    request_id=ctx.request_id, read_timeout=read_timeout,
                    headers=self._trace_headers(ctx),
                )
            else:
                outcome = self.client.invoke_action_async(
                    name, body, namespace=ns, request_id=ctx.request_id,
                )
            return self._from_activation(execution_id, action_type, outcome, started)

        return self._execute(ctx, op=op, action_type=action_type, target=name, namespace=ns,
                             body=body, blocking=blocking, timeout_ms=timeout_ms, call=call)

    def invoke_action(self, ctx: CallContext, *, action_name: str, namespace: str | None = None,
                      payload: Any = None, blocking: bool = True,
                      timeout_ms: int | None = None) -> ExecutionResult:
        return self._invoke(ctx, op="invoke_action", action_type="action" if blocking else "async",
                            name=action_name, namespace=namespace, payload=payload,
                            blocking=blocking, timeout_ms=timeout_ms)

    def invoke_action_async(self, ctx: CallContext, *, action_name: str,
                            namespace: str | None = None, payload: Any = None) -> ExecutionResult:
        return self._invoke(ctx, op="invoke_action_async", action_type="async", name=action_name,
                            namespace=namespace, payload=payload, blocking=False, timeout_ms=None)

    def invoke_sequence(self, ctx: CallContext, *, sequence_name: str,
                        namespace: str | None = None, payload: Any = None, blocking: bool = True,
                        timeout_ms: int | None = None) -> ExecutionResult:
        return self._invoke(ctx, op="invoke_sequence", action_type="sequence", name=sequence_name,
                            namespace=namespace, payload=payload, blocking=blocking,
                            timeout_ms=timeout_ms)

    def invoke_web_action(self, ctx: CallContext, *, action_name: str,
                          package_name: str | None = "default", namespace: str | None = None,
                          payload: Any = None, method: str = "POST",
                          headers: dict[str, str] | None = None,
                          extension: str | None = DEFAULT_WEB_EXTENSION) -> ExecutionResult:
        ns = self._namespace(namespace)
        package = package_name or "default"
        try:
            split_action(f"{package}/{action_name}")
        except InvalidName as exc:
            raise errors.InvalidInput(str(exc)) from None
        method = (method or "POST").upper()
        if method not in WEB_METHODS:
            raise errors.InvalidInput(f"method must be one of {', '.join(WEB_METHODS)}")
        extension = extension if extension is not None else DEFAULT_WEB_EXTENSION
        if extension and not extension.startswith("."):
            extension = "." + extension
        if extension not in WEB_EXTENSIONS:
            raise errors.InvalidInput(f"extension must be one of {', '.join(WEB_EXTENSIONS[1:])}")
        if not extension and "." in action_name:
            # OpenWhisk would read what follows the dot as the extension; refused before
            # anything is recorded, like every other bad input.
            raise errors.InvalidInput("action_name with a dot needs an extension")
        headers = dict(headers or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise errors.InvalidInput("headers must map strings to strings")
        for name, value in headers.items():
            if not HEADER_NAME.match(name) or not HEADER_VALUE.match(value):
                raise errors.InvalidInput(
                    f"header {name[:64]!r} cannot be sent: names are HTTP tokens, values "
                    "visible ASCII without leading or trailing spaces")
            if reserved_header(name):
                raise errors.InvalidInput(
                    f"header {name!r} cannot be sent: hop-by-hop and framing headers (Host, "
                    "Connection, Content-Length, Transfer-Encoding, TE, Trailer, Upgrade, "
                    "Keep-Alive, Expect, Proxy-*) are the module's own")
        body = self._payload(payload)
        target = f"{package}/{action_name}"
        _, read_timeout = self._bounds(ctx, None)  # the caller's deadline bounds the wait

        def call(execution_id: str, started: float) -> ExecutionResult:
            response: WebActionResponse = self.client.invoke_web_action(
                action_name, body, namespace=ns, package=package, method=method,
                headers=headers, extension=extension, request_id=ctx.request_id,
                read_timeout=read_timeout,
            )
            duration = int((self._clock() - started) * 1000)
            success = response.status_code < 400
            text = response.text()
            if response.status_code == 202:
                outcome = ACCEPTED if response.activation_id else SUCCEEDED
            else:
                outcome = SUCCEEDED if success else FAILED
            error = None if success else (text[:1000] or f"HTTP {response.status_code}")
            if outcome == ACCEPTED:
                self._finish(execution_id, status=ACCEPTED,
                             activation_id=response.activation_id, status_code=202)
            else:
                self._finish(execution_id, status=outcome, success=success,
                             activation_id=response.activation_id,
                             result=_web_result(response), duration_ms=duration, error=error,
                             status_code=response.status_code)
            return ExecutionResult(
                execution_id=execution_id, action_type="web", outcome=outcome,
                status="success" if success else "error", activation_id=response.activation_id,
                result=_web_result(response), error=error, duration_ms=duration,
                start_time=int(started * 1000), end_time=int(self._clock() * 1000),
                status_code=response.status_code, response_body=text,
                response_headers=dict(response.headers),
            )

        return self._execute(ctx, op="invoke_web_action", action_type="web", target=target,
                             namespace=ns, body=body, blocking=True, timeout_ms=None, call=call,
                             fingerprint=(method, extension, tuple(sorted(headers.items()))))

    def fire_trigger(self, ctx: CallContext, *, trigger_name: str, namespace: str | None = None,
                     payload: Any = None) -> ExecutionResult:
        ns = self._namespace(namespace)
        try:
            check_name(trigger_name, "trigger_name")
        except InvalidName as exc:
            raise errors.InvalidInput(str(exc)) from None
        body = self._payload(payload)

        def call(execution_id: str, started: float) -> ExecutionResult:
            fired: TriggerFired = self.client.fire_trigger(
                trigger_name, body, namespace=ns, request_id=ctx.request_id,
            )
            duration = int((self._clock() - started) * 1000)
            if fired.fired:
                self._finish(execution_id, status=ACCEPTED, activation_id=fired.activation_id,
                             status_code=202)
                return ExecutionResult(execution_id=execution_id, action_type="trigger",
                                       outcome=ACCEPTED, status="accepted",
                                       activation_id=fired.activation_id, duration_ms=duration)
            self._finish(execution_id, status=SUCCEEDED, success=True, duration_ms=duration,
                         status_code=204)
            return ExecutionResult(execution_id=execution_id, action_type="trigger",
                                   outcome=SUCCEEDED, status="no active rule",
                                   duration_ms=duration)

        return self._execute(ctx, op="fire_trigger", action_type="trigger", target=trigger_name,
                             namespace=ns, body=body, blocking=False, timeout_ms=None, call=call)


def _web_result(response: WebActionResponse) -> Any:
    if "json" in response.content_type:
        try:
            return json.loads(response.body or b"null")
        except ValueError:
            pass
    return {"body": response.text()[:4096], "content_type": response.content_type}
