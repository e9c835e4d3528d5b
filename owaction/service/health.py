"""The module's health: the database, OpenWhisk's reachability, the breaker."""

from __future__ import annotations

import time

from owaction.openwhisk import errors as ow
from owaction.service.recording import Recording

PROBE_EVERY = 10.0  # seconds a probe's answer is reused
PROBE_TIMEOUT = 1.0


class Health(Recording):
    """Health checks cheap enough for a load balancer to call often."""

    def health(self) -> dict:
        """Database by ``SELECT 1``; OpenWhisk reachability cached for a few seconds."""
        database = self.store.ping(timeout=1.0)
        return {
            "database": "connected" if database else "unavailable",
            "openwhisk": "reachable" if self._openwhisk_reachable() else "unreachable",
            "breaker": self.breaker_state(),
            "healthy": database,
        }

    def _openwhisk_reachable(self) -> bool:
        """Cached for 10 s; one probe at a time, and outside the circuit breaker, so a flood of
        health checks can never open it. While a probe is out the others answer the last known
        state, or, before the first probe's answer, wait for it."""
        checked_at, ok = self._openwhisk_seen
        if time.monotonic() - checked_at < PROBE_EVERY:
            return ok
        acquired = (self._probe_lock.acquire(timeout=PROBE_TIMEOUT + 1) if checked_at == 0.0
                    else self._probe_lock.acquire(blocking=False))
        if not acquired:
            return ok
        try:
            checked_at, ok = self._openwhisk_seen  # the probe just waited for may have answered
            if time.monotonic() - checked_at < PROBE_EVERY:
                return ok
            try:
                self.client.info(timeout=PROBE_TIMEOUT, guarded=False)
                ok = True
            except ow.OpenWhiskError:
                ok = False
            self._openwhisk_seen = (time.monotonic(), ok)
        finally:
            self._probe_lock.release()
        return ok
