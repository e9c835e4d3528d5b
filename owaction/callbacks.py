"""Callbacks: POST the finished execution record to the caller's URL, signed.

The body is ``{"execution": <the record, as GET /api/v1/executions/<id> shows it, without the
idempotency key>}``. The header
``X-Owaction-Signature: sha256=<hex>`` is HMAC-SHA256 of ``<timestamp>.<body>`` with
``CALLBACK_SECRET``, and ``X-Owaction-Timestamp`` carries that timestamp, so a receiver can check
both authenticity and freshness. Only hosts in ``CALLBACK_ALLOWED_HOSTS`` are ever contacted
(checked when the URL is accepted and again before each delivery), redirects are not followed,
and each delivery is retried with backoff a bounded number of times; every attempt is recorded
on the execution (``callback_state``, ``callback_attempts``, ``callback_status_code``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from urllib.parse import urlsplit

import requests

from owaction.backoff import exponential
from owaction.config import Settings
from owaction.logs import aaa
from owaction.metrics import CALLBACKS
from owaction.store.records import CALLBACK_FIELDS

MAX_ATTEMPTS = 5
TIMEOUT = (3.0, 10.0)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does; used by the tests."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def retry_delay(attempt: int) -> float:
    """Seconds before the next delivery after ``attempt`` failed ones: 1, 2, 4, ... up to 300."""
    return exponential(attempt + 1, first=1.0, cap=300.0)


class CallbackDeliverer:
    def __init__(self, settings: Settings, store, *, session: requests.Session | None = None,
                 max_attempts: int = MAX_ATTEMPTS, delay=retry_delay):
        self.settings = settings
        self.store = store
        self.session = session or requests.Session()
        self.max_attempts = max_attempts
        self.delay = delay
        self.allowed = {h.lower() for h in settings.callback_allowed_hosts}

    def close(self) -> None:
        self.session.close()

    def body_for(self, record) -> bytes:
        return json.dumps({"execution": record.public(CALLBACK_FIELDS)}, separators=(",", ":"),
                          default=str).encode()

    def deliver_due(self) -> dict[str, int]:
        counts = {"delivered": 0, "retrying": 0, "failed": 0}
        for record in self.store.due_callbacks():
            outcome = self.deliver(record)
            counts[outcome] += 1
        return counts

    def deliver(self, record) -> str:
        host = (urlsplit(record.callback_url).hostname or "").lower()
        status_code = None
        if host not in self.allowed:
            delivered, reason = False, "host no longer allowed"
        else:
            body = self.body_for(record)
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Owaction-Timestamp": timestamp,
                       "X-Owaction-Execution-Id": record.execution_id}
            if self.settings.callback_secret:
                headers["X-Owaction-Signature"] = sign(self.settings.callback_secret, timestamp,
                                                       body)
            try:
                response = self.session.post(record.callback_url, data=body, headers=headers,
                                             timeout=TIMEOUT, allow_redirects=False)
                status_code = response.status_code
                delivered = 200 <= status_code < 300
                reason = f"HTTP {status_code}"
            except requests.RequestException as exc:
                delivered, reason = False, type(exc).__name__
        attempt = record.callback_attempts + 1
        if delivered:
            outcome, retry_in = "delivered", None
        elif attempt >= self.max_attempts or host not in self.allowed:
            outcome, retry_in = "failed", None
        else:
            outcome, retry_in = "retrying", self.delay(attempt)
        self.store.record_callback(record.execution_id, delivered=delivered,
                                   status_code=status_code, retry_in=retry_in)
        CALLBACKS.labels(outcome).inc()
        aaa("AUDIT", "callback", outcome.upper(),
            level=logging.INFO if delivered else logging.WARNING,
            execution_id=record.execution_id, host=host, attempt=attempt, msg=reason)
        return outcome
