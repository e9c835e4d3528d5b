"""Fault injection: a WSGI layer in front of the app, on only with ``--faults``.

The control route ``/_emulator/faults`` lives outside ``/api/v1`` and is described in the
package docstring (``openwhisk_emulator/__init__.py``).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import gevent

CONTROL_PATH = "/_emulator/faults"


class FaultSpecError(ValueError):
    pass


@dataclass
class Fault:
    method: str | None
    path: str | None
    status: int | None
    body: Any
    headers: dict
    delay_ms: int
    drop: bool
    times: int  # remaining; -1 means until reset

    @classmethod
    def parse(cls, spec: Any) -> Fault:
        if not isinstance(spec, dict):
            raise FaultSpecError("a fault is a JSON object")
        unknown = set(spec) - {"method", "path", "status", "body", "headers", "delay_ms", "drop",
                               "times"}
        if unknown:
            raise FaultSpecError(f"unknown fields: {', '.join(sorted(unknown))}")
        method = spec.get("method")
        if method is not None and not isinstance(method, str):
            raise FaultSpecError("'method' must be a string")
        path = spec.get("path")
        if path is not None:
            if not isinstance(path, str):
                raise FaultSpecError("'path' must be a regular expression")
            try:
                re.compile(path)
            except re.error as exc:
                raise FaultSpecError(f"'path' is not a valid regular expression: {exc}") from None
        status = spec.get("status")
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
        ):
            raise FaultSpecError("'status' must be an HTTP status code")
        headers = spec.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int) for k, v in headers.items()
        ):
            raise FaultSpecError("'headers' must map names to strings")
        delay = spec.get("delay_ms", 0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise FaultSpecError("'delay_ms' must be a non-negative number")
        drop = spec.get("drop", False)
        if not isinstance(drop, bool):
            raise FaultSpecError("'drop' must be a boolean")
        times = spec.get("times", 1)
        if isinstance(times, bool) or not isinstance(times, int) or (times < 1 and times != -1):
            raise FaultSpecError("'times' must be a positive count or -1 (until reset)")
        if status is None and not drop and not delay:
            raise FaultSpecError("a fault needs 'status', 'drop' or 'delay_ms'")
        return cls(method.upper() if method else None, path, status, spec.get("body"),
                   {k: str(v) for k, v in headers.items()}, int(delay), drop, times)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or re.search(self.path, path) is not None
        )

    def to_json(self) -> dict:
        return {"method": self.method, "path": self.path, "status": self.status,
                "body": self.body, "headers": self.headers, "delay_ms": self.delay_ms,
                "drop": self.drop, "times": self.times}


class FaultInjector:
    """Wraps the WSGI app; matching requests get the fault instead of the app's answer."""

    def __init__(self, app):
        self.app = app
        self.faults: list[Fault] = []

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.rstrip("/") == CONTROL_PATH:
            return self._control(environ, start_response)
        fault = self._take(environ.get("REQUEST_METHOD", "GET"), path)
        if fault is None:
            return self.app(environ, start_response)
        if fault.delay_ms:
            gevent.sleep(fault.delay_ms / 1000.0)
        if fault.drop:
            environ["owaction.drop_connection"]()
            return []
        if fault.status is None:
            return self.app(environ, start_response)
        request_id = environ.get("HTTP_X_REQUEST_ID") or secrets.token_hex(16)
        body = fault.body
        if body is None:
            body = {"error": "Fault injected by the emulator.", "code": request_id}
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-Request-ID": request_id,
                   "Content-Length": str(len(data)), **fault.headers}
        start_response(_status_line(fault.status), list(headers.items()))
        return [data]

    def _take(self, method: str, path: str) -> Fault | None:
        # Under gevent nothing runs between the match and the count, so ``times`` is exact.
        for fault in self.faults:
            if fault.matches(method, path):
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                return fault
        return None

    def _control(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        if method == "GET":
            return _json(start_response, 200, [f.to_json() for f in self.faults])
        if method == "DELETE":
            self.faults.clear()
            return _json(start_response, 200, {"faults": 0})
        if method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                spec = json.loads(environ["wsgi.input"].read(length) or b"null")
                fault = Fault.parse(spec)
            except (ValueError, FaultSpecError) as exc:
                return _json(start_response, 400, {"error": str(exc)})
            self.faults.append(fault)
            return _json(start_response, 201, fault.to_json())
        return _json(start_response, 405, {"error": "use GET, POST or DELETE"})


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Fault"


def _json(start_response, status: int, body: Any):
    data = json.dumps(body).encode()
    start_response(_status_line(status), [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(data)))])
    return [data]
