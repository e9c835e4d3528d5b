"""What every verifier shares: refusals, the delivery it hands back, HMAC and clock checks."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from owaction.errors import PermissionDenied

ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")
# RFC 3339 as Twitch writes it: nanoseconds, which datetime cannot hold, so they are cut to µs.
_RFC3339 = re.compile(
    r"\A(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})\Z")


class SignatureRefused(PermissionDenied):
    """A delivery that is not provably from the hook's sender (403); ``code`` says why."""

    code = "signature_invalid"


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: its id, what it is, and anything the sender expects back."""

    delivery_id: str
    kind: str  # event | challenge | ping | revocation
    event: str = ""  # the sender's event type (Twitch subscription type, GitHub event)
    challenge: str | None = None  # answered as text/plain
    detail: dict[str, Any] = field(default_factory=dict)  # recorded as the execution's result


def header(headers: Mapping[str, str], name: str) -> str:
    """A required header (``headers`` has lower-case names); a refusal when it is missing."""
    value = headers.get(name.lower())
    if not value:
        raise SignatureRefused(f"the {name} header is missing", code="signature_missing")
    return value


def digest(secret: str, algorithm: str, *parts: bytes) -> bytes:
    mac = hmac.new(secret.encode("utf-8"), digestmod=getattr(hashlib, algorithm))
    for part in parts:
        mac.update(part)
    return mac.digest()


def encode(raw: bytes, encoding: str) -> str:
    return base64.b64encode(raw).decode("ascii") if encoding == "base64" else raw.hex()


def check_signature(given: str, expected: str) -> None:
    """Constant-time comparison; hex is compared case-insensitively as senders differ."""
    a, b = given.strip(), expected
    if all(c in "0123456789abcdefABCDEF" for c in a):
        a = a.lower()
    if not hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("ascii")):
        raise SignatureRefused("the signature does not match", code="signature_invalid")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch; a refusal for anything else."""
    match = _RFC3339.match(text.strip())
    if not match:
        raise SignatureRefused("the timestamp is not RFC 3339", code="timestamp_invalid")
    day, clock, fraction, zone = match.groups()
    zone = "+00:00" if zone in "Zz" else zone
    micro = (fraction or "0")[:6].ljust(6, "0")
    try:
        stamp = dt.datetime.fromisoformat(f"{day}T{clock}.{micro}{zone}")
    except ValueError:
        raise SignatureRefused("the timestamp is not a valid time",
                               code="timestamp_invalid") from None
    return stamp.timestamp()


def check_age(sent_at: float, now: float, tolerance: float) -> None:
    """Refuse a delivery signed too long ago (a replay) or too far ahead (a skewed clock)."""
    if abs(now - sent_at) > tolerance:
        raise SignatureRefused(
            f"the timestamp is more than {int(tolerance)} s from the server's clock",
            code="timestamp_stale")
