"""Rate limits per caller, per action and per client address (the token endpoint).

Token buckets: a limit of N per minute holds N tokens, refilled at N per minute, and each hit
takes one. A check costs a few microseconds in process. With ``REDIS_URL`` set the buckets live
in Redis, so every gunicorn worker, the gRPC process and every host share them; each check is
then one round trip (one script call that takes from every bucket the check counts against). A
refusal is ``Throttled`` with the seconds until a token is back, which both doors send as
``Retry-After``.

Interface (small on purpose; a new limit is a new scope): ``check_invocation(caller, action)``,
``check_token_request(address)``, ``refund_invocation(caller, action)`` (a checked call that
turned out to be a replay gives its tokens back), ``reset()``. Each scope chooses what happens
while Redis is unreachable (``FALLBACK``): ``allow`` lets the hit through (invocations: their
limits protect OpenWhisk, and refusing all work because the limiter's storage is down would be
worse), ``local`` counts it in this process instead (the token endpoint: its limit is what makes
guessing API keys slow, and an outage of Redis must not switch that off). After a failure Redis
is left alone for ``REDIS_RETRY_SECONDS``, so an outage costs one timeout, not one per call, and
is logged once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from owaction.config import RATE_LIMIT_RE, Settings
from owaction.errors import Throttled
from owaction.logs import aaa
from owaction.metrics import RATE_LIMITED

log = logging.getLogger("owaction.ratelimit")

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# What each scope does while Redis is unreachable: "allow" or "local" (see the docstring).
FALLBACK = {"caller": "allow", "action": "allow", "token": "local", "webhook": "allow"}
REDIS_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True)
class Limit:
    """``amount`` hits per ``seconds``-long window."""

    amount: int
    seconds: int


def parse_limit(text: str | None) -> Limit | None:
    """``600/minute`` as a Limit; an empty setting means no limit."""
    if not text:
        return None
    match = RATE_LIMIT_RE.match(text)
    if not match:
        raise ValueError(f"a rate limit must look like 600/minute, not {text!r}")
    return Limit(int(match.group(1)), PERIODS[match.group(2)])


# (scope, limit, key): one bucket to take a token from.
Hit = tuple[str, Limit, str]
SWEEP_SECONDS = 60.0


class LocalBuckets:
    """Token buckets in this process; a bucket that has filled up again is forgotten."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], list[float]] = {}  # [tokens, at, full again at]
        self._swept = 0.0

    def take(self, hits: Sequence[Hit], now: float, cost: int = 1) -> list[float]:
        """For each hit, 0 when it got ``cost`` tokens (-1 gives one back), else the seconds
        until one is back."""
        out = []
        with self._lock:
            if now - self._swept >= SWEEP_SECONDS:
                self._sweep(now)
            for scope, limit, key in hits:
                rate = limit.amount / limit.seconds
                bucket = self._buckets.get((scope, key))
                if bucket is None:
                    tokens = float(limit.amount)
                else:
                    tokens = min(limit.amount, bucket[0] + max(0.0, now - bucket[1]) * rate)
                if tokens >= cost:
                    tokens = min(limit.amount, tokens - cost)
                    out.append(0.0)
                else:
                    out.append((1 - tokens) / rate)
                self._buckets[(scope, key)] = [tokens, now,
                                               now + (limit.amount - tokens) / rate]
        return out

    def _sweep(self, now: float) -> None:
        self._swept = now
        full = [k for k, bucket in self._buckets.items() if bucket[2] <= now]
        for k in full:
            del self._buckets[k]

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


# KEYS: the buckets; ARGV: now (ms), the cost (1, or -1 to give a token back), then amount and
# period (ms) per bucket. Returns, per bucket, 0 when it gave the cost, else the milliseconds
# until it has a token.
_TAKE_SCRIPT = """
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  local amount = tonumber(ARGV[2 * i + 1])
  local period = tonumber(ARGV[2 * i + 2])
  local state = redis.call('HMGET', key, 't', 'at')
  local tokens = tonumber(state[1]) or amount
  local at = tonumber(state[2]) or now
  tokens = math.min(amount, tokens + math.max(0, now - at) * amount / period)
  if tokens >= cost then
    tokens = math.min(amount, tokens - cost)
    out[i] = 0
  else
    out[i] = math.ceil((1 - tokens) * period / amount)
  end
  redis.call('HSET', key, 't', tostring(tokens), 'at', now)
  redis.call('PEXPIRE', key, math.ceil((amount - tokens) * period / amount) + 1000)
end
return out
"""


class RedisBuckets:
    """Token buckets in Redis, shared by every process; one round trip per check."""

    def __init__(self, url: str, prefix: str):
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                            socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
        self._script = self._client.register_script(_TAKE_SCRIPT)
        self._prefix = prefix
        # What "Redis is unavailable" looks like; anything else is a bug and is raised.
        self.failures = (redis.RedisError, OSError)

    def take(self, hits: Sequence[Hit], now: float, cost: int = 1) -> list[float]:
        keys = [f"{self._prefix}:{scope}:{key}" for scope, _, key in hits]
        args = [int(now * 1000), cost]
        for _, limit, _ in hits:
            args += [limit.amount, limit.seconds * 1000]
        return [ms / 1000 for ms in self._script(keys=keys, args=args)]

    def reset(self) -> None:
        keys = list(self._client.scan_iter(f"{self._prefix}:*", count=1000))
        if keys:
            self._client.delete(*keys)


class RateLimiter:
    """The module's limits, checked in process or in Redis (``REDIS_URL``)."""

    def __init__(self, settings: Settings, *, storage_uri: str | None = None,
                 clock: Callable[[], float] = time.time):
        uri = storage_uri if storage_uri is not None else settings.redis_url
        self._local = LocalBuckets()
        self._redis = (RedisBuckets(uri, f"owaction:{settings.module_name}")
                       if uri and uri.startswith(("redis://", "rediss://", "unix://")) else None)
        self._redis_down_until = 0.0
        self._clock = clock
        self.caller_limit = parse_limit(settings.rate_limit_caller)
        self.action_limit = parse_limit(settings.rate_limit_action)
        self.token_limit = parse_limit(settings.rate_limit_token)

    def check_invocation(self, caller: str | None, action: str) -> None:
        """Count one invocation against the caller's and the action's limits."""
        self._check(self._invocation_hits(caller, action))

    def _invocation_hits(self, caller: str | None, action: str):
        who = caller or "-"
        return [w for w in (("caller", self.caller_limit, who, f"service {who}"),
                            ("action", self.action_limit, action, f"action {action}"))
                if w[1] is not None]

    def refund_invocation(self, caller: str | None, action: str) -> None:
        """Give back what ``check_invocation`` took: the call ran nothing (a replay)."""
        hits = self._invocation_hits(caller, action)
        if hits:
            self._take([(scope, limit, key) for scope, limit, key, _ in hits], cost=-1)

    def check_webhook(self, hook: str, limit: Limit | None, *, caller: str) -> None:
        """Count one delivery against its hook's limit, and as an invocation by ``caller``."""
        self._check([("webhook", limit, hook, f"webhook {hook}"),
                     ("caller", self.caller_limit, caller, f"service {caller}"),
                     ("action", self.action_limit, hook, f"action {hook}")])

    def check_token_request(self, client_address: str) -> None:
        """Count one token request against its client address's limit."""
        self._check([("token", self.token_limit, client_address or "-", "token requests")])

    def reset(self) -> None:
        self._local.reset()
        if self._redis is not None:
            self._redis.reset()

    def _check(self, wanted: list[tuple[str, Limit | None, str, str]]) -> None:
        wanted = [w for w in wanted if w[1] is not None]
        if not wanted:
            return
        waits = self._take([(scope, limit, key) for scope, limit, key, _ in wanted])
        for (scope, _, key, what), wait in zip(wanted, waits, strict=True):
            if wait:
                self._refuse(scope, key, what, wait)

    def _take(self, hits: list[Hit], cost: int = 1) -> list[float]:
        """Per hit, 0 or the seconds to wait; a hit let through because Redis is down is 0."""
        now = self._clock()
        if self._redis is None:
            return self._local.take(hits, now, cost)
        if time.monotonic() >= self._redis_down_until:
            try:
                return self._redis.take(hits, now, cost)
            except self._redis.failures as exc:  # Redis down, refused or slow; a bug raises
                self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
                log.warning("rate limiter storage failed (%s); falling back for %g s",
                            type(exc).__name__, REDIS_RETRY_SECONDS)
        local = iter(self._local.take([h for h in hits if FALLBACK.get(h[0]) == "local"], now,
                                      cost))
        return [next(local) if FALLBACK.get(h[0]) == "local" else 0.0 for h in hits]

    @staticmethod
    def _refuse(scope: str, key: str, what: str, wait: float) -> None:
        retry_after = max(1, math.ceil(wait))
        RATE_LIMITED.labels(scope).inc()
        aaa("AUTHZ", f"rate_limit_{scope}", "DENIED", level=logging.WARNING,
            key=key, retry_after=retry_after)
        raise Throttled(f"rate limit exceeded for {what}; retry in {retry_after} s",
                        code="rate_limited", retry_after=retry_after)
