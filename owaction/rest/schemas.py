"""Request and response bodies of the REST API, as pydantic models.

The views validate requests and build responses with these, and ``openapi.py`` generates the
OpenAPI document from them, so the document and the behaviour cannot drift. Field names keep the
original module's (CONTRACT.md §2); fields it lacked are additions.

Request bodies are validated strictly: JSON gives each field its type, so ``"true"`` is not a
boolean and ``"100"`` is not a number. Query strings are text and are coerced.
"""

from __future__ import annotations

import datetime as dt
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
    create_model,
)

from owaction.auth import ALL_PERMISSIONS
from owaction.inputs import (
    COMMAND_FIELD_LENGTHS,
    INSTANT_SCHEMA,
    MAX_ACTION_NAME_FILTER,
    NON_BLANK_TEXT_PATTERN,
    TEXT_PATTERN,
)
from owaction.names import MAX_NAME_LENGTH, NAME_PATTERN, QUALIFIED_NAME_PATTERN
from owaction.service import (
    ACTION_LIST_DEFAULT,
    HEADER_NAME_PATTERN,
    HEADER_VALUE_PATTERN,
    LIST_LIMIT_MAX,
    MAX_CALLBACK_URL,
    WEB_METHODS,
)
from owaction.store import ACTION_TYPES, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, STATUSES
from owaction.store.executions import CURSOR_PATTERN
from owaction.store.records import PUBLIC_FIELDS, ExecutionRecord

Permission = Literal["execute_actions", "read", "manage"]
assert set(Permission.__args__) == set(ALL_PERMISSIONS)  # noqa: S101 - a drift guard at import

JsonObject = dict[str, Any]

# Names are checked by the service (owaction.names) for both doors; the patterns here only say
# so in the document, and values that come from settings are filled in when it is built.
_NAMESPACE = Field(
    default=None, json_schema_extra={"maxLength": MAX_NAME_LENGTH, "pattern": NAME_PATTERN},
    description="OpenWhisk namespace; the module's default (OPENWHISK_NAMESPACE) when omitted",
)


def _name(*, qualified: bool = False, **kw: Any) -> Any:
    """An entity name field: ``name``, or ``package/name`` when ``qualified``."""
    return Field(min_length=1, json_schema_extra={
        "maxLength": 2 * MAX_NAME_LENGTH + 1 if qualified else MAX_NAME_LENGTH,
        "pattern": QUALIFIED_NAME_PATTERN if qualified else NAME_PATTERN}, **kw)


def _integral(value: Any) -> Any:
    """JSON Schema counts 5.0 as an integer, so it is one here too (strict mode refuses it)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Timeout = Annotated[int, BeforeValidator(_integral), Field(ge=0),
                   WithJsonSchema({"type": "integer", "minimum": 0})]
_TIMEOUT = Field(
    default=None, json_schema_extra={"x-from-settings": {"maximum": "max_action_timeout"}},
    description="blocking wait in ms, 1..MAX_ACTION_TIMEOUT; 0 or absent: the default",
)
_PAYLOAD = Field(
    default=None,
    description="parameters passed to the action; a JSON object of at most MAX_PAYLOAD_BYTES",
)


class Body(BaseModel):
    """A JSON request body: strict types, unknown fields ignored for old callers' sake."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Query(BaseModel):
    """Query-string parameters: text coerced to each field's type."""

    model_config = ConfigDict(strict=False, extra="ignore")


class Reply(BaseModel):
    """A response body."""

    model_config = ConfigDict(extra="forbid")


# --- errors -------------------------------------------------------------------------------------


class ErrorDetail(Reply):
    code: str = Field(description="machine-readable error code, e.g. invalid_request")
    message: str = Field(description="what is wrong, for a person")
    details: JsonObject | None = Field(
        default=None, description="more about the error, e.g. the invalid fields"
    )


class ErrorBody(Reply):
    error: ErrorDetail
    request_id: str | None = Field(description="this request's X-Request-ID")
    execution_id: str | None = Field(
        default=None, description="the execution this error belongs to, when one was recorded"
    )


# --- auth ---------------------------------------------------------------------------------------


class TokenRequest(Body):
    # No min_length: an empty key is a wrong key (401), not a malformed request.
    api_key: str = Field(max_length=1024, description="a key from API_KEYS")
    service: str | None = Field(
        default=None, min_length=1, max_length=128,
        description="the service to issue for; must be the key's own service",
    )
    permissions: list[Permission] | None = Field(
        default=None, description="narrow the token to these permissions (default: all the "
        "key carries; more is 403)",
    )


class TokenReply(Reply):
    token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int = Field(description="seconds the token lives")
    service: str
    permissions: list[Permission]


# --- invocations --------------------------------------------------------------------------------


class Invocation(Body):
    """Fields every invoking request may carry."""

    callback_url: str | None = Field(
        default=None, max_length=MAX_CALLBACK_URL,
        json_schema_extra={"x-from-settings": {"pattern": "callback_url_pattern"}},
        description="the finished execution is POSTed here, signed (host must be in "
        "CALLBACK_ALLOWED_HOSTS); the X-Callback-Url header does the same",
    )


class InvokeRequest(Invocation):
    namespace: str | None = _NAMESPACE
    action_name: str = _name(qualified=True, description="`action` or `package/action`")
    payload: JsonObject | None = _PAYLOAD
    blocking: bool = Field(default=True, description="wait for the result (202 if it takes "
                           "longer than the blocking wait)")
    timeout: Timeout | None = _TIMEOUT


class InvokeAsyncRequest(Invocation):
    namespace: str | None = _NAMESPACE
    action_name: str = _name(qualified=True, description="`action` or `package/action`")
    payload: JsonObject | None = _PAYLOAD


class SequenceRequest(Invocation):
    namespace: str | None = _NAMESPACE
    sequence_name: str = _name(qualified=True,
                               description="`sequence` or `package/sequence`")
    payload: JsonObject | None = _PAYLOAD
    blocking: bool = True
    timeout: Timeout | None = _TIMEOUT


WebMethod = Literal[WEB_METHODS]
WebExtension = Literal["", ".json", ".http", ".html", ".svg", ".text"]
# The service's own rule, declared here too so the OpenAPI document states it.
HeaderName = Annotated[str, StringConstraints(pattern=HEADER_NAME_PATTERN)]
HeaderValue = Annotated[str, StringConstraints(pattern=HEADER_VALUE_PATTERN)]
# pydantic's patternProperties would leave other names unconstrained: say that none is allowed.
HeaderMap = Annotated[dict[HeaderName, HeaderValue], WithJsonSchema({
    "type": "object", "propertyNames": {"pattern": HEADER_NAME_PATTERN},
    "additionalProperties": {"type": "string", "pattern": HEADER_VALUE_PATTERN}})]


class WebActionRequest(Invocation):
    # With no extension OpenWhisk would read what follows a dot in the name as one.
    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"extension": {"const": ""}}, "required": ["extension"]},
        "then": {"properties": {"action_name": {"pattern": "^[^.]*$"}}},
    })

    namespace: str | None = _NAMESPACE
    package_name: str = _name(default="default")
    action_name: str = _name()
    payload: JsonObject | None = _PAYLOAD
    method: WebMethod = "POST"
    headers: HeaderMap | None = Field(
        default=None, description="headers sent to the action")
    extension: WebExtension = Field(
        default=".http", description="how OpenWhisk renders the result: `.http` (OpenWhisk's "
        "default) makes the action's statusCode, headers and body the response; `.json`, "
        "`.html`, `.svg`, `.text` render the result as that type")


class TriggerRequest(Invocation):
    namespace: str | None = _NAMESPACE
    trigger_name: str = _name()
    payload: JsonObject | None = _PAYLOAD


class InvokeReply(Reply):
    """A blocking invocation that finished: 200, or 502 when the action failed."""

    execution_id: str
    success: bool
    activation_id: str | None
    result: Any = Field(description="the action's result")
    duration: int | None = Field(description="ms")
    start_time: int | None = Field(description="epoch ms")
    end_time: int | None = Field(description="epoch ms")
    status: str = Field(description="OpenWhisk's response status, e.g. success, application error")


class ActionFailedReply(InvokeReply):
    """502: the action ran and failed; ``error`` says how, in the error body's shape."""

    error: ErrorDetail
    request_id: str | None


class AcceptedReply(Reply):
    """202: OpenWhisk accepted the call; fetch the outcome by execution or activation id."""

    execution_id: str
    success: Literal[True] = True
    activation_id: str | None
    status: Literal["accepted"] = "accepted"


class TriggerReply(Reply):
    """200: the trigger had no active rule, so nothing ran."""

    execution_id: str
    success: Literal[True] = True
    activation_id: None = None
    status: Literal["no active rule"] = "no active rule"


class WebActionReply(Reply):
    execution_id: str
    success: bool
    activation_id: str | None
    status_code: int = Field(description="the web action's HTTP status")
    response: str = Field(description="the web action's body as text")
    response_headers: dict[str, str]
    result: Any = Field(description="the body decoded when it is JSON")
    duration: int | None = Field(description="ms")


class WebActionFailedReply(WebActionReply):
    error: ErrorDetail
    request_id: str | None


# --- reads --------------------------------------------------------------------------------------


class ActivationQuery(Query):
    namespace: str | None = _NAMESPACE


class ActivationReply(Reply):
    success: bool
    activation_id: str
    result: Any
    duration: int
    status: str
    logs: list[str]
    name: str
    namespace: str
    version: str
    start: int = Field(description="epoch ms")
    end: int = Field(description="epoch ms")
    annotations: JsonObject


class ActionsQuery(Query):
    namespace: str | None = _NAMESPACE
    limit: int = Field(default=ACTION_LIST_DEFAULT, ge=0, le=LIST_LIMIT_MAX,
                       description="0 means OpenWhisk's maximum")
    skip: int = Field(default=0, ge=0)


class ActionItem(Reply):
    name: str
    namespace: str
    version: str
    published: bool
    kind: str | None = None


class ActionsReply(Reply):
    success: bool
    actions: list[ActionItem]


# The store's vocabulary (owaction.store.records), as the document's enums.
ExecutionStatus = Literal[STATUSES]
# Checked by the service (owaction.inputs), which both doors call; declared here for the document.
Instant = Annotated[str, WithJsonSchema(INSTANT_SCHEMA)]
ActionType = Literal[ACTION_TYPES]


def _execution_fields() -> dict[str, Any]:
    """The record's public fields (owaction.store.records), with times as ISO 8601 text."""
    hints = typing.get_type_hints(ExecutionRecord)
    fields: dict[str, Any] = {}
    for name in PUBLIC_FIELDS:
        hint = {"status": ExecutionStatus, "action_type": ActionType}.get(name, hints[name])
        if hint is dt.datetime:
            fields[name] = (str, Field(description="ISO 8601 UTC"))
        elif hint == dt.datetime | None:
            fields[name] = (str | None, Field(description="ISO 8601 UTC"))
        elif name == "attempts":
            fields[name] = (hint, Field(description="how often the completion worker has "
                                                    "looked at it"))
        else:
            fields[name] = (hint, ...)
    return fields


# One recorded execution, field for field what ExecutionRecord.public() gives every door.
Execution = create_model("Execution", __base__=Reply, __doc__="One recorded execution.",
                         **_execution_fields())


class ExecutionsQuery(Query):
    action_name: str | None = Field(default=None, min_length=1, max_length=MAX_ACTION_NAME_FILTER,
                                    json_schema_extra={"pattern": TEXT_PATTERN})
    action_type: ActionType | None = None
    status: ExecutionStatus | None = None
    since: Instant | None = None
    until: Instant | None = None
    limit: int = Field(default=DEFAULT_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT)
    cursor: str | None = Field(default=None, min_length=1, max_length=256,
                               json_schema_extra={"pattern": CURSOR_PATTERN})


class ExecutionsReply(Reply):
    executions: list[Execution]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class StatsReply(Reply):
    module: str
    version: str
    stats: JsonObject
    timestamp: str = Field(description="ISO 8601 UTC")


class HealthReply(Reply):
    status: Literal["healthy", "unhealthy"]
    module: str
    version: str
    timestamp: str = Field(description="ISO 8601 UTC")
    database: Literal["connected", "unavailable"]
    openwhisk: Literal["reachable", "unreachable"]
    breaker: Literal["closed", "open", "half-open"] = Field(
        description="the circuit breaker in front of OpenWhisk; open: invocations get 503")
    error: str | None = Field(default=None, description="why the module is unhealthy")


# --- WaddleBot router -----------------------------------------------------------------------------


# The router's ids may arrive as JSON numbers; they are identifiers, so text either way (within
# a bound, so that the text stays within the field's length).
MAX_NUMBER_AS_TEXT = 10**15


def _number_as_text(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool) and (
            abs(value) <= MAX_NUMBER_AS_TEXT):
        return str(value)
    return value


def _router_text(name: str, *, required: bool = False) -> Any:
    """A text field of a #command, declared by the service's rule (which checks the pattern)."""
    text = {"type": "string", "maxLength": COMMAND_FIELD_LENGTHS[name],
            "pattern": NON_BLANK_TEXT_PATTERN if required else TEXT_PATTERN}
    number = {"type": "number", "minimum": -MAX_NUMBER_AS_TEXT, "maximum": MAX_NUMBER_AS_TEXT}
    return Annotated[str, BeforeValidator(_number_as_text),
                     WithJsonSchema({"anyOf": [text, number]})]


# args as a list is joined with spaces; these bounds keep the joined text within its length.
_ARG_WORDS, _ARG_WORD_LENGTH = 64, 63
_ARGS_TEXT = {"type": "string", "maxLength": COMMAND_FIELD_LENGTHS["args"],
              "pattern": TEXT_PATTERN}
ArgWord = Annotated[StrictStr, Field(max_length=_ARG_WORD_LENGTH)]
Args = Annotated[StrictStr | Annotated[list[ArgWord], Field(max_length=_ARG_WORDS)],
                 WithJsonSchema({"anyOf": [_ARGS_TEXT, {
                     "type": "array", "maxItems": _ARG_WORDS,
                     "items": {**_ARGS_TEXT, "maxLength": _ARG_WORD_LENGTH}}]})]
assert _ARG_WORDS * (_ARG_WORD_LENGTH + 1) - 1 <= COMMAND_FIELD_LENGTHS["args"]  # noqa: S101


class ExecuteRequest(Body):
    """The body WaddleBot's router sends for a #command (CONTRACT.md §3)."""

    command: _router_text("command", required=True) = Field(description="e.g. #weather")
    args: Args = Field(default="", description="everything after the command")
    user_id: _router_text("user_id") = ""
    entity_id: _router_text("entity_id") = ""
    community_id: _router_text("community_id") = ""
    session_id: _router_text("session_id", required=True) = Field(
        description="the router's retries repeat it; a repeat never runs the action again")
    message: _router_text("message") = ""


class ModuleResponse(Reply):
    """WaddleBot's ModuleResponse (libs/flask_core datamodels)."""

    execution_id: str | None
    session_id: str
    module_name: str
    success: bool
    response_action: Literal["chat", "media", "ticker", "general", "form"]
    response_data: JsonObject
    media_type: str | None
    media_url: str | None
    ticker_text: str | None
    ticker_duration: int
    chat_message: str | None
    error_message: str | None
    processing_time_ms: int
    timestamp: str
