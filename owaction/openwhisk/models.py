"""Typed results of the OpenWhisk client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# response.status strings and the statusCode OpenWhisk stores for them.
STATUS_SUCCESS = "success"
STATUS_APPLICATION_ERROR = "application error"
STATUS_DEVELOPER_ERROR = "action developer error"
STATUS_WHISK_ERROR = "whisk internal error"
STATUS_CODES = {
    STATUS_SUCCESS: 0,
    STATUS_APPLICATION_ERROR: 1,
    STATUS_DEVELOPER_ERROR: 2,
    STATUS_WHISK_ERROR: 3,
}


@dataclass(frozen=True)
class Activation:
    """An activation record, every field of OpenWhisk's extended JSON."""

    activation_id: str
    namespace: str = ""
    name: str = ""
    version: str = ""
    subject: str = ""
    start: int = 0
    end: int = 0
    duration: int = 0
    status: str = STATUS_SUCCESS
    success: bool = True
    result: Any = None
    size: int | None = None
    logs: tuple[str, ...] = ()
    annotations: tuple[tuple[str, Any], ...] = ()
    cause: str | None = None
    publish: bool = False
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def status_code(self) -> int:
        return STATUS_CODES.get(self.status, 3)

    def annotation(self, key: str, default: Any = None) -> Any:
        for k, v in self.annotations:
            if k == key:
                return v
        return default

    @property
    def error(self) -> Any:
        """The action's error value when it failed, else None."""
        if self.success:
            return None
        if isinstance(self.result, dict) and "error" in self.result:
            return self.result["error"]
        return self.status

    @classmethod
    def from_json(cls, body: dict) -> Activation:
        response = body.get("response") or {}
        status = response.get("status")
        if status is None and "statusCode" in response:
            status = {v: k for k, v in STATUS_CODES.items()}.get(response["statusCode"])
        status = status or STATUS_SUCCESS
        success = response.get("success")
        if success is None:
            success = status == STATUS_SUCCESS
        start = int(body.get("start") or 0)
        end = int(body.get("end") or 0)
        duration = body.get("duration")
        if duration is None:
            duration = max(0, end - start) if end else 0
        annotations = tuple(
            (a.get("key"), a.get("value"))
            for a in body.get("annotations") or []
            if isinstance(a, dict)
        )
        return cls(
            activation_id=body.get("activationId", ""),
            namespace=body.get("namespace", ""),
            name=body.get("name", ""),
            version=body.get("version", ""),
            subject=body.get("subject", ""),
            start=start,
            end=end,
            duration=int(duration),
            status=status,
            success=bool(success),
            result=response.get("result"),
            size=response.get("size"),
            logs=tuple(body.get("logs") or ()),
            annotations=annotations,
            cause=body.get("cause"),
            publish=bool(body.get("publish", False)),
            raw=body,
        )


@dataclass(frozen=True)
class ActivationPending:
    """OpenWhisk accepted the call but has no outcome yet: non-blocking, or a blocking call
    demoted to 202 after the blocking wait ran out."""

    activation_id: str
    demoted: bool = False


@dataclass(frozen=True)
class ActionResult:
    """A blocking invoke with ``result=true``: only the result, plus the activation id header.

    ``success`` is False when OpenWhisk answered 502 (the result then holds ``error``)."""

    activation_id: str
    result: Any
    success: bool = True


@dataclass(frozen=True)
class TriggerFired:
    """A fired trigger. ``activation_id`` is None when no rule was active (OpenWhisk's 204)."""

    activation_id: str | None

    @property
    def fired(self) -> bool:
        return self.activation_id is not None


@dataclass(frozen=True)
class WebActionResponse:
    status_code: int
    headers: dict[str, str]
    body: bytes
    activation_id: str | None = None

    @property
    def content_type(self) -> str:
        for k, v in self.headers.items():
            if k.lower() == "content-type":
                return v
        return ""

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ActionInfo:
    name: str
    namespace: str
    version: str
    published: bool
    annotations: tuple[tuple[str, Any], ...] = ()
    kind: str | None = None


@dataclass(frozen=True)
class Listing:
    """A page of entities; ``count`` is set when asked with ``count=true``."""

    items: list = field(default_factory=list)
    count: int | None = None
