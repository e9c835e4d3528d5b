"""Rate limits per caller, per action and per client address (the token endpoint).

Built on the ``limits`` library with a moving window. With ``REDIS_URL`` set the counters live in
Redis, so every gunicorn worker, the gRPC process and every host share them; otherwise they are
per process (fine for one process, looser with several). A refusal is ``Throttled`` with the
seconds until the window frees a slot, which both doors send as ``Retry-After``.

If Redis is unreachable the limiter lets requests through and logs it: rate limiting protects
OpenWhisk, and refusing all work because the limiter's storage is down would be worse.
"""

from __future__ import annotations

import logging
import math
import time

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from owaction.config import Settings
from owaction.errors import Throttled
from owaction.logs import aaa
from owaction.metrics import RATE_LIMITED

log = logging.getLogger("owaction.ratelimit")


class RateLimiter:
    def __init__(self, settings: Settings, *, storage_uri: str | None = None):
        uri = storage_uri or (settings.redis_url or "memory://")
        options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5} \
            if uri.startswith("redis") else {}
        self.storage = storage_from_string(uri, **options)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.caller_limit = parse(settings.rate_limit_caller)
        self.action_limit = parse(settings.rate_limit_action)
        self.token_limit = parse(settings.rate_limit_token)
        self._prefix = f"owaction:{settings.module_name}"

    def _hit(self, scope: str, limit, key: str, what: str) -> None:
        try:
            allowed = self.limiter.hit(limit, self._prefix, scope, key)
        except Exception as exc:  # noqa: BLE001 - the limiter's storage failing must not stop the module
            log.warning("rate limiter storage failed (%s); allowing the request",
                        type(exc).__name__)
            return
        if allowed:
            return
        try:
            reset = self.limiter.get_window_stats(limit, self._prefix, scope, key).reset_time
            retry_after = max(1, math.ceil(reset - time.time()))
        except Exception:  # noqa: BLE001 - the stats are only a hint for Retry-After
            retry_after = 1
        RATE_LIMITED.labels(scope).inc()
        aaa("AUTHZ", f"rate_limit_{scope}", "DENIED", level=logging.WARNING,
            key=key, retry_after=retry_after)
        raise Throttled(f"rate limit exceeded for {what}; retry in {retry_after} s",
                        code="rate_limited", retry_after=retry_after)

    def check_invocation(self, caller: str | None, action: str) -> None:
        """Count one invocation against the caller's and the action's limits."""
        self._hit("caller", self.caller_limit, caller or "-", f"service {caller or '-'}")
        self._hit("action", self.action_limit, action, f"action {action}")

    def check_token_request(self, client_address: str) -> None:
        self._hit("token", self.token_limit, client_address or "-", "token requests")

    def reset(self) -> None:
        self.storage.reset()
