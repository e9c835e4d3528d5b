"""GitHub webhooks.

GitHub signs the raw body with HMAC-SHA256 and sends ``sha256=<hex>`` in
``X-Hub-Signature-256``; ``X-GitHub-Event`` names the event (``ping`` when the hook is created)
and ``X-GitHub-Delivery`` is a GUID that a redelivery keeps. Deliveries carry no timestamp, so
the delivery id is the only defence against a replay.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from owaction.webhooks.signatures import Delivery, check_signature, digest, header

SIGNATURE = "X-Hub-Signature-256"
EVENT = "X-GitHub-Event"
DELIVERY = "X-GitHub-Delivery"


def _expected(secret: str, body: bytes) -> str:
    return "sha256=" + digest(secret, "sha256", body).hex()


def verify(hook, headers: Mapping[str, str], body: bytes, *, now: float) -> Delivery:
    """The delivery, or SignatureRefused."""
    check_signature(header(headers, SIGNATURE), _expected(hook.secret, body))
    delivery_id = header(headers, DELIVERY)
    event = headers.get(EVENT.lower(), "")
    if event == "ping":
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        return Delivery(delivery_id, "ping", event,
                        detail={"hook_id": data.get("hook_id"), "zen": data.get("zen")})
    return Delivery(delivery_id, "event", event)


def sample(hook, *, now: float, event: str = "ping",
           body: bytes | None = None) -> tuple[dict[str, str], bytes]:
    """A correctly signed test delivery (by default a ping)."""
    if body is None:
        body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 0,
                           "hook": {"type": "owaction.test"}}).encode("utf-8")
    headers = {EVENT: event, DELIVERY: str(uuid.uuid4()), "Content-Type": "application/json",
               SIGNATURE: _expected(hook.secret, body)}
    return headers, body
