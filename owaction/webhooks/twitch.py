"""Twitch EventSub over webhooks.

Twitch signs ``Twitch-Eventsub-Message-Id`` + ``Twitch-Eventsub-Message-Timestamp`` + the raw
body with HMAC-SHA256 and sends ``sha256=<hex>`` in ``Twitch-Eventsub-Message-Signature``.
``Twitch-Eventsub-Message-Type`` is ``notification``, ``webhook_callback_verification`` (answer
the body's ``challenge`` as text/plain) or ``revocation``. Twitch asks receivers to refuse
messages older than 10 minutes and retries a delivery with the same message id.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping

from owaction.webhooks.signatures import (
    Delivery,
    SignatureRefused,
    check_age,
    check_signature,
    digest,
    header,
    parse_rfc3339,
)

MESSAGE_ID = "Twitch-Eventsub-Message-Id"
TIMESTAMP = "Twitch-Eventsub-Message-Timestamp"
SIGNATURE = "Twitch-Eventsub-Message-Signature"
MESSAGE_TYPE = "Twitch-Eventsub-Message-Type"
SUBSCRIPTION_TYPE = "Twitch-Eventsub-Subscription-Type"
DEFAULT_TOLERANCE = 600  # Twitch: "older than 10 minutes"

_KINDS = {"notification": "event", "webhook_callback_verification": "challenge",
          "revocation": "revocation"}


def _expected(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + digest(secret, "sha256", message_id.encode("utf-8"),
                              timestamp.encode("utf-8"), body).hex()


def verify(hook, headers: Mapping[str, str], body: bytes, *, now: float) -> Delivery:
    """The delivery, or SignatureRefused; the body is parsed only once it is proven."""
    message_id = header(headers, MESSAGE_ID)
    timestamp = header(headers, TIMESTAMP)
    check_signature(header(headers, SIGNATURE), _expected(hook.secret, message_id, timestamp,
                                                          body))
    check_age(parse_rfc3339(timestamp), now, hook.tolerance or DEFAULT_TOLERANCE)
    message_type = headers.get(MESSAGE_TYPE.lower(), "notification")
    kind = _KINDS.get(message_type)
    if kind is None:
        raise SignatureRefused(f"unknown {MESSAGE_TYPE} {message_type[:64]!r}",
                               code="message_type_unknown")
    event = headers.get(SUBSCRIPTION_TYPE.lower(), "")
    if kind == "event":
        return Delivery(message_id, "event", event)
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    subscription = data.get("subscription") if isinstance(data.get("subscription"), dict) else {}
    detail = {"subscription_id": subscription.get("id"), "status": subscription.get("status")}
    if kind == "challenge":
        challenge = data.get("challenge")
        if not isinstance(challenge, str) or not challenge:
            raise SignatureRefused("a verification message without a challenge",
                                   code="challenge_missing")
        return Delivery(message_id, "challenge", event, challenge=challenge, detail=detail)
    return Delivery(message_id, "revocation", event, detail=detail)


def sample(hook, *, now: float, message_type: str = "webhook_callback_verification",
           body: bytes | None = None) -> tuple[dict[str, str], bytes]:
    """A correctly signed test delivery (by default a verification challenge)."""
    message_id = str(uuid.uuid4())
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if body is None:
        content = {"subscription": {"id": str(uuid.uuid4()), "type": "owaction.test",
                                    "status": "webhook_callback_verification_pending"}}
        if message_type == "webhook_callback_verification":
            content["challenge"] = uuid.uuid4().hex
        else:
            content["event"] = {"test": True}
        body = json.dumps(content).encode("utf-8")
    headers = {MESSAGE_ID: message_id, TIMESTAMP: stamp, MESSAGE_TYPE: message_type,
               SUBSCRIPTION_TYPE: "owaction.test", "Content-Type": "application/json",
               SIGNATURE: _expected(hook.secret, message_id, stamp, body)}
    return headers, body
