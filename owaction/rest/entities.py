"""Managing OpenWhisk entities: actions, packages, triggers, rules and API routes.

Every change needs the ``manage`` permission, reads need ``read``. Views only translate: the
request into one ``EntityManager`` call, its view of the entity into the reply model.
"""

from __future__ import annotations

from dataclasses import asdict

from owaction.auth import PERMISSION_MANAGE, PERMISSION_READ
from owaction.rest.api import ApiBlueprint, call_context, service
from owaction.rest.entity_schemas import (
    ActionBody,
    ActionEntity,
    ActionGetQuery,
    EntityList,
    EntityQuery,
    ListQuery,
    PackageBody,
    PackageDeleteQuery,
    PackageEntity,
    PutQuery,
    RouteBody,
    RouteDeleteQuery,
    RouteItem,
    RouteQuery,
    RoutesDeleted,
    RoutesReply,
    RuleBody,
    RuleEntity,
    TriggerBody,
    TriggerEntity,
)
from owaction.service.entities import MAX_ACTION_REQUEST_BYTES, ActionSpec

bp = ApiBlueprint("entities", __name__, tag="management", url_prefix="/api/v1")

# OpenWhisk's refusals and outages, answered with the error body.
CHANGE_ERRORS = (404, 409, 429, 502, 503, 504)
READ_ERRORS = (404, 429, 502, 503, 504)


def manager():
    return service().management


# --- actions ----------------------------------------------------------------------------------


@bp.operation("PUT", "/actions/<path:name>", summary="Create or update an action",
              permission=PERMISSION_MANAGE, query=PutQuery, body=ActionBody,
              max_body=MAX_ACTION_REQUEST_BYTES,
              responses={200: (ActionEntity, "the action as OpenWhisk stored it")},
              errors=CHANGE_ERRORS)
def put_action(claims, query: PutQuery, body: ActionBody, name: str):
    """From code (with `kind`) or a sequence of `components`; `name` may be `pkg/name`."""
    limits = body.limits.model_dump(exclude_none=True) if body.limits else None
    spec = ActionSpec(
        kind=body.kind, code=body.code, main=body.main, binary=body.binary,
        components=tuple(body.components) if body.components is not None else None,
        parameters=body.parameters, annotations=body.annotations, limits=limits,
        web_export=body.web_export, raw_http=body.raw_http,
        require_whisk_auth=body.require_whisk_auth,
    )
    view = manager().put_action(call_context(claims), name=name, spec=spec,
                                namespace=query.namespace, overwrite=query.overwrite)
    return ActionEntity.model_validate(view), 200


@bp.operation("GET", "/actions/<path:name>", summary="Get an action",
              permission=PERMISSION_READ, query=ActionGetQuery,
              responses={200: (ActionEntity, "the action")}, errors=READ_ERRORS)
def get_action(claims, query: ActionGetQuery, name: str):
    view = manager().get_action(call_context(claims), name=name, namespace=query.namespace,
                                code=query.code)
    return ActionEntity.model_validate(view), 200


@bp.operation("DELETE", "/actions/<path:name>", summary="Delete an action",
              permission=PERMISSION_MANAGE, query=EntityQuery,
              responses={200: (ActionEntity, "the deleted action")}, errors=CHANGE_ERRORS)
def delete_action(claims, query: EntityQuery, name: str):
    view = manager().delete_action(call_context(claims), name=name, namespace=query.namespace)
    return ActionEntity.model_validate(view), 200


# --- packages, triggers and rules: lists ------------------------------------------------------


def _lister(collection: str):
    def view(claims, query: ListQuery):
        items = manager().list_entities(call_context(claims), collection=collection,
                                        namespace=query.namespace, limit=query.limit,
                                        skip=query.skip)
        return EntityList.model_validate({"items": items}), 200

    view.__name__ = f"list_{collection}"
    return view


for _collection in ("packages", "triggers", "rules"):
    bp.operation("GET", f"/{_collection}", summary=f"List {_collection}",
                 permission=PERMISSION_READ, query=ListQuery,
                 responses={200: (EntityList, f"the namespace's {_collection}")},
                 errors=READ_ERRORS)(_lister(_collection))


# --- packages ---------------------------------------------------------------------------------


@bp.operation("PUT", "/packages/<name>", summary="Create or update a package or binding",
              permission=PERMISSION_MANAGE, query=PutQuery, body=PackageBody,
              responses={200: (PackageEntity, "the package as OpenWhisk stored it")},
              errors=CHANGE_ERRORS)
def put_package(claims, query: PutQuery, body: PackageBody, name: str):
    view = manager().put_package(
        call_context(claims), name=name, namespace=query.namespace, overwrite=query.overwrite,
        parameters=body.parameters, annotations=body.annotations, publish=body.publish,
        binding=body.binding)
    return PackageEntity.model_validate(view), 200


@bp.operation("GET", "/packages/<name>", summary="Get a package with its actions and feeds",
              permission=PERMISSION_READ, query=EntityQuery,
              responses={200: (PackageEntity, "the package")}, errors=READ_ERRORS)
def get_package(claims, query: EntityQuery, name: str):
    view = manager().get_package(call_context(claims), name=name, namespace=query.namespace)
    return PackageEntity.model_validate(view), 200


@bp.operation("DELETE", "/packages/<name>", summary="Delete a package or binding",
              permission=PERMISSION_MANAGE, query=PackageDeleteQuery,
              responses={200: (PackageEntity, "the deleted package")}, errors=CHANGE_ERRORS)
def delete_package(claims, query: PackageDeleteQuery, name: str):
    view = manager().delete_package(call_context(claims), name=name,
                                    namespace=query.namespace, force=query.force)
    return PackageEntity.model_validate(view), 200


# --- triggers ---------------------------------------------------------------------------------


@bp.operation("PUT", "/triggers/<name>", summary="Create or update a trigger, with a feed",
              permission=PERMISSION_MANAGE, query=PutQuery, body=TriggerBody,
              responses={200: (TriggerEntity, "the trigger; feed_state is the feed's answer")},
              errors=CHANGE_ERRORS)
def put_trigger(claims, query: PutQuery, body: TriggerBody, name: str):
    """With `feed`, the feed action's CREATE (or UPDATE) runs after the trigger is stored; if the
    feed refuses, the new trigger is deleted again and the feed's error answered."""
    view = manager().put_trigger(
        call_context(claims), name=name, namespace=query.namespace, overwrite=query.overwrite,
        parameters=body.parameters, annotations=body.annotations, feed=body.feed,
        publish=body.publish)
    return TriggerEntity.model_validate(view), 200


@bp.operation("GET", "/triggers/<name>", summary="Get a trigger (and its feed's READ)",
              permission=PERMISSION_READ, query=EntityQuery,
              responses={200: (TriggerEntity, "the trigger")}, errors=READ_ERRORS)
def get_trigger(claims, query: EntityQuery, name: str):
    view = manager().get_trigger(call_context(claims), name=name, namespace=query.namespace)
    return TriggerEntity.model_validate(view), 200


@bp.operation("DELETE", "/triggers/<name>", summary="Delete a trigger (its feed's DELETE first)",
              permission=PERMISSION_MANAGE, query=EntityQuery,
              responses={200: (TriggerEntity, "the deleted trigger")}, errors=CHANGE_ERRORS)
def delete_trigger(claims, query: EntityQuery, name: str):
    view = manager().delete_trigger(call_context(claims), name=name, namespace=query.namespace)
    return TriggerEntity.model_validate(view), 200


# --- rules ------------------------------------------------------------------------------------


@bp.operation("PUT", "/rules/<name>", summary="Create or update a rule (active when new)",
              permission=PERMISSION_MANAGE, query=PutQuery, body=RuleBody,
              responses={200: (RuleEntity, "the rule")}, errors=CHANGE_ERRORS)
def put_rule(claims, query: PutQuery, body: RuleBody, name: str):
    view = manager().put_rule(call_context(claims), name=name, trigger=body.trigger,
                              action=body.action, namespace=query.namespace,
                              overwrite=query.overwrite)
    return RuleEntity.model_validate(view), 200


@bp.operation("GET", "/rules/<name>", summary="Get a rule and its status",
              permission=PERMISSION_READ, query=EntityQuery,
              responses={200: (RuleEntity, "the rule")}, errors=READ_ERRORS)
def get_rule(claims, query: EntityQuery, name: str):
    view = manager().get_rule(call_context(claims), name=name, namespace=query.namespace)
    return RuleEntity.model_validate(view), 200


@bp.operation("DELETE", "/rules/<name>", summary="Delete a rule",
              permission=PERMISSION_MANAGE, query=EntityQuery,
              responses={200: (RuleEntity, "the deleted rule")}, errors=CHANGE_ERRORS)
def delete_rule(claims, query: EntityQuery, name: str):
    view = manager().delete_rule(call_context(claims), name=name, namespace=query.namespace)
    return RuleEntity.model_validate(view), 200


def _rule_state(active: bool):
    def view(claims, query: EntityQuery, name: str):
        rule = manager().set_rule_state(call_context(claims), name=name, active=active,
                                        namespace=query.namespace)
        return RuleEntity.model_validate(rule), 200

    view.__name__ = "enable_rule" if active else "disable_rule"
    return view


for _active, _verb in ((True, "enable"), (False, "disable")):
    bp.operation("POST", f"/rules/<name>/{_verb}", summary=f"{_verb.capitalize()} a rule",
                 permission=PERMISSION_MANAGE, query=EntityQuery,
                 responses={200: (RuleEntity, "the rule afterwards")},
                 errors=CHANGE_ERRORS)(_rule_state(_active))


# --- API routes -------------------------------------------------------------------------------


@bp.operation("POST", "/routes", summary="Create an API route to a web action",
              permission=PERMISSION_MANAGE, body=RouteBody,
              responses={200: (RouteItem, "the route as the gateway holds it")},
              errors=CHANGE_ERRORS)
def create_route(claims, body: RouteBody):
    """Through OpenWhisk's `/whisk.system/apimgmt/createApi`, as `wsk api create` does."""
    route = manager().create_route(
        call_context(claims), basepath=body.basepath, relpath=body.relpath, verb=body.verb,
        action=body.action, namespace=body.namespace, response_type=body.response_type,
        api_name=body.api_name)
    return RouteItem.model_validate(asdict(route)), 200


@bp.operation("GET", "/routes", summary="List API routes",
              permission=PERMISSION_READ, query=RouteQuery,
              responses={200: (RoutesReply, "the routes, optionally narrowed")},
              errors=READ_ERRORS)
def list_routes(claims, query: RouteQuery):
    routes = manager().list_routes(call_context(claims), namespace=query.namespace,
                                   basepath=query.basepath, relpath=query.relpath,
                                   verb=query.verb)
    return RoutesReply(routes=[RouteItem.model_validate(asdict(r)) for r in routes]), 200


@bp.operation("DELETE", "/routes", summary="Delete API routes",
              permission=PERMISSION_MANAGE, query=RouteDeleteQuery,
              responses={200: (RoutesDeleted, "how many routes went")}, errors=CHANGE_ERRORS)
def delete_route(claims, query: RouteDeleteQuery):
    """A base path's routes, one relpath's, or one verb's (verb needs relpath)."""
    deleted = manager().delete_route(call_context(claims), basepath=query.basepath,
                                     relpath=query.relpath, verb=query.verb,
                                     namespace=query.namespace)
    return RoutesDeleted(deleted=deleted), 200
