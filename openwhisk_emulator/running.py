"""Running actions, sequences and trigger rules, and recording their activations.

Each activation runs in its own greenlet, so a blocking caller can stop waiting (202) while the
action goes on; the record is stored only when the run is over, so until then it answers 404.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import gevent

from openwhisk_emulator import problems as m
from openwhisk_emulator.problems import ApiError
from openwhisk_emulator.quotas import Throttles
from openwhisk_emulator.records import ActivationStore, new_activation_id, response
from openwhisk_emulator.registry import PACKAGES, Entity, Registry, kv_dict, now_ms
from owaction.openwhisk.models import (
    STATUS_APPLICATION_ERROR,
    STATUS_SUCCESS,
    STATUS_WHISK_ERROR,
)

log = logging.getLogger("openwhisk_emulator")

MAX_PAYLOAD_BYTES = 1024 * 1024


@dataclass
class Started:
    """An activation under way: its id and the greenlet that returns its record."""

    activation_id: str
    greenlet: gevent.Greenlet

    def wait(self, seconds: float) -> dict | None:
        """The record if the run finished within ``seconds``, else None (it keeps running)."""
        self.greenlet.join(timeout=seconds)
        if not self.greenlet.ready():
            return None
        return self.greenlet.value


class Invoker:
    def __init__(
        self,
        *,
        registry: Registry,
        runtime: Any,
        store: ActivationStore,
        throttles: Throttles,
        subject: str,
        api_host: str,
        api_key: str,
    ):
        self.registry = registry
        self.runtime = runtime
        self.store = store
        self.throttles = throttles
        self.namespace = registry.namespace
        self.subject = subject
        self.api_host = api_host
        self.api_key = api_key

    # --- parameters -----------------------------------------------------------------------

    def action_params(self, action: Entity, binding: Entity | None = None) -> dict:
        """Package defaults < the binding's < the action's own (Actions.scala
        mergeActionWithPackageAndDispatch: ``binding inherit package``, then ``action inherit``)."""
        params: dict = {}
        if action.package:
            pkg = self.registry.find(action.namespace)
            if pkg is not None and pkg.collection == PACKAGES:
                params.update(kv_dict(pkg.parameters))
        if binding is not None:
            params.update(kv_dict(binding.parameters))
        params.update(kv_dict(action.parameters))
        params.pop("_actions", None)
        return params

    def merge_request(self, action: Entity, body: dict, binding: Entity | None = None) -> dict:
        """Defaults ⊕ the caller's parameters, refusing those the action holds final."""
        defaults = self.action_params(action, binding)
        if action.annotation("final") is True:
            fixed = {k for k, v in defaults.items() if v is not None}
            if fixed & body.keys():
                raise ApiError(400, m.PARAMS_NOT_ALLOWED)
        merged = {**defaults, **body}
        size = len(json.dumps(merged, separators=(",", ":")).encode())
        if size > MAX_PAYLOAD_BYTES:
            raise ApiError(413, m.too_large(size, MAX_PAYLOAD_BYTES))
        return merged

    # --- running --------------------------------------------------------------------------

    def start(self, action: Entity, params: dict, *, request_id: str,
              binding: Entity | None = None) -> Started:
        """Start one top-level activation; the caller has admitted it past the throttles."""
        activation_id = new_activation_id()
        received = now_ms()
        self.throttles.concurrent.enter()

        def run() -> dict:
            try:
                return self.execute(action, params, activation_id, received=received,
                                    request_id=request_id, binding=binding)
            finally:
                self.throttles.concurrent.leave()

        return Started(activation_id, gevent.spawn(run))

    def execute(self, action: Entity, params: Any, activation_id: str, *, received: int,
                request_id: str, cause: str | None = None, binding: Entity | None = None) -> dict:
        """Run to completion and store the record."""
        if action.kind == "sequence":
            record = self._run_sequence(action, params, activation_id, received, request_id,
                                        cause, binding)
        else:
            record = self._run_action(action, params, activation_id, received, request_id,
                                      cause, binding)
        self.store.put(record)
        return record

    def _annotations(self, action: Entity, *, kind: str, wait_ms: int, cause: str | None,
                     binding: Entity | None):
        notes = [
            {"key": "path", "value": action.key},
            {"key": "waitTime", "value": max(0, wait_ms)},
            {"key": "kind", "value": kind},
        ]
        if binding is not None:
            notes.append({"key": "binding", "value": binding.key})
        if cause:
            notes.append({"key": "causedBy", "value": "sequence"})
        return notes

    def _record(self, action: Entity, activation_id: str, *, start: int, end: int,
                duration: int, resp: dict, logs: list, annotations: list,
                cause: str | None) -> dict:
        record = {
            "namespace": self.namespace,
            "name": action.name,
            "version": action.version,
            "subject": self.subject,
            "activationId": activation_id,
            "start": start,
            "end": end,
            "duration": duration,
            "publish": False,
            "logs": logs,
            "annotations": annotations,
            "response": resp,
        }
        if cause:
            record["cause"] = cause
        return record

    def _run_action(self, action, params, activation_id, received, request_id, cause,
                    binding) -> dict:
        from openwhisk_emulator.runtime import ActionCode

        limits = action.limits
        code = ActionCode(
            key=f"{action.key}@{action.version}#{action.revision}",
            kind=action.kind,
            code=action.exec["code"],
            main=action.exec.get("main", "main"),
            timeout_ms=limits["timeout"],
            memory_mb=limits["memory"],
            logs_mb=limits["logs"],
            binary=bool(action.exec.get("binary")),
            env=(
                ("__OW_API_HOST", self.api_host),
                ("__OW_API_KEY", self.api_key),
                ("__OW_NAMESPACE", self.namespace),
                ("__OW_ACTION_NAME", f"/{action.key}"),
                ("__OW_ACTION_VERSION", action.version),
            ),
        )
        activation_env = {
            "__OW_ACTIVATION_ID": activation_id,
            "__OW_DEADLINE": str(now_ms() + limits["timeout"]),
            "__OW_TRANSACTION_ID": request_id,
        }
        try:
            outcome = self.runtime.run(code, params, activation_env=activation_env)
        except Exception:  # noqa: BLE001 - a runtime bug must still end as a stored record
            log.exception("the runtime failed on activation %s", activation_id)
            end = now_ms()
            annotations = self._annotations(action, kind=action.kind, wait_ms=0, cause=cause,
                                            binding=binding)
            annotations += [{"key": "timeout", "value": False},
                            {"key": "limits", "value": dict(limits)}]
            return self._record(
                action, activation_id, start=received, end=end, duration=end - received,
                resp=response(STATUS_WHISK_ERROR, {"error": "Failed to run the action."}),
                logs=[], annotations=annotations, cause=cause,
            )
        start = outcome.start_ms - (outcome.init_ms or 0)
        annotations = self._annotations(action, kind=action.kind, wait_ms=start - received,
                                        cause=cause, binding=binding)
        annotations.append({"key": "timeout", "value": bool(outcome.timed_out)})
        annotations.append({"key": "limits", "value": dict(limits)})
        if outcome.init_ms is not None:
            annotations.append({"key": "initTime", "value": outcome.init_ms})
        return self._record(
            action, activation_id, start=start, end=outcome.end_ms,
            duration=max(0, outcome.end_ms - start),
            resp=response(outcome.status, outcome.result, outcome.size),
            logs=list(outcome.logs), annotations=annotations, cause=cause,
        )

    def _run_sequence(self, seq, params, activation_id, received, request_id, cause,
                      binding) -> dict:
        component_ids: list[str] = []
        duration = 0
        memory = 0
        first_start: int | None = None
        last_end = received
        resp = response(STATUS_SUCCESS, {})
        current = params
        for component in seq.exec["components"]:
            try:
                entity, via = self.registry.resolve_action(component.lstrip("/"))
            except ApiError:
                resp = response(STATUS_APPLICATION_ERROR,
                                {"error": "Sequence component does not exist."})
                break
            component_id = new_activation_id()
            # Each component's own defaults sit under what the previous one returned.
            args = {**self.action_params(entity, via), **current} if isinstance(current, dict) \
                else current
            record = self.execute(entity, args, component_id, received=now_ms(),
                                  request_id=request_id, cause=activation_id, binding=via)
            component_ids.append(component_id)
            duration += record.get("duration", 0)
            memory = max(memory, entity.limits.get("memory", 0))
            first_start = record["start"] if first_start is None else first_start
            last_end = record.get("end") or last_end
            resp = dict(record["response"])
            result = resp.get("result")
            if not resp["success"] or (isinstance(result, dict) and "error" in result):
                break
            current = result
        start = first_start if first_start is not None else received
        annotations = self._annotations(seq, kind="sequence", wait_ms=start - received,
                                        cause=cause, binding=binding)
        if cause is None:
            annotations.append({"key": "topmost", "value": True})
        annotations.append({"key": "limits",
                            "value": {**seq.limits, "memory": memory or seq.limits["memory"]}})
        return self._record(
            seq, activation_id, start=start, end=max(last_end, start), duration=duration,
            resp=resp, logs=component_ids, annotations=annotations, cause=cause,
        )

    # --- triggers -------------------------------------------------------------------------

    def fire(self, trigger: Entity, payload: dict, headers: dict, *, request_id: str) -> str | None:
        """Fire the trigger's active rules; None when there is none (OpenWhisk's 204)."""
        self.throttles.fires.take()
        rules = [r for r in self.registry.rules_of(trigger.key) if r.status == "active"]
        if not rules:
            return None
        activation_id = new_activation_id()
        args = {**kv_dict(trigger.parameters), "__ow_headers": headers, **payload}
        lines = []
        for rule in rules:
            entry: dict[str, Any] = {"rule": rule.key, "action": rule.action}
            try:
                self.throttles.admit_invocation()
                action, via = self.registry.resolve_action(rule.action)
                started = self.start(action, {**self.action_params(action, via), **args},
                                     request_id=request_id, binding=via)
                entry.update(statusCode=0, success=True, activationId=started.activation_id)
            except ApiError as exc:
                entry.update(statusCode=1 if exc.status < 500 else 3, success=False,
                             error=exc.message)
            lines.append(json.dumps(entry))
        self.store.put({
            "namespace": self.namespace,
            "name": trigger.name,
            "version": trigger.version,
            "subject": self.subject,
            "activationId": activation_id,
            "start": now_ms(),
            "end": 0,
            "duration": 0,
            "publish": False,
            "logs": lines,
            "annotations": [{"key": "path", "value": trigger.key}],
            "response": response(STATUS_SUCCESS, payload),
        })
        return activation_id
