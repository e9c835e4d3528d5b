"""Who is calling and under what constraints: the one set of caller-input rules."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from owaction import errors
from owaction.ids import new_id

MAX_CALLBACK_URL = 2048


_REQUEST_ID = re.compile(r"\A[A-Za-z0-9._-]{1,128}\Z")


IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,255}$"  # visible ASCII; the OpenAPI document states it
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


_TRACEPARENT = re.compile(r"\A[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}\Z")


def sane_request_id(given: str | None) -> str:
    """A caller's request id when it is safe to log and pass on to OpenWhisk, else a new one."""
    return given if given and _REQUEST_ID.match(given) else new_id()


@dataclass(frozen=True)
class CallContext:
    """Who is calling and under what constraints; built by a front door."""

    source: str = "rest"  # rest | grpc | router | worker | cli
    caller: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None
    deadline: float | None = None  # a time.monotonic() instant bounding the whole call
    trace_id: str | None = None
    traceparent: str | None = None
    community: str | None = None
    user: str | None = None
    callback_url: str | None = None

    @classmethod
    def for_request(cls, *, source: str, caller: str | None, request_id: str | None,
                    idempotency_key: str | None = None, traceparent: str | None = None,
                    callback_url: str | None = None,
                    deadline: float | None = None) -> CallContext:
        """A context from what a caller sent, by the same rules on every door: a sane request
        id is kept (else one is made), an idempotency key must be 1-255 visible ASCII
        characters, an invalid W3C traceparent is ignored (as Trace Context asks of a
        receiver), and a callback URL is at most MAX_CALLBACK_URL characters."""
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise errors.InvalidInput(
                "Idempotency-Key (idempotency_key) must be 1-255 visible ASCII characters")
        if callback_url is not None and len(callback_url) > MAX_CALLBACK_URL:
            raise errors.InvalidInput(f"X-Callback-Url (callback_url) must be at most "
                                      f"{MAX_CALLBACK_URL} characters")
        parent = (traceparent or "").strip().lower()
        trace = _TRACEPARENT.match(parent)
        return cls(
            source=source, caller=caller, request_id=sane_request_id(request_id),
            idempotency_key=idempotency_key, deadline=deadline,
            trace_id=trace.group(1) if trace else None,
            traceparent=parent if trace else None, callback_url=callback_url or None,
        )

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()
