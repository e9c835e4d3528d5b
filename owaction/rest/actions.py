"""Invocations (actions, sequences, web actions, triggers) and OpenWhisk reads.

Views only translate: the request model into a service call, the ``ExecutionResult`` into a
reply. The outcome decides the status by one table.
"""

from __future__ import annotations

from owaction.auth import PERMISSION_EXECUTE, PERMISSION_READ
from owaction.openwhisk.models import Activation
from owaction.rest.api import ApiBlueprint, call_context, request_id, service
from owaction.rest.schemas import (
    AcceptedReply,
    ActionFailedReply,
    ActionItem,
    ActionsQuery,
    ActionsReply,
    ActivationQuery,
    ActivationReply,
    ErrorDetail,
    InvokeAsyncRequest,
    InvokeReply,
    InvokeRequest,
    SequenceRequest,
    TriggerReply,
    TriggerRequest,
    WebActionFailedReply,
    WebActionReply,
    WebActionRequest,
)
from owaction.service import ExecutionResult

bp = ApiBlueprint("actions", __name__, tag="actions", url_prefix="/api/v1")

# ExecutionResult.outcome -> (HTTP status, error code when the outcome is a failure).
OUTCOMES: dict[str, tuple[int, str | None]] = {
    "succeeded": (200, None),
    "accepted": (202, None),
    "failed": (502, "action_failed"),
    "error": (502, "openwhisk_error"),
    "timeout": (504, "openwhisk_timeout"),
}

# What an invocation may answer besides its replies: every status of the service's errors.
INVOKE_ERRORS = (404, 409, 422, 429, 502, 503, 504)
READ_ERRORS = (429, 502, 503, 504)

_INVOKE_RESPONSES = {
    200: (InvokeReply, "the action ran and succeeded"),
    202: (AcceptedReply, "accepted: non-blocking, or demoted by OpenWhisk's blocking wait"),
    502: (ActionFailedReply, "the action ran and failed"),
}


def _reply(result: ExecutionResult, fields: dict, ok: type, failed: type):
    """``ok(**fields)``, ``failed(**fields, error=...)`` or 202, as the outcome says."""
    status, code = OUTCOMES[result.outcome]
    if status == 202:
        return AcceptedReply(execution_id=result.execution_id,
                             activation_id=result.activation_id), 202
    if code is None:
        return ok(**fields), status
    return failed(**fields, error=ErrorDetail(code=code, message=result.error or result.status),
                  request_id=request_id()), status


def invocation_reply(result: ExecutionResult):
    """The reply and status for a blocking or non-blocking action or sequence."""
    return _reply(result, {
        "execution_id": result.execution_id,
        "success": result.success,
        "activation_id": result.activation_id,
        "result": result.result,
        "duration": result.duration_ms,
        "start_time": result.start_time,
        "end_time": result.end_time,
        "status": result.status,
    }, InvokeReply, ActionFailedReply)


def web_reply(result: ExecutionResult):
    return _reply(result, {
        "execution_id": result.execution_id,
        "success": result.success,
        "activation_id": result.activation_id,
        "status_code": result.status_code,
        "response": result.response_body or "",
        "response_headers": result.response_headers,
        "result": result.result,
        "duration": result.duration_ms,
    }, WebActionReply, WebActionFailedReply)


@bp.operation("POST", "/actions/invoke", summary="Invoke an action",
              permission=PERMISSION_EXECUTE, body=InvokeRequest,
              responses=_INVOKE_RESPONSES, errors=INVOKE_ERRORS)
def invoke_action(claims, body: InvokeRequest):
    return invocation_reply(service().invoke_action(
        call_context(claims, body), action_name=body.action_name, namespace=body.namespace,
        payload=body.payload, blocking=body.blocking, timeout_ms=body.timeout,
    ))


@bp.operation("POST", "/actions/invoke-async", summary="Invoke an action without waiting",
              permission=PERMISSION_EXECUTE, body=InvokeAsyncRequest,
              responses={202: (AcceptedReply, "OpenWhisk accepted the invocation")},
              errors=INVOKE_ERRORS)
def invoke_action_async(claims, body: InvokeAsyncRequest):
    return invocation_reply(service().invoke_action_async(
        call_context(claims, body), action_name=body.action_name, namespace=body.namespace,
        payload=body.payload,
    ))


@bp.operation("POST", "/sequences/invoke", summary="Invoke a sequence",
              permission=PERMISSION_EXECUTE, body=SequenceRequest,
              responses=_INVOKE_RESPONSES, errors=INVOKE_ERRORS)
def invoke_sequence(claims, body: SequenceRequest):
    return invocation_reply(service().invoke_sequence(
        call_context(claims, body), sequence_name=body.sequence_name, namespace=body.namespace,
        payload=body.payload, blocking=body.blocking, timeout_ms=body.timeout,
    ))


@bp.operation("POST", "/web-actions/invoke", summary="Invoke a web action",
              permission=PERMISSION_EXECUTE, body=WebActionRequest,
              responses={
                  200: (WebActionReply, "the web action answered with a status below 400"),
                  202: (AcceptedReply, "OpenWhisk's response was not ready in time"),
                  502: (WebActionFailedReply, "the web action answered with a 4xx or 5xx"),
              },
              errors=INVOKE_ERRORS)
def invoke_web_action(claims, body: WebActionRequest):
    return web_reply(service().invoke_web_action(
        call_context(claims, body), action_name=body.action_name, package_name=body.package_name,
        namespace=body.namespace, payload=body.payload, method=body.method,
        headers=body.headers, extension=body.extension,
    ))


@bp.operation("POST", "/triggers/fire", summary="Fire a trigger",
              permission=PERMISSION_EXECUTE, body=TriggerRequest,
              responses={
                  200: (TriggerReply, "the trigger has no active rule; nothing ran"),
                  202: (AcceptedReply, "the trigger fired its rules"),
              },
              errors=INVOKE_ERRORS)
def fire_trigger(claims, body: TriggerRequest):
    result = service().fire_trigger(call_context(claims, body), trigger_name=body.trigger_name,
                                    namespace=body.namespace, payload=body.payload)
    if result.outcome == "accepted":
        return AcceptedReply(execution_id=result.execution_id,
                             activation_id=result.activation_id), 202
    return TriggerReply(execution_id=result.execution_id), 200


def activation_reply(activation: Activation) -> ActivationReply:
    return ActivationReply(
        success=activation.success,
        activation_id=activation.activation_id,
        result=activation.result,
        duration=activation.duration,
        status=activation.status,
        logs=list(activation.logs),
        name=activation.name,
        namespace=activation.namespace,
        version=activation.version,
        start=activation.start,
        end=activation.end,
        annotations={str(key): value for key, value in activation.annotations},
    )


# `path` so that an id holding a slash reaches the view and gets a 400 that says why.
@bp.operation("GET", "/activations/<path:activation_id>", summary="Get an activation",
              permission=PERMISSION_READ, query=ActivationQuery,
              responses={200: (ActivationReply, "the activation record")},
              errors=(404, *READ_ERRORS))
def get_activation(claims, query: ActivationQuery, activation_id: str):
    activation = service().get_activation(call_context(claims), activation_id=activation_id,
                                          namespace=query.namespace)
    return activation_reply(activation), 200


@bp.operation("GET", "/actions", summary="List actions",
              permission=PERMISSION_READ, query=ActionsQuery,
              responses={200: (ActionsReply, "the actions of the namespace")},
              errors=(404, *READ_ERRORS))
def list_actions(claims, query: ActionsQuery):
    actions = service().list_actions(call_context(claims), namespace=query.namespace,
                                     limit=query.limit, skip=query.skip)
    items = [
        ActionItem(name=a.name, namespace=a.namespace, version=a.version,
                   published=a.published, kind=a.kind)
        for a in actions
    ]
    return ActionsReply(success=True, actions=items), 200
