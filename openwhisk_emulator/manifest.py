"""Seeding: load actions, packages, sequences, triggers and rules from a manifest at start.

A manifest is YAML or JSON (``manifest.yaml``/``.yml``/``.json`` when a directory is given)::

    packages:   {NAME: {parameters: {k: v}, annotations: {k: v}, publish: false}}
    actions:    [{name: "[pkg/]NAME", kind: python:3, code: FILE, main?, limits?,
                  parameters?, annotations?}
                 | {name: NAME, sequence: ["/guest/a", ...]}]
    triggers:   {NAME: {parameters?, annotations?}}
    rules:      {NAME: {trigger: NAME, action: "[pkg/]NAME", status?: active}}

``code`` names a file beside the manifest. An action whose kind this machine cannot run (e.g.
nodejs without node) is skipped with a log line. Entities go through the same checks as the API.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from openwhisk_emulator.problems import ApiError

log = logging.getLogger("openwhisk_emulator")
MANIFEST_NAMES = ("manifest.yaml", "manifest.yml", "manifest.json")


class ManifestError(Exception):
    pass


def _kv(mapping: Any, where: str) -> list[dict]:
    if mapping is None:
        return []
    if not isinstance(mapping, dict):
        raise ManifestError(f"{where} must be a mapping")
    return [{"key": k, "value": v} for k, v in mapping.items()]


def read_manifest(path: str | Path) -> tuple[dict, Path]:
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in MANIFEST_NAMES if (path / n).is_file()]
        if not found:
            raise ManifestError(f"no {' / '.join(MANIFEST_NAMES)} in {path}")
        path = found[0]
    try:
        text = path.read_text()
    except OSError as exc:
        raise ManifestError(str(exc)) from None
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path} is not valid: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{path} must hold a mapping")
    return doc, path.parent


def load_manifest(emu: Any, path: str | Path, namespace: str | None = None) -> dict[str, int]:
    """Create every entity of the manifest (overwriting) in ``namespace`` (ours by default);
    returns how many of each."""
    doc, base = read_manifest(path)
    registry = emu.registry
    counts = {"packages": 0, "actions": 0, "triggers": 0, "rules": 0}
    try:
        for name, spec in (doc.get("packages") or {}).items():
            spec = spec or {}
            registry.put_package(name, {
                "parameters": _kv(spec.get("parameters"), f"package {name} parameters"),
                "annotations": _kv(spec.get("annotations"), f"package {name} annotations"),
                "publish": bool(spec.get("publish", False)),
            }, overwrite=True, namespace=namespace)
            counts["packages"] += 1
        for spec in doc.get("actions") or []:
            if _put_action(registry, spec, base, namespace):
                counts["actions"] += 1
        for name, spec in (doc.get("triggers") or {}).items():
            spec = spec or {}
            registry.put_trigger(name, {
                "parameters": _kv(spec.get("parameters"), f"trigger {name} parameters"),
                "annotations": _kv(spec.get("annotations"), f"trigger {name} annotations"),
            }, overwrite=True)
            counts["triggers"] += 1
        for name, spec in (doc.get("rules") or {}).items():
            registry.put_rule(name, {"trigger": spec["trigger"], "action": spec["action"]},
                              overwrite=True)
            if spec.get("status", "active") != "active":
                registry.set_rule_state(name, spec["status"])
            counts["rules"] += 1
    except ApiError as exc:
        raise ManifestError(exc.message) from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"malformed entry: {exc!r}") from None
    return counts


def _put_action(registry: Any, spec: dict, base: Path, namespace: str | None) -> bool:
    name = spec["name"]
    package, _, action = name.rpartition("/")
    body: dict[str, Any] = {
        "parameters": _kv(spec.get("parameters"), f"action {name} parameters"),
        "annotations": _kv(spec.get("annotations"), f"action {name} annotations"),
    }
    if "limits" in spec:
        body["limits"] = spec["limits"]
    if "sequence" in spec:
        body["exec"] = {"kind": "sequence", "components": spec["sequence"]}
    else:
        kind = spec["kind"]
        if kind not in registry.kinds:
            log.info("seed: skipping %s, kind %s cannot run here", name, kind)
            return False
        try:
            code = (base / spec["code"]).read_text()
        except OSError as exc:
            raise ManifestError(f"action {name}: {exc}") from None
        body["exec"] = {"kind": kind, "code": code}
        if "main" in spec:
            body["exec"]["main"] = spec["main"]
    registry.put_action(package or None, action, body, overwrite=True, namespace=namespace)
    return True
