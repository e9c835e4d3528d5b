"""The circuit breaker in front of OpenWhisk, and the SYSTEM line each change of its state logs."""

from __future__ import annotations

import logging
from typing import Any

from owaction.logs import aaa
from owaction.optional_imports import pybreaker


class LoggedChanges(pybreaker.CircuitBreakerListener):
    """Logs the breaker opening, half-opening and closing: operators must see when every
    caller starts (and stops) getting 503 "the circuit is open"."""

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        old, new = _name(old_state), _name(new_state)
        if old is None or old == new:
            return
        opened = new == pybreaker.STATE_OPEN
        aaa("SYSTEM", "circuit_breaker", new.upper().replace("-", "_"),
            level=logging.WARNING if opened else logging.INFO, name=cb.name, previous=old,
            failures=cb.fail_counter, reset_timeout=f"{cb.reset_timeout:g}s" if opened else None)


def _name(state: Any) -> str | None:
    """pybreaker passes state objects; their ``name`` is closed, open or half-open."""
    return None if state is None else str(getattr(state, "name", state))


def make_breaker(settings: Any) -> pybreaker.CircuitBreaker:
    """The breaker ``BREAKER_FAIL_MAX`` and ``BREAKER_RESET_TIMEOUT`` describe."""
    return pybreaker.CircuitBreaker(
        fail_max=settings.breaker_fail_max, reset_timeout=settings.breaker_reset_timeout,
        name="openwhisk", listeners=[LoggedChanges()],
    )
