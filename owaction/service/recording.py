"""Completing an execution's record, and its one AUDIT line and metrics."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from owaction import errors
from owaction.logs import aaa
from owaction.metrics import (
    BREAKER_STATE,
    BREAKER_VALUES,
    observe_execution,
    observe_store,
    set_gauge,
)
from owaction.openwhisk import errors as ow
from owaction.openwhisk.models import (
    STATUS_WHISK_ERROR,
    ActionResult,
    Activation,
    ActivationPending,
)
from owaction.service.context import CallContext
from owaction.service.core import ServiceCore
from owaction.service.results import ExecutionResult
from owaction.service.translation import translate_client_error
from owaction.store import values
from owaction.store.records import ACCEPTED, ERROR, FAILED, SUCCEEDED

log = logging.getLogger("owaction.service")


def _error_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


class Recording(ServiceCore):
    """Finishes records and reports each finished operation."""

    def _finish(self, execution_id: str, **fields: Any) -> bool:
        """Complete a record (True when this write changed it); a failing write is retried
        briefly and logged, never raised, because OpenWhisk already did the work and the caller
        must still get its answer."""
        delay = 0.05
        for attempt in range(4):
            try:
                if fields.get("status") == ACCEPTED:
                    return self.store.mark_accepted(
                        execution_id,
                        activation_id=fields["activation_id"],
                        status_code=fields.get("status_code", 202),
                    )
                return self.store.complete(execution_id, **fields)
            except errors.ServiceError as exc:
                if attempt == 3:
                    log.error("could not complete execution %s: %s", execution_id, exc)
                    return False
                time.sleep(delay)
                delay *= 2

    def _audit(self, ctx: CallContext, action: str, result: ExecutionResult,
               target: str) -> None:
        """One AUDIT line and the metrics for a finished operation."""
        observe_execution(result.action_type, target, result.outcome,
                          result.duration_ms / 1000 if result.duration_ms is not None else None)
        observe_store(self.store)
        self.breaker_state()
        aaa(
            "AUDIT", action, result.outcome.upper(),
            community=ctx.community, user=ctx.user,
            time=f"{result.duration_ms}ms" if result.duration_ms is not None else None,
            execution_id=result.execution_id, activation_id=result.activation_id,
            caller=ctx.caller, source=ctx.source, status=result.status, target=target,
        )

    def _fail(self, ctx: CallContext, execution_id: str, action_type: str, op: str,
              exc: Exception, target: str) -> errors.ServiceError:
        error, status, code = translate_client_error(exc)
        error.execution_id = execution_id
        self._finish(execution_id, status=status, success=False, error=error.message,
                     status_code=code, error_code=error.code, retry_after=error.retry_after)
        self._audit(ctx, op, ExecutionResult(
            execution_id=execution_id, action_type=action_type, outcome=status,
            status=status, error=error.message,
        ), target if not isinstance(exc, ow.NotFound) else "(not found)")
        return error

    def _from_activation(self, execution_id: str, action_type: str,
                         outcome: Activation | ActivationPending | ActionResult,
                         started: float) -> ExecutionResult:
        if isinstance(outcome, ActivationPending):
            self._finish(execution_id, status=ACCEPTED, activation_id=outcome.activation_id,
                         status_code=202)
            return ExecutionResult(execution_id=execution_id, action_type=action_type,
                                   outcome=ACCEPTED, status="accepted",
                                   activation_id=outcome.activation_id)
        if isinstance(outcome, ActionResult):
            end = int(self._clock() * 1000)
            duration = int((self._clock() - started) * 1000)
            activation = None
            status, success = ("success", True) if outcome.success else ("application error", False)
            result, activation_id = outcome.result, outcome.activation_id
            start_ms = int(started * 1000)
        else:
            activation = outcome
            status, success = activation.status, activation.success
            result, activation_id = activation.result, activation.activation_id
            duration, start_ms, end = activation.duration, activation.start, activation.end
        if success:
            final, error = SUCCEEDED, None
        elif status == STATUS_WHISK_ERROR:
            final, error = ERROR, _error_text(activation.error if activation else result)
        else:
            final = FAILED
            error = _error_text(activation.error if activation else (result or {}).get("error"))
        completed = values.aware(values.now())
        written = self._finish(execution_id, status=final, success=success,
                               activation_id=activation_id, result=result, duration_ms=duration,
                               error=error, status_code=200 if success else 502,
                               completed_at=completed)
        return ExecutionResult(
            execution_id=execution_id, action_type=action_type, outcome=final, status=status,
            activation_id=activation_id, result=result, error=error, duration_ms=duration,
            start_time=start_ms, end_time=end, activation=activation,
            completed_at=completed if written else None,
        )

    def breaker_state(self) -> str:
        """closed, open or half-open; also published as a metric."""
        breaker = getattr(self.client, "breaker", None)
        state = str(getattr(breaker, "current_state", "closed")) if breaker else "closed"
        set_gauge(BREAKER_STATE, BREAKER_VALUES.get(state, 0))
        return state
