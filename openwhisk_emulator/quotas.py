"""Per-namespace throttles with OpenWhisk's 429 messages (ActivationThrottler.scala)."""

from __future__ import annotations

import time
from collections import deque

from openwhisk_emulator.problems import ApiError


class MinuteRate:
    """At most ``allowed`` events in any sliding 60-second window."""

    def __init__(self, allowed: int, clock=time.monotonic):
        self.allowed = allowed
        self._clock = clock
        self._events: deque[float] = deque()

    def count(self) -> int:
        horizon = self._clock() - 60.0
        while self._events and self._events[0] <= horizon:
            self._events.popleft()
        return len(self._events)

    def take(self) -> None:
        count = self.count()
        if count >= self.allowed:
            raise ApiError(
                429,
                f"Too many requests in the last minute (count: {count}, allowed: {self.allowed}).",
            )
        self._events.append(self._clock())


class Concurrency:
    """At most ``allowed`` activations in flight; ``enter`` before running, ``leave`` after."""

    def __init__(self, allowed: int):
        self.allowed = allowed
        self.in_flight = 0

    def check(self) -> None:
        if self.in_flight >= self.allowed:
            raise ApiError(
                429,
                f"Too many concurrent requests in flight (count: {self.in_flight}, "
                f"allowed: {self.allowed}).",
            )

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1


class Throttles:
    """The namespace's three limits, as ``/limits`` reports them."""

    def __init__(self, *, concurrent: int, per_minute: int, fires_per_minute: int):
        self.concurrent = Concurrency(concurrent)
        self.invocations = MinuteRate(per_minute)
        self.fires = MinuteRate(fires_per_minute)

    def admit_invocation(self) -> None:
        """Check both activation limits, then count this one against the minute window."""
        self.concurrent.check()
        self.invocations.take()
