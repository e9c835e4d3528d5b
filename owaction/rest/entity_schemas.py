"""Request and response bodies of the management endpoints (actions, packages, triggers,
rules, routes), as pydantic models; ``openapi.py`` documents them like every other model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from owaction.names import MAX_NAME_LENGTH, NAME_PATTERN
from owaction.rest.schemas import Body, JsonObject, Query, Reply
from owaction.service.entities import ROUTE_PATH_PATTERN, ROUTE_RESPONSE_TYPES, ROUTE_VERBS

RouteVerb = Literal["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
RouteResponseType = Literal["json", "http", "html", "svg", "text"]
assert set(RouteVerb.__args__) == set(ROUTE_VERBS)  # noqa: S101 - drift guards at import
assert set(RouteResponseType.__args__) == set(ROUTE_RESPONSE_TYPES)  # noqa: S101

_NAMESPACE = Field(default=None,
                   json_schema_extra={"maxLength": MAX_NAME_LENGTH, "pattern": NAME_PATTERN},
                   description="OpenWhisk namespace; OPENWHISK_NAMESPACE when omitted")
_ROUTE_PATH = {"pattern": ROUTE_PATH_PATTERN}
_PARAMETERS = Field(default=None, description="default parameters, a JSON object (at most "
                    "1 MB); omitted on update: kept")
_ANNOTATIONS = Field(default=None, description="annotations, a JSON object; omitted on "
                     "update: kept")


# --- queries ----------------------------------------------------------------------------------


class EntityQuery(Query):
    namespace: str | None = _NAMESPACE


class PutQuery(EntityQuery):
    overwrite: bool = Field(default=False, description="update an existing entity; without "
                            "it, an existing one is 409")


class ActionGetQuery(EntityQuery):
    code: bool = Field(default=False, description="include the action's code")


class PackageDeleteQuery(EntityQuery):
    force: bool = Field(default=False, description="delete the package's actions too; "
                        "without it, a package with actions is 409")


class ListQuery(EntityQuery):
    limit: int = Field(default=30, ge=0, le=200, description="0 means OpenWhisk's maximum")
    skip: int = Field(default=0, ge=0)


class RouteQuery(EntityQuery):
    basepath: str | None = Field(default=None, min_length=1, max_length=512,
                                 json_schema_extra=_ROUTE_PATH)
    relpath: str | None = Field(default=None, min_length=1, max_length=512,
                                json_schema_extra=_ROUTE_PATH)
    verb: RouteVerb | None = None


class RouteDeleteQuery(RouteQuery):
    basepath: str = Field(min_length=1, max_length=512, json_schema_extra=_ROUTE_PATH)


# --- bodies -----------------------------------------------------------------------------------


class ActionLimits(Body):
    timeout: int | None = Field(default=None, ge=1, description="ms")
    memory: int | None = Field(default=None, ge=1, description="MB")
    logs: int | None = Field(default=None, ge=0, description="MB")
    concurrency: int | None = Field(default=None, ge=1)


class ActionBody(Body):
    """An action from code, or a sequence from components; on update, omitted fields stay."""

    kind: str | None = Field(default=None, min_length=1, max_length=64,
                             description="runtime kind, e.g. python:3 or nodejs:20; needed "
                             "with code")
    code: str | None = Field(default=None, description="source, or a zip in base64; at most "
                             "48 MB")
    main: str | None = Field(default=None, min_length=1, max_length=256,
                             description="the entry function")
    binary: bool | None = Field(default=None, description="code is a base64 zip")
    components: list[str] | None = Field(
        default=None, min_length=1, max_length=50,
        description="a sequence: actions in order, as `name`, `pkg/name` or `/ns/pkg/name`")
    parameters: JsonObject | None = _PARAMETERS
    annotations: JsonObject | None = _ANNOTATIONS
    limits: ActionLimits | None = None
    web_export: bool | None = Field(default=None, description="a web action (annotation "
                                    "web-export, and final)")
    raw_http: bool | None = Field(default=None, description="annotation raw-http")
    require_whisk_auth: bool | int | str | None = Field(
        default=None, description="annotation require-whisk-auth: true, or the secret callers "
        "must send in X-Require-Whisk-Auth")


class PackageBody(Body):
    parameters: JsonObject | None = _PARAMETERS
    annotations: JsonObject | None = _ANNOTATIONS
    publish: bool | None = Field(default=None, description="shared with other namespaces")
    binding: str | None = Field(default=None, min_length=1, max_length=600,
                                description="make a binding of this package: `/ns/package`, "
                                "or `package` of this namespace")


class TriggerBody(Body):
    parameters: JsonObject | None = Field(
        default=None, description="default parameters; with a feed, the feed's parameters "
        "(e.g. cron, interval, fireOnce, trigger_payload)")
    annotations: JsonObject | None = _ANNOTATIONS
    publish: bool | None = None
    feed: str | None = Field(default=None, min_length=1, max_length=600,
                             description="a feed action of /whisk.system, e.g. "
                             "/whisk.system/alarms/alarm: its lifecycle runs for the trigger")


class RuleBody(Body):
    trigger: str = Field(min_length=1, max_length=600, description="`name` or `/ns/name`")
    action: str = Field(min_length=1, max_length=600,
                        description="`name`, `pkg/name` or `/ns/pkg/name`")


class RouteBody(Body):
    namespace: str | None = _NAMESPACE
    basepath: str = Field(min_length=1, max_length=512, json_schema_extra=_ROUTE_PATH,
                          description="e.g. /hello")
    relpath: str = Field(min_length=1, max_length=512, json_schema_extra=_ROUTE_PATH,
                         description="e.g. /world")
    verb: RouteVerb
    action: str = Field(min_length=1, description="a web action: `name` or `pkg/name`")
    response_type: RouteResponseType = Field(default="json",
                                             description="the web action's extension")
    api_name: str | None = Field(default=None, min_length=1, max_length=256)


# --- replies ----------------------------------------------------------------------------------


class EntityFields(Reply):
    name: str
    namespace: str
    version: str = Field(description="OpenWhisk's semantic version, bumped by each update")
    publish: bool


class ActionEntity(EntityFields):
    kind: str | None
    main: str | None
    binary: bool
    code: str | None = Field(description="only when asked for (`code=true`)")
    components: list[str] | None = Field(description="a sequence's actions")
    parameters: JsonObject
    annotations: JsonObject
    limits: JsonObject


class PackageEntity(EntityFields):
    binding: str | None = Field(description="`/ns/package` for a binding")
    parameters: JsonObject
    annotations: JsonObject
    actions: list[str]
    feeds: list[str]


class RuleLink(Reply):
    action: str
    status: str


class TriggerEntity(EntityFields):
    parameters: JsonObject
    annotations: JsonObject
    feed: str | None
    rules: dict[str, RuleLink]
    feed_state: Any = Field(description="the feed's answer to CREATE, UPDATE or READ")
    feed_error: str | None = Field(description="why the feed could not answer READ/DELETE")


class RuleEntity(EntityFields):
    status: str = Field(description="active or inactive")
    trigger: str
    action: str


class EntityBrief(EntityFields):
    status: str | None = Field(description="a rule's status")


class EntityList(Reply):
    items: list[EntityBrief]


class RouteItem(Reply):
    api_id: str
    basepath: str
    relpath: str
    verb: str
    action: str
    action_namespace: str
    url: str = Field(description="where the gateway serves the route")
    response_type: str
    api_name: str


class RoutesReply(Reply):
    routes: list[RouteItem]


class RoutesDeleted(Reply):
    deleted: int = Field(description="how many routes went")
