"""The service's parts and settings, and the input checks every use case shares."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Self
from urllib.parse import urlsplit

from owaction import errors, tracing
from owaction.commands import CommandMap
from owaction.config import Settings
from owaction.inputs import callback_url_re
from owaction.names import (
    InvalidName,
    check_namespace,
    split_action,
)
from owaction.service.context import CallContext
from owaction.service.entities import EntityManager
from owaction.service.ports import Executions, Limiter, OpenWhisk
from owaction.service.validation import (
    parse_payload,
    whole,
)
from owaction.service.webhooks import WebhookDeliveries
from owaction.webhooks.hooks import HookMap


class ServiceCore:
    """Settings, the OpenWhisk client, the store, the commands and the rate limiter."""

    def __init__(self, *, settings: Settings, client: OpenWhisk, store: Executions,
                 commands: CommandMap | None = None, rate_limiter: Limiter | None = None,
                 webhooks: HookMap | None = None, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.client = client
        self.store = store
        self.commands = commands if commands is not None else CommandMap()
        self.rate_limiter = rate_limiter
        self._clock = clock
        # The webhook use case lives in its own module; it shares this service's parts.
        self.webhooks = WebhookDeliveries(self, webhooks if webhooks is not None else HookMap())
        self._openwhisk_seen: tuple[float, bool] = (0.0, False)
        self._probe_lock = threading.Lock()
        # Creating, changing and deleting OpenWhisk entities (the `manage` permission).
        self.management = EntityManager(settings=settings, client=client)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        from owaction.openwhisk.client import OpenWhiskClient
        from owaction.ratelimit import RateLimiter
        from owaction.store import ExecutionStore

        commands = CommandMap(settings.commands_file,
                              unmapped_package=settings.unmapped_command_package,
                              max_timeout_ms=settings.max_action_timeout)
        return cls(
            settings=settings,
            client=OpenWhiskClient.from_settings(settings),
            store=ExecutionStore.from_settings(settings),
            commands=commands,
            rate_limiter=RateLimiter(settings),
            webhooks=HookMap(settings.webhooks_file),
        )

    def warm_up(self) -> None:
        """At a process's start (a gunicorn worker, the gRPC process): open the database and
        resolve OpenWhisk's host, as the first call would. Never raises."""
        for part in (self.store, self.client):
            warm_up = getattr(part, "warm_up", None)
            if warm_up:
                warm_up()

    def close(self) -> None:
        for part in (self.client, self.store):
            close = getattr(part, "close", None)
            if close:
                close()

    def _namespace(self, namespace: str | None) -> str:
        ns = namespace or self.settings.openwhisk_namespace
        try:
            return check_namespace(ns)
        except InvalidName as exc:
            raise errors.InvalidInput(str(exc)) from None

    @staticmethod
    def _action(name: str, what: str = "action_name") -> str:
        try:
            package, action = split_action(name)
        except InvalidName as exc:
            raise errors.InvalidInput(f"{what}: {exc}") from None
        return f"{package}/{action}" if package else action

    def _timeout(self, timeout_ms: int | None) -> int | None:
        if timeout_ms is None or timeout_ms == 0:
            return None
        if not whole(timeout_ms):
            raise errors.InvalidInput("timeout must be whole milliseconds")
        if not 1 <= timeout_ms <= self.settings.max_action_timeout:
            raise errors.InvalidInput(
                f"timeout must be between 1 and {self.settings.max_action_timeout} ms"
            )
        return timeout_ms

    def _payload(self, payload: Any) -> dict:
        return parse_payload(payload, self.settings.max_payload_bytes)

    def _bounds(self, ctx: CallContext, timeout_ms: int | None) -> tuple[int | None, float | None]:
        """The blocking wait to ask OpenWhisk for and the read timeout, within the deadline."""
        remaining = ctx.remaining()
        if remaining is None:
            return timeout_ms, None
        if remaining <= 0:
            raise errors.UpstreamTimeout("the caller's deadline has passed")
        # Ask OpenWhisk to answer (202 if need be) a little before our caller gives up.
        wait_ms = max(1, int((remaining - 0.25) * 1000))
        wanted = timeout_ms or self.settings.openwhisk_blocking_wait_ms
        return min(wanted, wait_ms), remaining

    @staticmethod
    def _trace_headers(ctx: CallContext) -> dict[str, str] | None:
        """The traceparent OpenWhisk gets: our client span's when tracing, else the caller's."""
        traceparent = tracing.current_traceparent() or ctx.traceparent
        return {"traceparent": traceparent} if traceparent else None

    def _callback_url(self, url: str | None) -> str | None:
        """A callback URL the operator allows, or InvalidInput; SSRF stops here."""
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.InvalidInput("callback_url must be an http(s) URL")
        allowed = {h.lower() for h in self.settings.callback_allowed_hosts}
        if parts.hostname.lower() not in allowed:
            raise errors.InvalidInput(
                f"callback_url host {parts.hostname!r} is not allowed (CALLBACK_ALLOWED_HOSTS)"
            )
        if not callback_url_re(self.settings.callback_allowed_hosts).fullmatch(url):
            raise errors.InvalidInput("callback_url must be http(s)://host[:port] then visible "
                                      "ASCII (no user info, spaces or other characters)")
        return url

    def _check_limits(self, ctx: CallContext, target: str) -> None:
        """Count an invocation against the caller's and the action's rate limits."""
        if self.rate_limiter is not None:
            self.rate_limiter.check_invocation(ctx.caller, target)

    def _refund_limits(self, ctx: CallContext, target: str) -> None:
        """Give back what ``_check_limits`` counted: the call turned out to be a replay."""
        if self.rate_limiter is not None:
            self.rate_limiter.refund_invocation(ctx.caller, target)
