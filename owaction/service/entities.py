"""Managing OpenWhisk through the module: actions, packages, triggers with feeds, rules, routes.

Every change is made for a caller holding the ``manage`` permission (the doors check it), with
names and sizes checked before anything is sent, and is one AUDIT line naming who changed what
and the entity's new version. Code and parameter values are never logged.

Feeds and routes follow OpenWhisk's own CLI: a trigger created with a feed runs the feed
action's lifecycle (CREATE after the trigger exists, READ on get, UPDATE on update, DELETE
before the trigger goes), and routes are made by the ``/whisk.system/apimgmt`` web actions.
Both protocols hand the namespace key to a system action; the client adds it, and only for
actions of ``/whisk.system``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from owaction import errors
from owaction.logs import aaa
from owaction.names import (
    SYSTEM_NAMESPACE,
    InvalidName,
    check_name,
    check_namespace,
    split_action,
    split_qualified,
    split_system_path,
)
from owaction.openwhisk import errors as ow
from owaction.openwhisk.models import ActivationPending
from owaction.service.translation import translate_client_error
from owaction.service.validation import parse_payload

log = logging.getLogger("owaction.service.entities")

# OpenWhisk's limits (docs/reference.md, "System limits"): action code and parameters.
MAX_CODE_BYTES = 48 * 1024 * 1024
MAX_PARAMETERS_BYTES = 1024 * 1024
# Room for code at that limit, its parameters and annotations, and the envelope around them.
MAX_ACTION_REQUEST_BYTES = MAX_CODE_BYTES + 3 * MAX_PARAMETERS_BYTES
# An API gateway path: "/" then visible ASCII other than '?', '#' and backslash (the query, the
# fragment, and what some gateways read as '/'); the OpenAPI document states the same pattern.
ROUTE_PATH_PATTERN = r"^/[!-\"$->@-\[\]-~]*$"
_ROUTE_PATH = re.compile(ROUTE_PATH_PATTERN)
ROUTE_VERBS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
ROUTE_RESPONSE_TYPES = ("json", "http", "html", "svg", "text")
# Keys a feed's READ answer might echo back that must never reach a caller.
_FEED_SECRETS = frozenset({"authKey", "authkey", "apikey", "apiKey"})


@dataclass(frozen=True)
class ActionSpec:
    """What a caller asks an action to be; None leaves a field as it is on update."""

    kind: str | None = None
    code: str | None = None
    main: str | None = None
    binary: bool | None = None
    components: tuple[str, ...] | None = None
    parameters: dict | None = None
    annotations: dict | None = None
    limits: dict | None = None
    web_export: bool | None = None
    raw_http: bool | None = None
    require_whisk_auth: Any = None


@dataclass(frozen=True)
class Route:
    """One API route as the gateway holds it."""

    api_id: str
    basepath: str
    relpath: str
    verb: str
    action: str
    action_namespace: str
    url: str
    response_type: str = ""
    api_name: str = ""


@dataclass
class _Change:
    op: str
    kind: str
    target: str
    fields: dict = field(default_factory=dict)


def _pairs(items: Any) -> dict:
    """OpenWhisk's ``[{key, value}]`` as a dict."""
    return {p["key"]: p.get("value") for p in items or () if isinstance(p, dict) and "key" in p}


def _key_values(values: dict) -> list[dict]:
    return [{"key": k, "value": v} for k, v in values.items()]


def _json_size(value: Any, what: str) -> int:
    try:
        return len(json.dumps(value, separators=(",", ":")).encode("utf-8"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise errors.InvalidInput(f"{what} is not JSON: {exc}") from None


def _object(value: Any, what: str) -> dict | None:
    """A JSON object within OpenWhisk's parameter limit, from a dict or JSON text."""
    if value is None or value == "":
        return None
    try:
        return parse_payload(value, MAX_PARAMETERS_BYTES)
    except errors.ServiceError as exc:
        raise type(exc)(f"{what}: {exc.message.replace('payload', 'the value')}") from None


def _qualified(path: Any) -> str:
    """``/ns/[pkg/]name`` from OpenWhisk's ``{"path", "name"}`` reference."""
    if isinstance(path, dict):
        return f"/{path.get('path', '')}/{path.get('name', '')}"
    return str(path or "")


def action_view(doc: dict) -> dict:
    """An action as both doors show it."""
    exec_ = doc.get("exec") or {}
    view = {
        "name": doc.get("name", ""), "namespace": doc.get("namespace", ""),
        "version": doc.get("version", ""), "publish": bool(doc.get("publish", False)),
        "kind": exec_.get("kind"), "main": exec_.get("main"),
        "binary": bool(exec_.get("binary", False)),
        "code": exec_.get("code") if isinstance(exec_.get("code"), str) else None,
        "components": [str(c) for c in exec_.get("components") or []] or None,
        "parameters": _pairs(doc.get("parameters")),
        "annotations": _pairs(doc.get("annotations")),
        "limits": doc.get("limits") if isinstance(doc.get("limits"), dict) else {},
    }
    return view


def package_view(doc: dict) -> dict:
    binding = doc.get("binding")
    has_binding = isinstance(binding, dict) and bool(binding.get("name"))
    return {
        "name": doc.get("name", ""), "namespace": doc.get("namespace", ""),
        "version": doc.get("version", ""), "publish": bool(doc.get("publish", False)),
        "binding": (f"/{binding.get('namespace', '')}/{binding['name']}" if has_binding
                    else None),
        "parameters": _pairs(doc.get("parameters")),
        "annotations": _pairs(doc.get("annotations")),
        "actions": [a.get("name", "") for a in doc.get("actions") or [] if isinstance(a, dict)],
        "feeds": [a.get("name", "") for a in doc.get("feeds") or [] if isinstance(a, dict)],
    }


def trigger_view(doc: dict, feed_state: Any = None, feed_error: str | None = None) -> dict:
    annotations = _pairs(doc.get("annotations"))
    rules = doc.get("rules") if isinstance(doc.get("rules"), dict) else {}
    return {
        "name": doc.get("name", ""), "namespace": doc.get("namespace", ""),
        "version": doc.get("version", ""), "publish": bool(doc.get("publish", False)),
        "parameters": _pairs(doc.get("parameters")),
        "annotations": annotations,
        "feed": annotations.get("feed"),
        "rules": {name: {"action": _qualified((r or {}).get("action")),
                         "status": (r or {}).get("status", "")}
                  for name, r in rules.items()},
        "feed_state": feed_state,
        "feed_error": feed_error,
    }


def rule_view(doc: dict) -> dict:
    return {
        "name": doc.get("name", ""), "namespace": doc.get("namespace", ""),
        "version": doc.get("version", ""), "publish": bool(doc.get("publish", False)),
        "status": doc.get("status", ""),
        "trigger": _qualified(doc.get("trigger")), "action": _qualified(doc.get("action")),
    }


def _scrubbed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items() if k not in _FEED_SECRETS}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


class EntityManager:
    """Creates, reads, changes and deletes OpenWhisk entities for the doors."""

    def __init__(self, *, settings: Any, client: Any):
        self.settings = settings
        self.client = client

    # --- plumbing ---------------------------------------------------------------------------

    def _namespace(self, namespace: str | None) -> str:
        try:
            return check_namespace(namespace or self.settings.openwhisk_namespace)
        except InvalidName as exc:
            raise errors.InvalidInput(str(exc)) from None

    @staticmethod
    def _name(name: str, what: str) -> str:
        try:
            return check_name(name, what)
        except InvalidName as exc:
            raise errors.InvalidInput(str(exc)) from None

    @staticmethod
    def _action_name(name: str) -> str:
        try:
            package, action = split_action(name)
        except InvalidName as exc:
            raise errors.InvalidInput(f"action name: {exc}") from None
        return f"{package}/{action}" if package else action

    def _reference(self, path: str, ns: str, what: str) -> str:
        """A fully qualified ``/ns/[pkg/]name``; a bare name is in ``ns``."""
        try:
            namespace, name = split_qualified(path, what)
        except InvalidName as exc:
            raise errors.InvalidInput(str(exc)) from None
        return f"/{namespace or ns}/{name}"

    def _call(self, ctx: Any, change: _Change, call) -> Any:
        """Run one OpenWhisk call of a change; its failure is audited and translated."""
        try:
            return call()
        except ow.OpenWhiskError as exc:
            error = translate_client_error(exc)[0]
            self._audit(ctx, change, "FAILED", error=error.code, status=error.http_status)
            raise error from None

    @staticmethod
    def _audit(ctx: Any, change: _Change, result: str, **fields: Any) -> None:
        aaa("AUDIT", change.op, result, caller=ctx.caller, source=ctx.source,
            request_id=ctx.request_id, target=f"{change.kind}:{change.target}",
            **change.fields, **fields)

    @staticmethod
    def _read(call) -> Any:
        """Run one OpenWhisk call; its failure translated to the domain's error."""
        try:
            return call()
        except ow.OpenWhiskError as exc:
            raise translate_client_error(exc)[0] from None

    # --- actions ----------------------------------------------------------------------------

    def _action_body(self, spec: ActionSpec, ns: str, overwrite: bool) -> dict:
        body: dict[str, Any] = {}
        if spec.components is not None:
            if spec.code is not None:
                raise errors.InvalidInput("give code or sequence components, not both")
            if not spec.components:
                raise errors.InvalidInput("a sequence needs at least one component")
            body["exec"] = {"kind": "sequence", "components": [
                self._reference(c, ns, "component") for c in spec.components]}
        elif spec.code is not None:
            if not isinstance(spec.code, str):
                raise errors.InvalidInput("code must be text (base64 for a zip)")
            if len(spec.code.encode("utf-8")) > MAX_CODE_BYTES:
                raise errors.PayloadTooLarge(f"code is larger than {MAX_CODE_BYTES} bytes")
            if not spec.kind:
                raise errors.InvalidInput("kind is required with code (e.g. python:3)")
            exec_: dict[str, Any] = {"kind": spec.kind, "code": spec.code}
            if spec.main:
                exec_["main"] = spec.main
            if spec.binary is not None:
                exec_["binary"] = spec.binary
            body["exec"] = exec_
        elif not overwrite:
            raise errors.InvalidInput("a new action needs code or sequence components")
        elif spec.kind or spec.main:
            raise errors.InvalidInput("kind and main can only change together with the code")
        parameters = _object(spec.parameters, "parameters")
        if parameters is not None:
            body["parameters"] = _key_values(parameters)
        annotations = dict(_object(spec.annotations, "annotations") or {})
        if spec.web_export is not None:
            # As `wsk action update --web true|false`: a web action's parameters are final.
            annotations["web-export"] = spec.web_export
            annotations.setdefault("final", spec.web_export)
        if spec.raw_http is not None:
            annotations["raw-http"] = spec.raw_http
        if spec.require_whisk_auth is not None:
            annotations["require-whisk-auth"] = spec.require_whisk_auth
        if annotations or spec.annotations is not None:
            if _json_size(annotations, "annotations") > MAX_PARAMETERS_BYTES:
                raise errors.PayloadTooLarge(
                    f"annotations are larger than {MAX_PARAMETERS_BYTES} bytes")
            body["annotations"] = _key_values(annotations)
        if spec.limits is not None:
            limits = _object(spec.limits, "limits") or {}
            unknown = sorted(set(limits) - {"timeout", "memory", "logs", "concurrency"})
            if unknown or not all(isinstance(v, int) and not isinstance(v, bool)
                                  for v in limits.values()):
                raise errors.InvalidInput("limits are whole numbers among timeout (ms), "
                                          "memory (MB), logs (MB) and concurrency")
            body["limits"] = limits
        return body

    def put_action(self, ctx: Any, *, name: str, spec: ActionSpec, namespace: str | None = None,
                   overwrite: bool = False) -> dict:
        """Create an action (409 if it exists) or, with ``overwrite``, update it."""
        ns = self._namespace(namespace)
        name = self._action_name(name)
        body = self._action_body(spec, ns, overwrite)
        change = _Change("update_action" if overwrite else "create_action", "action",
                         f"/{ns}/{name}")
        if "exec" in body:
            change.fields["kind"] = body["exec"]["kind"]
        doc = self._call(ctx, change, lambda: self.client.put_action(
            name, body, namespace=ns, overwrite=overwrite, request_id=ctx.request_id))
        view = action_view(doc)
        view["code"] = None  # the code went in; it need not come back
        self._audit(ctx, change, "SUCCESS", version=view["version"])
        return view

    def get_action(self, ctx: Any, *, name: str, namespace: str | None = None,
                   code: bool = False) -> dict:
        ns = self._namespace(namespace)
        name = self._action_name(name)
        doc = self._read(lambda: self.client.get_action(name, namespace=ns, code=code,
                                                        request_id=ctx.request_id))
        view = action_view(doc)
        if not code:
            view["code"] = None
        return view

    def delete_action(self, ctx: Any, *, name: str, namespace: str | None = None) -> dict:
        ns = self._namespace(namespace)
        name = self._action_name(name)
        change = _Change("delete_action", "action", f"/{ns}/{name}")
        doc = self._call(ctx, change, lambda: self.client.delete_action(
            name, namespace=ns, request_id=ctx.request_id))
        view = action_view(doc)
        view["code"] = None
        self._audit(ctx, change, "SUCCESS", version=view["version"])
        return view

    # --- packages ---------------------------------------------------------------------------

    def put_package(self, ctx: Any, *, name: str, namespace: str | None = None,
                    overwrite: bool = False, parameters: Any = None, annotations: Any = None,
                    publish: bool | None = None, binding: str | None = None) -> dict:
        """Create or update a package, or a binding of ``binding`` (``/ns/package``)."""
        ns = self._namespace(namespace)
        name = self._name(name, "package name")
        if name == "default":
            raise errors.InvalidInput("package name 'default' is reserved")
        body: dict[str, Any] = {}
        params = _object(parameters, "parameters")
        if params is not None:
            body["parameters"] = _key_values(params)
        notes = _object(annotations, "annotations")
        if notes is not None:
            body["annotations"] = _key_values(notes)
        if publish is not None:
            body["publish"] = publish
        if binding:
            bound = self._reference(binding, ns, "binding")
            bound_ns, _, bound_name = bound[1:].partition("/")
            if "/" in bound_name:
                raise errors.InvalidInput("binding must name a package: /namespace/package")
            body["binding"] = {"namespace": bound_ns, "name": bound_name}
        change = _Change("update_package" if overwrite else "create_package", "package",
                         f"/{ns}/{name}", {"binding": body["binding"]["name"]} if binding else {})
        doc = self._call(ctx, change, lambda: self.client.put_package(
            name, body, namespace=ns, overwrite=overwrite, request_id=ctx.request_id))
        view = package_view(doc)
        self._audit(ctx, change, "SUCCESS", version=view["version"])
        return view

    def get_package(self, ctx: Any, *, name: str, namespace: str | None = None) -> dict:
        ns = self._namespace(namespace)
        name = self._name(name, "package name")
        return package_view(self._read(lambda: self.client.get_package(
            name, namespace=ns, request_id=ctx.request_id)))

    def delete_package(self, ctx: Any, *, name: str, namespace: str | None = None,
                       force: bool = False) -> dict:
        ns = self._namespace(namespace)
        name = self._name(name, "package name")
        change = _Change("delete_package", "package", f"/{ns}/{name}")
        doc = self._call(ctx, change, lambda: self.client.delete_package(
            name, namespace=ns, force=force, request_id=ctx.request_id))
        view = package_view(doc)
        self._audit(ctx, change, "SUCCESS", version=view["version"])
        return view

    def list_entities(self, ctx: Any, *, collection: str, namespace: str | None = None,
                      limit: int = 30, skip: int = 0) -> list[dict]:
        """Briefs of packages, triggers or rules: name, namespace, version, publish."""
        ns = self._namespace(namespace)
        lists = {"packages": self.client.list_packages, "triggers": self.client.list_triggers,
                 "rules": self.client.list_rules}
        if collection not in lists:
            raise errors.InvalidInput(f"cannot list {collection!r}")
        if not 0 <= limit <= 200 or skip < 0:
            raise errors.InvalidInput("limit must be 0..200 and skip 0 or more")
        rows = self._read(lambda: lists[collection](namespace=ns, limit=limit, skip=skip,
                                                     request_id=ctx.request_id))
        return [{"name": r.get("name", ""), "namespace": r.get("namespace", ""),
                 "version": r.get("version", ""), "publish": bool(r.get("publish", False)),
                 "status": r.get("status") if collection == "rules" else None}
                for r in rows if isinstance(r, dict)]

    # --- triggers and feeds -----------------------------------------------------------------

    def _feed(self, ctx: Any, feed: str, event: str, trigger: str, ns: str,
              params: dict) -> Any:
        """One lifecycle event of a trigger's feed; the feed's failure is an error here."""
        outcome = self._read(lambda: self.client.invoke_feed(
            feed, event, trigger, params, namespace=ns, request_id=ctx.request_id))
        if isinstance(outcome, ActivationPending):
            raise errors.UpstreamTimeout(f"feed {feed} did not answer {event} in time")
        if not outcome.success:
            result = outcome.result
            message = result.get("error") if isinstance(result, dict) else result
            # The feed answering with an error of its own refuses the caller's parameters.
            refused = getattr(outcome, "status", "") == "application error"
            raise (errors.InvalidInput if refused else errors.UpstreamFailure)(
                f"feed {feed} refused {event}: {_scrubbed(message) or 'it failed'}")
        return _scrubbed(outcome.result)

    def _check_feed(self, feed: str) -> str:
        try:
            split_system_path(feed)
        except InvalidName as exc:
            raise errors.InvalidInput(str(exc)) from None
        return feed

    def put_trigger(self, ctx: Any, *, name: str, namespace: str | None = None,
                    overwrite: bool = False, parameters: Any = None, annotations: Any = None,
                    feed: str | None = None, publish: bool | None = None) -> dict:
        """Create or update a trigger. With ``feed``, the parameters go to the feed action
        (CREATE, or UPDATE when the trigger already has that feed), as ``wsk`` sends them."""
        ns = self._namespace(namespace)
        name = self._name(name, "trigger name")
        params = _object(parameters, "parameters")
        notes = dict(_object(annotations, "annotations") or {})
        change = _Change("update_trigger" if overwrite else "create_trigger", "trigger",
                         f"/{ns}/{name}")
        existing: dict | None = None  # the trigger before an update, when there was one
        if feed:
            feed = self._check_feed(feed)
            notes["feed"] = feed
            change.fields["feed"] = feed
            if overwrite:
                try:
                    existing = self.client.get_trigger(name, namespace=ns,
                                                       request_id=ctx.request_id)
                except ow.NotFound:
                    existing = None
                except ow.OpenWhiskError as exc:
                    raise translate_client_error(exc)[0] from None
        body: dict[str, Any] = {}
        if params is not None and not feed:
            body["parameters"] = _key_values(params)
        if notes or annotations is not None:
            body["annotations"] = _key_values(notes)
        if publish is not None:
            body["publish"] = publish
        doc = self._call(ctx, change, lambda: self.client.put_trigger(
            name, body, namespace=ns, overwrite=overwrite, request_id=ctx.request_id))
        feed_state = None
        if feed:
            had_feed = existing is not None and _pairs(existing.get("annotations")).get(
                "feed") == feed
            event = "UPDATE" if had_feed else "CREATE"
            try:
                feed_state = self._feed(ctx, feed, event, name, ns, params or {})
            except errors.ServiceError as exc:
                # As wsk does, a trigger whose feed refused it is not left behind; one that
                # existed before is put back as it was.
                self._undo_trigger(ctx, name, ns, existing)
                self._audit(ctx, change, "FAILED", error=exc.code, lifecycle=event)
                raise
            change.fields["lifecycle"] = event
        view = trigger_view(doc, feed_state=feed_state)
        self._audit(ctx, change, "SUCCESS", version=view["version"])
        return view

    def _undo_trigger(self, ctx: Any, name: str, ns: str, before: dict | None) -> None:
        try:
            if before is None:
                self.client.delete_trigger(name, namespace=ns, request_id=ctx.request_id)
            else:
                restored = {key: before[key] for key in ("parameters", "annotations", "publish")
                            if key in before}
                self.client.put_trigger(name, restored, namespace=ns, overwrite=True,
                                        request_id=ctx.request_id)
        except ow.OpenWhiskError as exc:
            log.warning("could not undo trigger /%s/%s after its feed failed: %s", ns, name, exc)

    def get_trigger(self, ctx: Any, *, name: str, namespace: str | None = None) -> dict:
        """A trigger; one with a feed also shows the feed's READ answer (or why it failed)."""
        ns = self._namespace(namespace)
        name = self._name(name, "trigger name")
        doc = self._read(lambda: self.client.get_trigger(name, namespace=ns,
                                                         request_id=ctx.request_id))
        feed = _pairs(doc.get("annotations")).get("feed")
        if not isinstance(feed, str) or not feed:
            return trigger_view(doc)
        try:
            state = self._feed(ctx, feed, "READ", name, ns, {})
        except errors.ServiceError as exc:
            return trigger_view(doc, feed_error=exc.message)
        return trigger_view(doc, feed_state=state)

    def delete_trigger(self, ctx: Any, *, name: str, namespace: str | None = None) -> dict:
        """Delete a trigger, running its feed's DELETE first (a failing feed is noted in the
        AUDIT line and the trigger still goes, as with wsk)."""
        ns = self._namespace(namespace)
        name = self._name(name, "trigger name")
        change = _Change("delete_trigger", "trigger", f"/{ns}/{name}")
        current = self._call(ctx, change, lambda: self.client.get_trigger(
            name, namespace=ns, request_id=ctx.request_id))
        feed = _pairs(current.get("annotations")).get("feed")
        feed_error = None
        if isinstance(feed, str) and feed:
            change.fields["feed"] = feed
            try:
                self._feed(ctx, feed, "DELETE", name, ns, {})
            except errors.ServiceError as exc:
                feed_error = exc.message
        doc = self._call(ctx, change, lambda: self.client.delete_trigger(
            name, namespace=ns, request_id=ctx.request_id))
        view = trigger_view(doc, feed_error=feed_error)
        self._audit(ctx, change, "SUCCESS", version=view["version"],
                    feed_delete="failed" if feed_error else ("done" if feed else None))
        return view

    # --- rules ------------------------------------------------------------------------------

    def put_rule(self, ctx: Any, *, name: str, trigger: str, action: str,
                 namespace: str | None = None, overwrite: bool = False) -> dict:
        ns = self._namespace(namespace)
        name = self._name(name, "rule name")
        body = {"trigger": self._reference(trigger, ns, "trigger"),
                "action": self._reference(action, ns, "action")}
        change = _Change("update_rule" if overwrite else "create_rule", "rule", f"/{ns}/{name}",
                         {"trigger_ref": body["trigger"], "action_ref": body["action"]})
        doc = self._call(ctx, change, lambda: self.client.put_rule(
            name, body, namespace=ns, overwrite=overwrite, request_id=ctx.request_id))
        view = rule_view(doc)
        self._audit(ctx, change, "SUCCESS", version=view["version"], status=view["status"])
        return view

    def get_rule(self, ctx: Any, *, name: str, namespace: str | None = None) -> dict:
        ns = self._namespace(namespace)
        name = self._name(name, "rule name")
        return rule_view(self._read(lambda: self.client.get_rule(
            name, namespace=ns, request_id=ctx.request_id)))

    def set_rule_state(self, ctx: Any, *, name: str, active: bool,
                       namespace: str | None = None) -> dict:
        """Enable or disable a rule; the rule as it is afterwards."""
        ns = self._namespace(namespace)
        name = self._name(name, "rule name")
        change = _Change("enable_rule" if active else "disable_rule", "rule", f"/{ns}/{name}")
        setter = self.client.enable_rule if active else self.client.disable_rule
        self._call(ctx, change, lambda: setter(name, namespace=ns, request_id=ctx.request_id))
        view = rule_view(self._call(ctx, change, lambda: self.client.get_rule(
            name, namespace=ns, request_id=ctx.request_id)))
        self._audit(ctx, change, "SUCCESS", version=view["version"], status=view["status"])
        return view

    def delete_rule(self, ctx: Any, *, name: str, namespace: str | None = None) -> dict:
        ns = self._namespace(namespace)
        name = self._name(name, "rule name")
        change = _Change("delete_rule", "rule", f"/{ns}/{name}")
        view = rule_view(self._call(ctx, change, lambda: self.client.delete_rule(
            name, namespace=ns, request_id=ctx.request_id)))
        self._audit(ctx, change, "SUCCESS", version=view["version"])
        return view

    # --- API routes -------------------------------------------------------------------------

    @staticmethod
    def _path(value: str, what: str) -> str:
        if not isinstance(value, str) or len(value) > 512 or not _ROUTE_PATH.fullmatch(value):
            raise errors.InvalidInput(f"{what} must be a path starting with '/' of visible "
                                      "ASCII (no spaces, '?', '#' or '\\')")
        return value.rstrip("/") or "/"

    @staticmethod
    def _verb(verb: str | None) -> str | None:
        if not verb:
            return None
        verb = verb.upper()
        if verb not in ROUTE_VERBS:
            raise errors.InvalidInput(f"verb must be one of {', '.join(ROUTE_VERBS)}")
        return verb

    def create_route(self, ctx: Any, *, basepath: str, relpath: str, verb: str, action: str,
                     namespace: str | None = None, response_type: str = "json",
                     api_name: str | None = None) -> Route:
        """A gateway route to a web action of this namespace (``createApi``, as wsk does)."""
        ns = self._namespace(namespace)
        basepath = self._path(basepath, "basepath")
        relpath = self._path(relpath, "relpath")
        method = self._verb(verb)
        if method is None:
            raise errors.InvalidInput("verb is required")
        if response_type not in ROUTE_RESPONSE_TYPES:
            raise errors.InvalidInput(
                f"response_type must be one of {', '.join(ROUTE_RESPONSE_TYPES)}")
        action = self._action_name(action)
        change = _Change("create_route", "route", f"{basepath}{relpath} {method}",
                         {"action_ref": f"/{ns}/{action}"})
        current = self._call(ctx, change, lambda: self.client.get_action(
            action, namespace=ns, request_id=ctx.request_id))
        if _pairs(current.get("annotations")).get("web-export") is not True:
            self._audit(ctx, change, "FAILED", error="not_a_web_action")
            raise errors.InvalidInput(f"action {action} is not a web action: update it with "
                                      "web_export true first")
        package, short = split_action(action)
        apidoc = {
            "namespace": ns, "gatewayBasePath": basepath, "gatewayPath": relpath,
            "gatewayMethod": method, "id": f"API:{ns}:{basepath}",
            "apiName": api_name or basepath,
            "action": {"name": action, "namespace": ns, "backendMethod": method,
                       "backendUrl": self.client.web_action_url(action, namespace=ns,
                                                                extension=".http")},
        }
        self._call(ctx, change, lambda: self.client.create_api(
            apidoc, response_type=response_type, request_id=ctx.request_id))
        routes = self.list_routes(ctx, namespace=ns, basepath=basepath, relpath=relpath,
                                  verb=method)
        self._audit(ctx, change, "SUCCESS", version=f"{len(routes)} route(s)")
        found = routes[0] if routes else None
        return found or Route(api_id=apidoc["id"], basepath=basepath, relpath=relpath,
                              verb=method, action=short if package is None else action,
                              action_namespace=ns, url="", response_type=response_type,
                              api_name=apidoc["apiName"])

    def list_routes(self, ctx: Any, *, namespace: str | None = None,
                    basepath: str | None = None, relpath: str | None = None,
                    verb: str | None = None) -> list[Route]:
        """The gateway's routes (``getApi``), optionally narrowed."""
        self._namespace(namespace)
        basepath = self._path(basepath, "basepath") if basepath else None
        relpath = self._path(relpath, "relpath") if relpath else None
        method = self._verb(verb)
        body = self._read(lambda: self.client.get_apis(
            basepath=basepath, relpath=relpath, operation=method, request_id=ctx.request_id))
        return [route for route in _routes(body)
                if (relpath is None or route.relpath == relpath)
                and (method is None or route.verb == method)]

    def delete_route(self, ctx: Any, *, basepath: str, relpath: str | None = None,
                     verb: str | None = None, namespace: str | None = None) -> int:
        """Delete a base path's routes, or one path's, or one verb's; how many went."""
        self._namespace(namespace)
        basepath = self._path(basepath, "basepath")
        relpath = self._path(relpath, "relpath") if relpath else None
        method = self._verb(verb)
        if method and not relpath:
            raise errors.InvalidInput("a verb needs its relpath")
        change = _Change("delete_route", "route",
                         f"{basepath}{relpath or ''}{' ' + method if method else ''}")
        before = self.list_routes(ctx, basepath=basepath, relpath=relpath, verb=method)
        if not before:
            self._audit(ctx, change, "FAILED", error="not_found")
            raise errors.NotFound(f"no route {change.target}")
        self._call(ctx, change, lambda: self.client.delete_api(
            basepath=basepath, relpath=relpath, operation=method, request_id=ctx.request_id))
        self._audit(ctx, change, "SUCCESS", version=f"-{len(before)} route(s)")
        return len(before)


def _routes(body: Any) -> list[Route]:
    """Routes from getApi's ``{"apis": [{"value": {"gwApiUrl", "apidoc": swagger}}]}``."""
    out: list[Route] = []
    for item in (body or {}).get("apis") or [] if isinstance(body, dict) else []:
        value = (item or {}).get("value") or {}
        doc = value.get("apidoc") or {}
        basepath = doc.get("basePath") or ""
        base_url = str(value.get("gwApiUrl") or "").rstrip("/")
        for relpath, operations in (doc.get("paths") or {}).items():
            for verb, operation in (operations or {}).items():
                ext = (operation or {}).get("x-openwhisk") or {}
                package = ext.get("package") or "default"
                action = ext.get("action") or ""
                url = str(ext.get("url") or "")
                response_type = url.rsplit(".", 1)[-1] if "." in url.rsplit("/", 1)[-1] else ""
                out.append(Route(
                    api_id=str(item.get("id") or ""), basepath=basepath, relpath=relpath,
                    verb=verb.upper(),
                    action=action if package == "default" else f"{package}/{action}",
                    action_namespace=ext.get("namespace") or "",
                    url=f"{base_url}{relpath}" if base_url else "",
                    response_type=response_type,
                    api_name=str((doc.get("info") or {}).get("title") or ""),
                ))
    return out


__all__ = ["SYSTEM_NAMESPACE", "ActionSpec", "EntityManager", "Route", "MAX_CODE_BYTES",
           "MAX_PARAMETERS_BYTES", "MAX_ACTION_REQUEST_BYTES"]
