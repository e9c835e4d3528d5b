"""The webhook use case: verify a delivery, record it once, run its target, acknowledge fast.

Order matters: the hook is looked up and the raw body's size and signature are checked before
anything parses the body; only a proven delivery is rate-limited, recorded and run. The record's
idempotency key is the sender's delivery id under the caller ``webhook:<hook>``, so the store's
unique index makes a retried delivery (even one racing the first in another process) run
nothing. The target runs in the background; the sender gets its answer as soon as the target
has answered or ``WEBHOOK_ACK_SECONDS`` have passed, whichever is first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from owaction import errors
from owaction.logs import aaa
from owaction.metrics import observe_execution
from owaction.openwhisk import errors as ow
from owaction.ratelimit import parse_limit
from owaction.service.translation import translate_client_error
from owaction.store import DuplicateIdempotencyKey
from owaction.store.records import ACCEPTED, ERROR, FAILED, PENDING, SUCCEEDED, ActionType
from owaction.webhooks import VERIFIERS
from owaction.webhooks.hooks import Hook, HookMap
from owaction.webhooks.signatures import Delivery, SignatureRefused

log = logging.getLogger("owaction.service.webhooks")

ACTION_TYPE = ActionType.WEBHOOK
SOURCE = "webhook"
_SANE_ID = re.compile(r"\A[A-Za-z0-9._-]{1,128}\Z")


@dataclass(frozen=True)
class WebhookReply:
    """What the sender gets: a JSON body, or ``text`` (the Twitch challenge) as text/plain."""

    status_code: int
    body: dict[str, Any] | None = None
    text: str | None = None


@dataclass
class _Run:
    """The background call's outcome, once it has one."""

    outcome: str = PENDING
    activation_id: str | None = None
    error: errors.ServiceError | None = None
    sent: bool = True


def _delivery_key(delivery_id: str) -> str:
    """The sender's id when it is safe to store and log as it is, else a digest of it."""
    if _SANE_ID.match(delivery_id):
        return delivery_id
    return "sha256-" + hashlib.sha256(delivery_id.encode("utf-8", "replace")).hexdigest()[:40]


def parse_body(body: bytes, content_type: str) -> Any:
    """The proven body as JSON (GitHub's form encoding too), else its text."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.InvalidInput("the webhook body is not UTF-8") from None
    if "application/x-www-form-urlencoded" in content_type:
        form = parse_qs(text)
        text = form.get("payload", [text])[0]
    try:
        return json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        return text


def _at(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def action_payload(hook: Hook, delivery: Delivery, body: Any) -> dict[str, Any]:
    """What the target gets: the hook's mapping of the body (else the whole body), and
    ``webhook`` naming the hook, sender, event and delivery."""
    payload = ({key: _at(body, path) for key, path in hook.payload} if hook.payload
               else {"body": body})
    payload["webhook"] = {"hook": hook.name, "source": hook.verifier, "event": delivery.event,
                          "delivery_id": delivery.delivery_id}
    return payload


def _web_result(response) -> dict:
    """A web action's answer as the record keeps it: its JSON object, else its text."""
    if "json" in response.content_type:
        try:
            value = json.loads(response.body or b"null")
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
    return {"body": response.text()[:4096], "content_type": response.content_type}


def _spawn(work: Callable[[], None]) -> None:
    # Under gunicorn's gevent worker threading is patched, so this is a greenlet.
    threading.Thread(target=work, name="webhook-target", daemon=True).start()


class WebhookDeliveries:
    """Receives deliveries for the hooks in ``hooks``, on the action service's store, client and
    rate limiter (it is part of the service layer, so it completes records the same way)."""

    def __init__(self, service: Any, hooks: HookMap, *,
                 spawn: Callable[[Callable[[], None]], None] = _spawn,
                 clock: Callable[[], float] = time.time):
        self.service = service
        self.hooks = hooks
        self._spawn = spawn
        self._clock = clock

    # --- the use case ----------------------------------------------------------------------

    def receive(self, hook_name: str, headers: Mapping[str, str], body: bytes | None, *,
                request_id: str | None = None) -> WebhookReply:
        """Verify, deduplicate, record and run one delivery; a ServiceError when refused.

        ``body`` is None when the door already knows it is too large to read.
        """
        settings = self.service.settings
        headers = {k.lower(): v for k, v in headers.items()}
        hook = self.hooks.get(hook_name)
        if hook is None:
            self._refuse(hook_name, "unknown_webhook", request_id)
            raise errors.NotFound(f"no webhook named {hook_name[:64]!r}", code="unknown_webhook")
        if body is None or len(body) > settings.max_payload_bytes:
            self._refuse(hook.name, "payload_too_large", request_id)
            raise errors.PayloadTooLarge(
                f"the webhook body is larger than {settings.max_payload_bytes} bytes")
        try:
            delivery = VERIFIERS[hook.verifier].verify(hook, headers, body, now=self._clock())
        except SignatureRefused as exc:
            self._refuse(hook.name, exc.code, request_id)
            raise
        key = _delivery_key(delivery.delivery_id)
        aaa("AUTH", "webhook_verify", "SUCCESS", user=f"webhook:{hook.name}", hook=hook.name,
            delivery_id=key, kind=delivery.kind, request_id=request_id)
        caller = f"webhook:{hook.name}"
        existing = self.service.store.find_by_idempotency_key(caller, key)
        if existing is not None:
            return self._duplicate(hook, delivery, key, existing)
        if self.service.rate_limiter is not None:
            limit = parse_limit(hook.rate_limit or self.service.settings.webhook_rate_limit)
            self.service.rate_limiter.check_webhook(hook.name, limit, caller=caller)
        payload = action_payload(hook, delivery, parse_body(body, headers.get("content-type",
                                                                               "")))
        payload = self.service._payload(payload)  # the same size rule as every invocation
        namespace = self.service._namespace(None)
        try:
            record = self.service.store.create_pending(
                namespace=namespace, action_name=hook.name, action_type=ACTION_TYPE,
                payload=payload, blocking=False, timeout=None, source=SOURCE, caller=caller,
                request_id=key, idempotency_key=key,
            )
        except DuplicateIdempotencyKey as dup:  # the same delivery won a race elsewhere
            return self._duplicate(hook, delivery, key, dup.existing)
        if delivery.kind != "event":
            return self._answer_locally(hook, delivery, key, record.execution_id)
        return self._run(hook, delivery, key, record.execution_id, namespace, payload)

    # --- the parts ---------------------------------------------------------------------------

    @staticmethod
    def _refuse(hook_name: str, reason: str, request_id: str | None) -> None:
        # Neither the body nor any header value is logged: only the hook and the reason.
        aaa("AUTH", "webhook_verify", "DENIED", level=logging.WARNING, hook=hook_name[:64],
            reason=reason, request_id=request_id)

    def _reply(self, hook: Hook, key: str, execution_id: str, status: str, *,
               code: int = 200, activation_id: str | None = None,
               duplicate: bool = False) -> WebhookReply:
        return WebhookReply(code, {"hook": hook.name, "delivery_id": key,
                                   "execution_id": execution_id, "status": status,
                                   "activation_id": activation_id, "duplicate": duplicate})

    def _duplicate(self, hook: Hook, delivery: Delivery, key: str, record) -> WebhookReply:
        """A delivery seen before: acknowledged again, nothing run."""
        aaa("AUDIT", "webhook", "DUPLICATE", hook=hook.name, delivery_id=key,
            execution_id=record.execution_id, source=SOURCE, status=record.status)
        if delivery.challenge is not None:
            return WebhookReply(200, text=delivery.challenge)
        return self._reply(hook, key, record.execution_id, record.status,
                           activation_id=record.activation_id, duplicate=True)

    def _answer_locally(self, hook: Hook, delivery: Delivery, key: str,
                        execution_id: str) -> WebhookReply:
        """A challenge, ping or revocation: recorded and answered, no target run."""
        self.service._finish(execution_id, status=SUCCEEDED, success=True, duration_ms=0,
                             result={"kind": delivery.kind, **delivery.detail}, status_code=200)
        if delivery.kind == "revocation":
            aaa("AUDIT", "webhook_revocation", "REVOKED", level=logging.WARNING, hook=hook.name,
                delivery_id=key, execution_id=execution_id, event_type=delivery.event,
                status=delivery.detail.get("status"))
        else:
            aaa("AUDIT", "webhook", delivery.kind.upper(), hook=hook.name, delivery_id=key,
                execution_id=execution_id, source=SOURCE, event_type=delivery.event)
        observe_execution(ACTION_TYPE, hook.name, SUCCEEDED, 0.0)
        if delivery.challenge is not None:
            return WebhookReply(200, text=delivery.challenge)
        return self._reply(hook, key, execution_id, SUCCEEDED)

    def _run(self, hook: Hook, delivery: Delivery, key: str, execution_id: str,
             namespace: str, payload: dict) -> WebhookReply:
        run = _Run()
        done = threading.Event()

        def work() -> None:
            try:
                self._call_target(hook, delivery, key, execution_id, namespace, payload, run)
            finally:
                done.set()

        self._spawn(work)
        if not done.wait(self.service.settings.webhook_ack_seconds):
            return self._reply(hook, key, execution_id, PENDING, code=202)
        if run.error is not None and not run.sent:
            # Nothing reached OpenWhisk and the key is free again: the sender's retry will run.
            run.error.execution_id = execution_id
            raise run.error
        return self._reply(hook, key, execution_id, run.outcome,
                           code=202 if run.outcome == ACCEPTED else 200,
                           activation_id=run.activation_id)

    def _call_target(self, hook: Hook, delivery: Delivery, key: str, execution_id: str,
                     namespace: str, payload: dict, run: _Run) -> None:
        """Call OpenWhisk and complete the record; never raises (it runs in the background)."""
        client, finish = self.service.client, self.service._finish
        started = self._clock()
        try:
            if hook.target_kind == "trigger":
                fired = client.fire_trigger(hook.target, payload, namespace=namespace,
                                            request_id=key)
                run.activation_id = fired.activation_id
                if fired.fired:
                    run.outcome = ACCEPTED
                    finish(execution_id, status=ACCEPTED, activation_id=fired.activation_id,
                           status_code=202)
                else:
                    run.outcome = SUCCEEDED
                    finish(execution_id, status=SUCCEEDED, success=True, status_code=204,
                           duration_ms=int((self._clock() - started) * 1000),
                           result={"fired": False, "reason": "no active rule"})
            elif hook.target_kind == "action":
                pending = client.invoke_action_async(hook.target, payload, namespace=namespace,
                                                     request_id=key)
                run.outcome, run.activation_id = ACCEPTED, pending.activation_id
                finish(execution_id, status=ACCEPTED, activation_id=pending.activation_id,
                       status_code=202)
            else:
                package, _, action = hook.target.rpartition("/")
                response = client.invoke_web_action(action, payload, namespace=namespace,
                                                    package=package or "default",
                                                    extension=hook.extension, request_id=key)
                success = response.status_code < 400
                run.outcome = SUCCEEDED if success else FAILED
                run.activation_id = response.activation_id
                text = response.text()
                finish(execution_id, status=run.outcome, success=success,
                       activation_id=response.activation_id, result=_web_result(response),
                       duration_ms=int((self._clock() - started) * 1000),
                       error=None if success else (text[:1000] or f"HTTP {response.status_code}"),
                       status_code=response.status_code)
        except ow.OpenWhiskError as exc:
            error, status, code = translate_client_error(exc)
            run.outcome, run.error = status, error
            run.sent = getattr(exc, "request_sent", True)
            finish(execution_id, status=status, success=False, error=error.message,
                   status_code=code)
            if not run.sent:
                self.service.store.forget_idempotency_key(execution_id)
        except Exception:  # noqa: BLE001 - a background task must record, not vanish
            log.exception("webhook %s delivery %s failed", hook.name, key)
            run.outcome, run.error = ERROR, errors.ServiceError("internal error")
            finish(execution_id, status=ERROR, success=False, error="internal error",
                   status_code=500)
        seconds = self._clock() - started
        observe_execution(ACTION_TYPE, hook.name, run.outcome, seconds)
        aaa("AUDIT", "webhook", run.outcome.upper(), hook=hook.name, delivery_id=key,
            execution_id=execution_id, activation_id=run.activation_id, source=SOURCE,
            event_type=delivery.event, target=f"{hook.target_kind}:{hook.target}",
            time=f"{int(seconds * 1000)}ms",
            error=run.error.message if run.error is not None else None)
