"""Actions, packages, triggers and rules of one namespace, kept in memory.

All four collections share one key space, as in OpenWhisk's entity store: ``ns/name`` for
top-level entities and ``ns/pkg/name`` for packaged actions, so an action and a trigger cannot
share a name (409 "not in this collection").
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from openwhisk_emulator import problems as m
from openwhisk_emulator.problems import ApiError
from owaction.names import MAX_NAME_LENGTH, InvalidName, check_name

ACTIONS, PACKAGES, TRIGGERS, RULES = "actions", "packages", "triggers", "rules"

# whisk.time-limit / whisk.memory / whisk.log-limit / concurrency-limit (BEHAVIOUR.md §8)
TIMEOUT_MIN, TIMEOUT_MAX, TIMEOUT_STD = 100, 300_000, 60_000
MEMORY_MIN, MEMORY_MAX, MEMORY_STD = 128, 512, 256
LOGS_MIN, LOGS_MAX, LOGS_STD = 0, 10, 10
SEQUENCE_MAX_LENGTH = 50
MAX_PARAMETER_BYTES = 1024 * 1024
DEPRECATED_KINDS = ("nodejs:6", "nodejs:8", "nodejs:10", "python:2", "python:3.6")
# ExecManifest.resolveDefaultRuntime: a ":default" kind is stored as the concrete one.
DEFAULT_KINDS = {"nodejs:default": "nodejs:20", "python:default": "python:3"}
SYSTEM_NAMESPACE = "whisk.system"
RULE_STATES = ("active", "inactive")

# Every write gets a new revision, so a deleted and re-created action never reuses the warm
# processes of its predecessor even though its version starts again at 0.0.1.
_revisions = itertools.count(1)


def check_entity_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH:
        raise ApiError(400, f"Name segement longer than allowed: {len(name)} > {MAX_NAME_LENGTH}.")
    try:
        return check_name(name)
    except InvalidName:
        raise ApiError(400, m.NAME_ILLEGAL) from None


def check_namespace_name(namespace: str) -> str:
    if namespace == "_":
        return namespace
    if len(namespace) > MAX_NAME_LENGTH:
        raise ApiError(400, f"Namespace longer than allowed: {len(namespace)} > {MAX_NAME_LENGTH}.")
    try:
        return check_name(namespace)
    except InvalidName:
        raise ApiError(400, m.NAMESPACE_ILLEGAL) from None


_BASE64 = re.compile(r"\A([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)?\Z")


def is_binary_code(code: str) -> bool:
    """Exec.isBinaryCode: base64 text is a zip, whatever the request's ``binary`` said."""
    text = code.strip()
    return bool(text) and len(text) % 4 == 0 and _BASE64.match(text) is not None


def now_ms() -> int:
    return int(time.time() * 1000)


def kv_list(value: Any, what: str) -> list[dict]:
    """OpenWhisk's ``[{"key", "value"}]`` arrays, validated."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(item, dict) and isinstance(item.get("key"), str) for item in value
    ):
        raise ApiError(400, m.malformed(f"'{what}' must be an array of {{key, value}} objects"))
    return [{"key": item["key"], "value": item.get("value")} for item in value]


def kv_get(items: list[dict], key: str, default: Any = None) -> Any:
    for item in items:
        if item["key"] == key:
            return item["value"]
    return default


def kv_set(items: list[dict], key: str, value: Any) -> list[dict]:
    return [i for i in items if i["key"] != key] + [{"key": key, "value": value}]


def kv_dict(items: list[dict]) -> dict:
    return {item["key"]: item["value"] for item in items}


def path_and_name(fq: str) -> dict:
    path, _, name = fq.rpartition("/")
    return {"path": path, "name": name}


@dataclass
class Entity:
    collection: str
    namespace: str  # "guest", or "guest/pkg" for a packaged action
    name: str
    version: str = "0.0.1"
    publish: bool = False
    annotations: list[dict] = field(default_factory=list)
    parameters: list[dict] = field(default_factory=list)
    limits: dict = field(default_factory=dict)
    exec: dict = field(default_factory=dict)  # actions
    binding: dict = field(default_factory=dict)  # packages
    trigger: str = ""  # rules: "ns/trigger"
    action: str = ""  # rules: "ns/[pkg/]action"
    status: str = "active"  # rules
    updated: int = field(default_factory=now_ms)
    revision: int = field(default_factory=lambda: next(_revisions))

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def package(self) -> str | None:
        _, _, pkg = self.namespace.partition("/")
        return pkg or None

    @property
    def kind(self) -> str:
        return self.exec.get("kind", "")

    def annotation(self, key: str, default: Any = None) -> Any:
        return kv_get(self.annotations, key, default)

    def bump(self) -> None:
        major, minor, patch = (int(p) for p in self.version.split("."))
        self.version = f"{major}.{minor}.{patch + 1}"
        self.updated = now_ms()
        self.revision = next(_revisions)

    def to_json(self, *, code: bool = True) -> dict:
        doc: dict[str, Any] = {
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
        }
        if self.collection == ACTIONS:
            exec_ = dict(self.exec)
            if not code:
                exec_.pop("code", None)
            doc.update(exec=exec_, parameters=self.parameters, limits=self.limits)
        elif self.collection == PACKAGES:
            doc.update(parameters=self.parameters, binding=self.binding)
        elif self.collection == TRIGGERS:
            doc.update(parameters=self.parameters, limits={})
        else:
            doc.update(
                status=self.status,
                trigger=path_and_name(self.trigger),
                action=path_and_name(self.action),
            )
        doc["updated"] = self.updated
        return doc

    def brief(self) -> dict:
        """The row of a list: no code, no parameters (OpenWhisk's list views)."""
        doc = {
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
            "updated": self.updated,
        }
        if self.collection == ACTIONS:
            doc["limits"] = self.limits
            doc["exec"] = {"binary": bool(self.exec.get("binary"))}
        elif self.collection == PACKAGES:
            doc["binding"] = self.binding or False
        elif self.collection == RULES:
            doc["status"] = self.status
            doc["trigger"] = path_and_name(self.trigger)
            doc["action"] = path_and_name(self.action)
        return doc


def _bounded(value: Any, what: str, unit: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, m.malformed(f"{what} must be a whole number of {unit}"))
    if value < low:
        raise ApiError(400, f"{what} {value} {unit} below allowed threshold of {low} {unit}.")
    if value > high:
        raise ApiError(400, f"{what} {value} {unit} exceeds allowed threshold of {high} {unit}.")
    return value


def check_limits(raw: Any, base: dict | None = None) -> dict:
    limits = dict(
        base or {"timeout": TIMEOUT_STD, "memory": MEMORY_STD, "logs": LOGS_STD, "concurrency": 1}
    )
    if raw is None:
        return limits
    if not isinstance(raw, dict):
        raise ApiError(400, m.malformed("'limits' must be an object"))
    if "timeout" in raw:
        limits["timeout"] = _bounded(
            raw["timeout"], "Time limit", "milliseconds", TIMEOUT_MIN, TIMEOUT_MAX
        )
    if "memory" in raw:
        limits["memory"] = _bounded(raw["memory"], "Memory", "MB", MEMORY_MIN, MEMORY_MAX)
    if "logs" in raw:
        limits["logs"] = _bounded(raw["logs"], "Log size", "MB", LOGS_MIN, LOGS_MAX)
    if "concurrency" in raw:
        value = raw["concurrency"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ApiError(400, m.malformed("concurrency must be a positive whole number"))
        if value > 1:
            raise ApiError(400, f"concurrency {value} exceeds allowed threshold of 1")
    return limits


class Registry:
    """Every entity of the emulator's one namespace."""

    def __init__(self, namespace: str, kinds: list[str]):
        self.namespace = namespace
        self.kinds = list(kinds)
        self._docs: dict[str, Entity] = {}

    # --- lookup -----------------------------------------------------------------------------

    def find(self, key: str) -> Entity | None:
        return self._docs.get(key)

    def get(self, collection: str, key: str) -> Entity:
        entity = self._docs.get(key)
        if entity is None:
            raise ApiError(404, m.NOT_FOUND)
        if entity.collection != collection:
            raise ApiError(409, m.WRONG_COLLECTION)
        return entity

    def listing(self, collection: str, namespace: str | None = None) -> list[Entity]:
        """Newest update first; a namespace listing (ours by default) includes packaged actions."""
        def wanted(entity: Entity) -> bool:
            if namespace is not None:
                return entity.namespace == namespace
            return entity.namespace.split("/", 1)[0] == self.namespace

        items = [e for e in self._docs.values() if e.collection == collection and wanted(e)]
        return sorted(items, key=lambda e: (e.updated, e.revision), reverse=True)

    def package_actions(self, package_key: str) -> list[Entity]:
        """The actions of the package ``ns/pkg`` (a binding's are those of its target)."""
        pkg = self._docs.get(package_key)
        if pkg is not None and pkg.binding:
            package_key = f"{pkg.binding['namespace']}/{pkg.binding['name']}"
        return self.listing(ACTIONS, package_key)

    def check_read(self, key: str) -> None:
        """OpenWhisk's entitlement for a reference: ours, or inside a public package of another
        namespace; anything else is a 403 naming the package, before any "does not exist"."""
        parts = key.split("/")
        if parts[0] == self.namespace:
            return
        if len(parts) >= 2:
            pkg = self._docs.get("/".join(parts[:2]))
            if pkg is not None and pkg.collection == PACKAGES and pkg.publish:
                return
        raise ApiError(403, m.not_authorized("/".join(parts[:2])))

    def resolve_action(self, key: str) -> tuple[Entity, Entity | None]:
        """The action ``ns/[pkg/]name`` names, and the binding it was reached through, if any."""
        self.check_read(key)
        parts = key.split("/")
        binding = None
        if len(parts) == 3:
            pkg = self.get(PACKAGES, "/".join(parts[:2]))
            if pkg.binding:
                binding = pkg
                target = f"{pkg.binding['namespace']}/{pkg.binding['name']}"
                self.check_read(target)
                self.get(PACKAGES, target)
                key = f"{target}/{parts[2]}"
        return self.get(ACTIONS, key), binding

    def rules_of(self, trigger_key: str) -> list[Entity]:
        return [e for e in self.listing(RULES) if e.trigger == trigger_key]

    def _claim(self, collection: str, key: str, overwrite: bool) -> Entity | None:
        existing = self._docs.get(key)
        if existing is None:
            return None
        if existing.collection != collection:
            raise ApiError(409, m.WRONG_COLLECTION)
        if not overwrite:
            raise ApiError(409, m.ALREADY_EXISTS)
        return existing

    def delete(self, collection: str, key: str) -> Entity:
        entity = self.get(collection, key)
        del self._docs[key]
        return entity

    # --- writes: each validates a copy, so a refused update leaves the stored entity alone ---

    def _common(self, entity: Entity, body: dict, creating: bool) -> None:
        if "publish" in body:
            if not isinstance(body["publish"], bool):
                raise ApiError(400, m.malformed("'publish' must be a boolean"))
            entity.publish = body["publish"]
        if "annotations" in body or creating:
            entity.annotations = kv_list(body.get("annotations"), "annotations")
        if "parameters" in body or creating:
            entity.parameters = kv_list(body.get("parameters"), "parameters")
            size = len(json.dumps(entity.parameters, separators=(",", ":")).encode())
            if size > MAX_PARAMETER_BYTES:
                raise ApiError(413, m.too_large(size, MAX_PARAMETER_BYTES))

    def _store(self, entity: Entity, creating: bool) -> Entity:
        if not creating:
            entity.bump()
        self._docs[entity.key] = entity
        return entity

    def put_action(self, package: str | None, name: str, body: dict, overwrite: bool, *,
                   namespace: str | None = None) -> Entity:
        namespace = namespace or self.namespace
        if package is not None:
            pkg = self.get(PACKAGES, f"{namespace}/{package}")
            if pkg.binding:
                raise ApiError(400, "Cannot create an action in a package binding.")
            namespace = f"{namespace}/{package}"
        key = f"{namespace}/{name}"
        existing = self._claim(ACTIONS, key, overwrite)
        creating = existing is None
        entity = Entity(ACTIONS, namespace, name) if creating else copy.deepcopy(existing)
        exec_raw = body.get("exec")
        if exec_raw is None and creating:
            raise ApiError(400, m.malformed("'exec' undefined"))
        self._common(entity, body, creating)
        if exec_raw is not None:
            entity.exec = self._check_exec(exec_raw, key)
        entity.limits = check_limits(body.get("limits"), None if creating else entity.limits)
        if entity.kind == "sequence":
            # OpenWhisk stores a sequence's components as the synthetic parameter _actions.
            entity.parameters = kv_set(entity.parameters, "_actions", entity.exec["components"])
        entity.annotations = kv_set(entity.annotations, "exec", entity.kind)
        return self._store(entity, creating)

    def _check_exec(self, raw: Any, key: str) -> dict:
        if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
            raise ApiError(400, m.malformed("'exec' must be an object with a 'kind'"))
        kind = DEFAULT_KINDS.get(raw["kind"], raw["kind"])
        if kind == "sequence":
            return {"kind": "sequence", "components": self._check_components(raw, key)}
        if kind == "blackbox":
            raise ApiError(400, "Docker actions ('blackbox') are not supported by this emulator.")
        if kind in DEPRECATED_KINDS:
            raise ApiError(400, f"The '{kind}' runtime is no longer supported. You may read and "
                           "delete but not update or invoke this action.")
        if kind not in self.kinds:
            allowed = ", ".join([*self.kinds, "sequence"])
            raise ApiError(400, f"kind '{kind}' is not supported here; one of: {allowed}")
        code = raw.get("code")
        if not isinstance(code, str):
            raise ApiError(400, m.malformed("'exec.code' must be a string"))
        exec_ = {"kind": kind, "code": code, "binary": is_binary_code(code)}
        main = raw.get("main")
        if main is not None:
            if not isinstance(main, str) or not main.isidentifier():
                raise ApiError(400, m.malformed("'exec.main' must be a function name"))
            exec_["main"] = main
        return exec_

    def resolve_fq(self, fq: Any) -> str:
        """``/ns/[pkg/]name`` (or ``ns/[pkg/]name``) into a store key; ``_`` is this namespace."""
        if not isinstance(fq, str):
            raise ApiError(400, m.malformed("entity names must be strings"))
        parts = fq.strip("/").split("/")
        if len(parts) not in (2, 3):
            raise ApiError(400, m.malformed(f"'{fq}' is not a fully qualified name"))
        namespace, *rest = parts
        check_namespace_name(namespace)
        for part in rest:
            check_entity_name(part)
        if namespace == "_":
            namespace = self.namespace
        return "/".join([namespace, *rest])

    def _check_components(self, raw: dict, key: str) -> list[str]:
        components = raw.get("components")
        if not isinstance(components, list):
            raise ApiError(400, m.malformed("'exec.components' must be an array"))
        if not components:
            raise ApiError(400, "No component specified for the sequence.")
        keys = [self.resolve_fq(c) for c in components]
        count = sum(self._atomic_count(k, key, depth=0) for k in keys)
        if count > SEQUENCE_MAX_LENGTH:
            raise ApiError(400, "Too many actions in the sequence.")
        return ["/" + k for k in keys]

    def _atomic_count(self, component: str, sequence_key: str, depth: int) -> int:
        if component == sequence_key or depth > SEQUENCE_MAX_LENGTH:
            raise ApiError(400, "Sequence may not refer to itself.")
        try:
            entity, _ = self.resolve_action(component)
        except ApiError as exc:
            if exc.status == 403:
                raise
            raise ApiError(400, "Sequence component does not exist.") from None
        if entity.kind != "sequence":
            return 1
        return sum(
            self._atomic_count(c.lstrip("/"), sequence_key, depth + 1)
            for c in entity.exec["components"]
        )

    def put_package(self, name: str, body: dict, overwrite: bool, *,
                    namespace: str | None = None) -> Entity:
        if name == "default":
            raise ApiError(400, "Package name 'default' is reserved.")
        namespace = namespace or self.namespace
        key = f"{namespace}/{name}"
        existing = self._claim(PACKAGES, key, overwrite)
        creating = existing is None
        entity = Entity(PACKAGES, namespace, name) if creating else copy.deepcopy(existing)
        self._common(entity, body, creating)
        binding = body.get("binding")
        if binding:
            if not isinstance(binding, dict) or not all(
                isinstance(binding.get(k), str) for k in ("namespace", "name")
            ):
                raise ApiError(400, m.malformed("'binding' must be {namespace, name}"))
            bound_ns = self.namespace if binding["namespace"] == "_" else binding["namespace"]
            self.check_read(f"{bound_ns}/{binding['name']}")
            target = self._docs.get(f"{bound_ns}/{binding['name']}")
            if target is None or target.collection != PACKAGES or target.binding:
                raise ApiError(400, "Binding references a package that does not exist.")
            entity.binding = {"namespace": bound_ns, "name": binding["name"]}
            entity.annotations = kv_set(entity.annotations, "binding", entity.binding)
        return self._store(entity, creating)

    def delete_package(self, name: str, force: bool) -> Entity:
        key = f"{self.namespace}/{name}"
        entity = self.get(PACKAGES, key)
        contents = self.listing(ACTIONS, key)  # a binding holds none of its target's
        if contents and not force:
            noun = "entity" if len(contents) == 1 else "entities"
            raise ApiError(
                409,
                f"Package not empty (contains {len(contents)} {noun}). "
                "Set force param or delete package contents.",
            )
        for action in contents:
            del self._docs[action.key]
        del self._docs[key]
        return entity

    def put_trigger(self, name: str, body: dict, overwrite: bool) -> Entity:
        key = f"{self.namespace}/{name}"
        existing = self._claim(TRIGGERS, key, overwrite)
        creating = existing is None
        entity = Entity(TRIGGERS, self.namespace, name) if creating else copy.deepcopy(existing)
        self._common(entity, body, creating)
        feed = entity.annotation("feed")
        if feed is not None:
            try:
                self.resolve_fq(feed if str(feed).count("/") >= 2 else f"/_/{feed}")
            except ApiError:
                raise ApiError(400, "Feed name is not valid") from None
        return self._store(entity, creating)

    def put_rule(self, name: str, body: dict, overwrite: bool) -> Entity:
        key = f"{self.namespace}/{name}"
        existing = self._claim(RULES, key, overwrite)
        creating = existing is None
        entity = Entity(RULES, self.namespace, name) if creating else copy.deepcopy(existing)
        self._common(entity, body, creating)
        if creating or "trigger" in body:
            entity.trigger = self._rule_target(body.get("trigger"), TRIGGERS, "trigger")
        if creating or "action" in body:
            entity.action = self._rule_target(body.get("action"), ACTIONS, "action")
        return self._store(entity, creating)

    def _rule_target(self, raw: Any, collection: str, what: str) -> str:
        if not isinstance(raw, str) or not raw:
            raise ApiError(400, m.malformed(f"rule '{what}' must be a name"))
        fq = raw if raw.startswith("/") or raw.count("/") >= 2 else f"/_/{raw}"
        target = self.resolve_fq(fq)
        self.check_read(target)
        try:
            if collection == ACTIONS:
                self.resolve_action(target)
            else:
                self.get(collection, target)
        except ApiError as exc:
            if exc.status == 403:
                raise
            raise ApiError(400, f"{what} /{target} does not exist") from None
        return target

    def set_rule_state(self, name: str, status: Any) -> Entity:
        entity = self.get(RULES, f"{self.namespace}/{name}")
        if status not in RULE_STATES:
            raise ApiError(
                400,
                f"'{status}' is not a recognized rule state, must be one of "
                "['active', 'inactive']",
            )
        if status == "active" and self._docs.get(entity.trigger) is None:
            raise ApiError(404, "Only rules with existing triggers can be activated")
        if entity.status != status:
            entity.status = status
            entity.updated = now_ms()
        return entity
