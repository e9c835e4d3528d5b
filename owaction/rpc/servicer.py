"""The gRPC servicer: each RPC translates its message to one service call and the result back.

Domain errors become status codes through ``errors.ServiceError.grpc_status`` (one table, in
``owaction.errors``); an action that ran and failed is a normal reply with ``success=false``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from owaction import __version__, errors
from owaction.rpc import openwhisk_action_pb2 as pb
from owaction.rpc import openwhisk_action_pb2_grpc as pb_grpc
from owaction.rpc.interceptors import CURRENT_CLAIMS, CURRENT_METADATA, abort_with, text_metadata
from owaction.service import ACTION_LIST_DEFAULT, CallContext, ExecutionResult, timestamp
from owaction.service.entities import ActionSpec, Route
from owaction.store import DEFAULT_LIST_LIMIT

log = logging.getLogger("owaction.rpc")

T = TypeVar("T")

# grpcio reports "no deadline" as a remaining time of centuries; anything past a day is "none".
NO_DEADLINE_AFTER = 86400.0


def _text(value: Any) -> str:
    """A str protobuf will serialise: lone surrogates (legal in a JSON string) are replaced."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "replace").decode("utf-8")


def _json(value: Any) -> str:
    """JSON text for a result field; ASCII-escaped so any decoded JSON value survives."""
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), default=str)


def _annotations(pairs: tuple[tuple[str, Any], ...]) -> str:
    return _json({key: value for key, value in pairs}) if pairs else ""


def _execution(record: Any) -> pb.Execution:
    data = record.public()
    success = data.get("success")
    return pb.Execution(
        execution_id=_text(data.get("execution_id")),
        namespace=_text(data.get("namespace")),
        action_name=_text(data.get("action_name")),
        action_type=_text(data.get("action_type")),
        status=_text(data.get("status")),
        success=bool(success),
        has_success=success is not None,
        activation_id=_text(data.get("activation_id")),
        result=_json(data.get("result")),
        error=_text(data.get("error")),
        duration_ms=data.get("duration_ms") or 0,
        status_code=data.get("status_code") or 0,
        blocking=bool(data.get("blocking")),
        timeout=data.get("timeout") or 0,
        payload=_json(data.get("payload")),
        source=_text(data.get("source")),
        caller=_text(data.get("caller")),
        request_id=_text(data.get("request_id")),
        idempotency_key=_text(data.get("idempotency_key")),
        trace_id=_text(data.get("trace_id")),
        created_at=_text(data.get("created_at")),
        completed_at=_text(data.get("completed_at")),
        updated_at=_text(data.get("updated_at")),
        cached=bool(data.get("cached")),
        callback_url=_text(data.get("callback_url")),
        attempts=data.get("attempts") or 0,
    )


def _accepted(result: ExecutionResult) -> dict[str, Any]:
    """The fields of a reply to a call that does not wait for its activation."""
    return {"success": result.success, "activation_id": _text(result.activation_id),
            "error": _text(result.error), "execution_id": result.execution_id,
            "status": _text(result.status)}


def _activation_details(result: ExecutionResult) -> dict[str, Any]:
    activation = result.activation
    if activation is None:
        return {}
    return {"logs": [_text(line) for line in activation.logs],
            "annotations": _annotations(activation.annotations)}


def _optional(message: Any, name: str) -> Any:
    """A proto3 ``optional`` field's value, or None when it was not set."""
    return getattr(message, name) if message.HasField(name) else None


def _json_value(text: str, what: str) -> Any:
    """A JSON value from a text field; None when empty."""
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise errors.InvalidInput(f"{what} is not valid JSON") from None


def _entity(entity_type: str, view: dict) -> pb.EntityResponse:
    return pb.EntityResponse(
        success=True, entity_type=entity_type, name=_text(view.get("name")),
        namespace=_text(view.get("namespace")), version=_text(view.get("version")),
        publish=bool(view.get("publish")), entity=_json(view),
        status=_text(view.get("status")),
    )


def _route(route: Route) -> pb.Route:
    return pb.Route(api_id=_text(route.api_id), basepath=_text(route.basepath),
                    relpath=_text(route.relpath), verb=_text(route.verb),
                    action=_text(route.action), action_namespace=_text(route.action_namespace),
                    url=_text(route.url), response_type=_text(route.response_type),
                    api_name=_text(route.api_name))


class ActionServicer(pb_grpc.OpenWhiskActionServiceServicer):
    """OpenWhiskActionService over an ``ActionService``."""

    def __init__(self, service: Any):
        self._service = service

    # --- plumbing -------------------------------------------------------------------------

    def _context(self, context: grpc.ServicerContext, idempotency_key: str = "",
                 callback_url: str = "") -> CallContext:
        # Read once by the auth interceptor; scanned here only when called without it.
        metadata = CURRENT_METADATA.get()
        if metadata is None:
            metadata = text_metadata(context)
        remaining = context.time_remaining()
        claims = CURRENT_CLAIMS.get()
        ctx = CallContext.for_request(
            source="grpc",
            caller=claims.service if claims else None,
            request_id=metadata.get("x-request-id"),
            idempotency_key=idempotency_key or metadata.get("idempotency-key") or None,
            traceparent=metadata.get("traceparent"),
            callback_url=callback_url or None,
            deadline=(time.monotonic() + remaining
                      if remaining is not None and remaining < NO_DEADLINE_AFTER else None),
        )
        # In the trailers, sent with the status and the reply in one batch: as initial metadata
        # it went out on its own, a second batch and completion event per call (5 to 9 % of the
        # process's CPU per call, bench/README.md).
        context.set_trailing_metadata((("x-request-id", ctx.request_id),))
        return ctx

    def _call(self, context: grpc.ServicerContext, operation: Callable[[], T]) -> T:
        try:
            return operation()
        except errors.ServiceError as exc:
            abort_with(context, exc)
            raise  # abort raises; this line only satisfies the type checker

    # --- the original RPCs ----------------------------------------------------------------

    def InvokeAction(self, request, context):
        def run():
            ctx = self._context(context, request.idempotency_key, request.callback_url)
            return self._service.invoke_action(
                ctx, action_name=request.action_name, namespace=request.namespace or None,
                payload=request.payload, blocking=request.blocking,
                timeout_ms=request.timeout,
            )

        result = self._call(context, run)
        return pb.InvokeActionResponse(
            success=result.success, activation_id=_text(result.activation_id),
            result=_json(result.result), duration=result.duration_ms or 0,
            start_time=result.start_time or 0, end_time=result.end_time or 0,
            status=_text(result.status), error=_text(result.error),
            execution_id=result.execution_id, outcome=result.outcome,
            **_activation_details(result),
        )

    def InvokeActionAsync(self, request, context):
        def run():
            ctx = self._context(context, request.idempotency_key, request.callback_url)
            return self._service.invoke_action_async(
                ctx, action_name=request.action_name, namespace=request.namespace or None,
                payload=request.payload,
            )

        return pb.InvokeActionAsyncResponse(**_accepted(self._call(context, run)))

    def InvokeSequence(self, request, context):
        def run():
            ctx = self._context(context, request.idempotency_key, request.callback_url)
            return self._service.invoke_sequence(
                ctx, sequence_name=request.sequence_name, namespace=request.namespace or None,
                payload=request.payload,
                blocking=request.blocking if request.HasField("blocking") else True,
                timeout_ms=request.timeout,
            )

        result = self._call(context, run)
        return pb.InvokeSequenceResponse(
            success=result.success, activation_id=_text(result.activation_id),
            result=_json(result.result), error=_text(result.error),
            execution_id=result.execution_id, duration=result.duration_ms or 0,
            start_time=result.start_time or 0, end_time=result.end_time or 0,
            status=_text(result.status), outcome=result.outcome,
            **_activation_details(result),
        )

    def InvokeWebAction(self, request, context):
        def run():
            ctx = self._context(context, request.idempotency_key, request.callback_url)
            return self._service.invoke_web_action(
                ctx, action_name=request.action_name,
                package_name=request.package_name or "default",
                namespace=request.namespace or None, payload=request.payload,
                method=request.method or "POST", headers=dict(request.headers),
                extension=request.extension if request.HasField("extension") else None,
            )

        result = self._call(context, run)
        return pb.InvokeWebActionResponse(
            success=result.success, status_code=result.status_code or 0,
            response=_text(result.response_body),
            response_headers={_text(k): _text(v) for k, v in result.response_headers.items()},
            error=_text(result.error), execution_id=result.execution_id,
            activation_id=_text(result.activation_id), duration=result.duration_ms or 0,
            outcome=result.outcome,
        )

    def FireTrigger(self, request, context):
        def run():
            ctx = self._context(context, request.idempotency_key, request.callback_url)
            return self._service.fire_trigger(
                ctx, trigger_name=request.trigger_name, namespace=request.namespace or None,
                payload=request.payload,
            )

        return pb.FireTriggerResponse(**_accepted(self._call(context, run)))

    def GetActivation(self, request, context):
        def run():
            return self._service.get_activation(
                self._context(context), activation_id=request.activation_id,
                namespace=request.namespace or None,
            )

        activation = self._call(context, run)
        error = activation.error
        return pb.GetActivationResponse(
            success=activation.success, activation_id=activation.activation_id,
            result=_json(activation.result), duration=activation.duration,
            status=_text(activation.status), logs=[_text(line) for line in activation.logs],
            error="" if error is None else (error if isinstance(error, str) else _json(error)),
            name=_text(activation.name), namespace=_text(activation.namespace),
            version=_text(activation.version), subject=_text(activation.subject),
            start_time=activation.start, end_time=activation.end,
            status_code=activation.status_code,
            annotations=_annotations(activation.annotations), cause=_text(activation.cause),
        )

    def ListActions(self, request, context):
        def run():
            return self._service.list_actions(
                self._context(context), namespace=request.namespace or None,
                # proto3 cannot tell an unset limit from 0: 0 means the default, as before.
                limit=request.limit or ACTION_LIST_DEFAULT, skip=request.skip,
            )

        actions = self._call(context, run)
        return pb.ListActionsResponse(success=True, actions=[
            pb.ActionInfo(name=_text(a.name), namespace=_text(a.namespace),
                          version=_text(a.version), published=a.published,
                          kind=_text(a.kind), annotations=_annotations(a.annotations))
            for a in actions
        ])

    # --- added RPCs -----------------------------------------------------------------------

    def GetExecution(self, request, context):
        def run():
            self._context(context)
            return self._service.get_execution(request.execution_id)

        record = self._call(context, run)
        return pb.GetExecutionResponse(success=True, execution=_execution(record))

    def ListExecutions(self, request, context):
        def run():
            self._context(context)
            return self._service.list_executions(
                action_name=request.action_name or None,
                action_type=request.action_type or None,
                status=request.status or None,
                since=request.since or None,
                until=request.until or None,
                limit=request.limit or DEFAULT_LIST_LIMIT,
                cursor=request.cursor or None,
            )

        records, next_cursor = self._call(context, run)
        return pb.ListExecutionsResponse(
            success=True, executions=[_execution(r) for r in records],
            next_cursor=next_cursor or "",
        )

    def GetStats(self, request, context):
        def run():
            self._context(context)
            return self._service.stats()

        stats = self._call(context, run)
        return pb.GetStatsResponse(
            success=True, module=_text(getattr(self._service.settings, "module_name", "")),
            version=__version__, stats=_json(stats), timestamp=timestamp(),
            total_executions=int(stats["total_executions"]),
            successful_executions=int(stats["successful_executions"]),
            failed_executions=int(stats["failed_executions"]),
            in_flight=int(stats["in_flight"]),
        )

    def ExecuteCommand(self, request, context):
        def run():
            ctx = self._context(context)
            return self._service.execute_command(
                ctx, command=request.command, args=request.args, user_id=request.user_id,
                entity_id=request.entity_id, community_id=request.community_id,
                session_id=request.session_id, message=request.message,
            )

        reply = self._call(context, run)
        return pb.ExecuteCommandResponse(
            execution_id=_text(reply.get("execution_id")),
            session_id=_text(reply.get("session_id")),
            module_name=_text(reply.get("module_name")),
            success=bool(reply.get("success")),
            response_action=_text(reply.get("response_action")),
            response_data=_json(reply.get("response_data") or {}),
            media_type=_text(reply.get("media_type")),
            media_url=_text(reply.get("media_url")),
            ticker_text=_text(reply.get("ticker_text")),
            ticker_duration=int(reply.get("ticker_duration") or 0),
            chat_message=_text(reply.get("chat_message")),
            error_message=_text(reply.get("error_message")),
            processing_time_ms=int(reply.get("processing_time_ms") or 0),
            timestamp=_text(reply.get("timestamp")),
        )

    # --- managing entities ------------------------------------------------------------------

    def _manage(self, context: grpc.ServicerContext, entity_type: str,
                operation: Callable[[Any, CallContext], dict]) -> pb.EntityResponse:
        """One EntityManager call with this call's context, answered as an EntityResponse."""
        view = self._call(context, lambda: operation(self._service.management,
                                                     self._context(context)))
        return _entity(entity_type, view)

    def PutAction(self, request, context):
        def put(manager, ctx):
            spec = ActionSpec(
                kind=request.kind or None, code=_optional(request, "code"),
                main=request.main or None, binary=_optional(request, "binary"),
                components=tuple(request.components) or None,
                parameters=request.parameters or None, annotations=request.annotations or None,
                limits=request.limits or None, web_export=_optional(request, "web_export"),
                raw_http=_optional(request, "raw_http"),
                require_whisk_auth=_json_value(request.require_whisk_auth,
                                               "require_whisk_auth"),
            )
            return manager.put_action(ctx, name=request.name, spec=spec,
                                      namespace=request.namespace or None,
                                      overwrite=request.overwrite)

        return self._manage(context, "action", put)

    def GetAction(self, request, context):
        return self._manage(context, "action", lambda m, ctx: m.get_action(
            ctx, name=request.name, namespace=request.namespace or None, code=request.code))

    def DeleteAction(self, request, context):
        return self._manage(context, "action", lambda m, ctx: m.delete_action(
            ctx, name=request.name, namespace=request.namespace or None))

    def PutPackage(self, request, context):
        return self._manage(context, "package", lambda m, ctx: m.put_package(
            ctx, name=request.name, namespace=request.namespace or None,
            overwrite=request.overwrite, parameters=request.parameters or None,
            annotations=request.annotations or None, publish=_optional(request, "publish"),
            binding=request.binding or None))

    def GetPackage(self, request, context):
        return self._manage(context, "package", lambda m, ctx: m.get_package(
            ctx, name=request.name, namespace=request.namespace or None))

    def DeletePackage(self, request, context):
        return self._manage(context, "package", lambda m, ctx: m.delete_package(
            ctx, name=request.name, namespace=request.namespace or None, force=request.force))

    def PutTrigger(self, request, context):
        return self._manage(context, "trigger", lambda m, ctx: m.put_trigger(
            ctx, name=request.name, namespace=request.namespace or None,
            overwrite=request.overwrite, parameters=request.parameters or None,
            annotations=request.annotations or None, feed=request.feed or None,
            publish=_optional(request, "publish")))

    def GetTrigger(self, request, context):
        return self._manage(context, "trigger", lambda m, ctx: m.get_trigger(
            ctx, name=request.name, namespace=request.namespace or None))

    def DeleteTrigger(self, request, context):
        return self._manage(context, "trigger", lambda m, ctx: m.delete_trigger(
            ctx, name=request.name, namespace=request.namespace or None))

    def PutRule(self, request, context):
        return self._manage(context, "rule", lambda m, ctx: m.put_rule(
            ctx, name=request.name, trigger=request.trigger, action=request.action,
            namespace=request.namespace or None, overwrite=request.overwrite))

    def GetRule(self, request, context):
        return self._manage(context, "rule", lambda m, ctx: m.get_rule(
            ctx, name=request.name, namespace=request.namespace or None))

    def DeleteRule(self, request, context):
        return self._manage(context, "rule", lambda m, ctx: m.delete_rule(
            ctx, name=request.name, namespace=request.namespace or None))

    def SetRuleState(self, request, context):
        return self._manage(context, "rule", lambda m, ctx: m.set_rule_state(
            ctx, name=request.name, active=request.active, namespace=request.namespace or None))

    def ListEntities(self, request, context):
        items = self._call(context, lambda: self._service.management.list_entities(
            self._context(context), collection=request.collection,
            namespace=request.namespace or None, limit=request.limit or ACTION_LIST_DEFAULT,
            skip=request.skip))
        return pb.ListEntitiesResponse(success=True, items=[
            pb.EntityBrief(name=_text(i["name"]), namespace=_text(i["namespace"]),
                           version=_text(i["version"]), publish=i["publish"],
                           status=_text(i["status"]))
            for i in items])

    def CreateRoute(self, request, context):
        route = self._call(context, lambda: self._service.management.create_route(
            self._context(context), basepath=request.basepath, relpath=request.relpath,
            verb=request.verb, action=request.action, namespace=request.namespace or None,
            response_type=request.response_type or "json", api_name=request.api_name or None))
        return pb.RouteResponse(success=True, route=_route(route))

    def ListRoutes(self, request, context):
        routes = self._call(context, lambda: self._service.management.list_routes(
            self._context(context), namespace=request.namespace or None,
            basepath=request.basepath or None, relpath=request.relpath or None,
            verb=request.verb or None))
        return pb.ListRoutesResponse(success=True, routes=[_route(r) for r in routes])

    def DeleteRoute(self, request, context):
        deleted = self._call(context, lambda: self._service.management.delete_route(
            self._context(context), basepath=request.basepath,
            relpath=request.relpath or None, verb=request.verb or None,
            namespace=request.namespace or None))
        return pb.DeleteRouteResponse(success=True, deleted=deleted)
