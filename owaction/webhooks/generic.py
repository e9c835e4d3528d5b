"""Generic HMAC webhooks, configured per hook.

The signature header holds ``prefix`` + the HMAC (``algorithm``, hex or base64) of the raw body,
or, with a ``timestamp_header``, of ``<timestamp>.<body>``; the timestamp (Unix seconds or
RFC 3339) must be within ``tolerance`` seconds. The delivery id comes from ``id_header`` when
the sender has one, otherwise from the signature (a retry resends the same one).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping

from owaction.webhooks.signatures import (
    Delivery,
    SignatureRefused,
    check_age,
    check_signature,
    digest,
    encode,
    header,
    parse_rfc3339,
)

DEFAULT_TOLERANCE = 300


def _signed(timestamp: str | None, body: bytes) -> tuple[bytes, ...]:
    return (timestamp.encode("utf-8"), b".", body) if timestamp is not None else (body,)


def _expected(hook, timestamp: str | None, body: bytes) -> str:
    raw = digest(hook.secret, hook.algorithm, *_signed(timestamp, body))
    return hook.prefix + encode(raw, hook.encoding)


def _sent_at(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return parse_rfc3339(text)


def verify(hook, headers: Mapping[str, str], body: bytes, *, now: float) -> Delivery:
    """The delivery, or SignatureRefused."""
    given = header(headers, hook.signature_header)
    timestamp = header(headers, hook.timestamp_header) if hook.timestamp_header else None
    if hook.prefix and not given.startswith(hook.prefix):
        raise SignatureRefused("the signature does not match", code="signature_invalid")
    check_signature(given, _expected(hook, timestamp, body))
    if timestamp is not None:
        check_age(_sent_at(timestamp), now, hook.tolerance or DEFAULT_TOLERANCE)
    if hook.id_header:
        delivery_id = header(headers, hook.id_header)
    else:
        delivery_id = "sig-" + hashlib.sha256(given.encode("utf-8")).hexdigest()[:40]
    return Delivery(delivery_id, "event", headers.get((hook.event_header or "").lower(), ""))


def sample(hook, *, now: float, body: bytes | None = None) -> tuple[dict[str, str], bytes]:
    """A correctly signed test delivery."""
    if body is None:
        body = json.dumps({"test": True, "hook": hook.name}).encode("utf-8")
    timestamp = str(int(now)) if hook.timestamp_header else None
    headers = {"Content-Type": "application/json",
               hook.signature_header: _expected(hook, timestamp, body)}
    if timestamp is not None:
        headers[hook.timestamp_header] = timestamp
    if hook.id_header:
        headers[hook.id_header] = str(uuid.uuid4())
    return headers, body
