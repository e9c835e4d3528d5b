"""The service's checks of what callers send: payloads, web requests, list limits."""

from __future__ import annotations

import json
import re
from typing import Any

from owaction import errors

WEB_EXTENSIONS = ("", ".json", ".http", ".html", ".svg", ".text")
# An HTTP field name (RFC 9110 token) and a value of visible ASCII without outer whitespace:
# anything else cannot be sent, and must be the caller's error, not "OpenWhisk unreachable".
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HEADER_VALUE_PATTERN = r"^([!-~]([ -~]*[!-~])?)?$"


HEADER_NAME = re.compile(HEADER_NAME_PATTERN)
HEADER_VALUE = re.compile(HEADER_VALUE_PATTERN)


# Actions a list returns: OpenWhisk's default and its query limit (0 means "the maximum").
ACTION_LIST_DEFAULT = 30
LIST_LIMIT_MAX = 200
_NOT_FINITE = ("payload holds NaN, Infinity or a number too large for a double, which JSON "
               "cannot carry")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise errors.InvalidInput(_NOT_FINITE)
    return value


def _no_constant(name: str) -> Any:
    raise errors.InvalidInput(_NOT_FINITE)


def parse_payload(payload: Any, max_bytes: int) -> dict:
    """A JSON object from a dict, None, or JSON text; InvalidInput or PayloadTooLarge if not.

    Python's json reads NaN, Infinity and 1e400 (as inf), which OpenWhisk's JSON cannot hold:
    they are the caller's error here, before anything is recorded or sent."""
    if payload is None or payload == "":
        return {}
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.InvalidInput("payload is not valid UTF-8") from None
    if isinstance(payload, str):
        if len(payload.encode("utf-8")) > max_bytes:
            raise errors.PayloadTooLarge(f"payload is larger than {max_bytes} bytes")
        try:
            payload = json.loads(payload, parse_float=_finite, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise errors.InvalidInput(f"payload is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise errors.InvalidInput("payload must be a JSON object")
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        if "Out of range float" in str(exc):
            raise errors.InvalidInput(_NOT_FINITE) from None
        raise errors.InvalidInput(f"payload is not JSON-serialisable: {exc}") from None
    except (TypeError, RecursionError) as exc:
        raise errors.InvalidInput(f"payload is not JSON-serialisable: {exc}") from None
    size = len(text)  # ASCII, as sent to OpenWhisk
    if "\\ud" in text:
        # A lone surrogate is a legal JSON escape that no database can store as text.
        try:
            json.dumps(payload, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise errors.InvalidInput("payload is not valid Unicode (a lone surrogate)") from None
    if size > max_bytes:
        raise errors.PayloadTooLarge(f"payload is larger than {max_bytes} bytes ({size})")
    return payload


def whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
