"""The router's #command use case: a command to its action, the reply a ModuleResponse."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from owaction import errors
from owaction.commands import action_payload, reply_fields
from owaction.inputs import (
    COMMAND_FIELD_LENGTHS,
    check_text,
    is_blank,
)
from owaction.logs import aaa
from owaction.service.context import CallContext
from owaction.service.pipeline import Pipeline
from owaction.service.results import ExecutionResult, timestamp
from owaction.store.records import ACCEPTED, FAILED, PENDING, SUCCEEDED


class RouterCommands(Pipeline):
    """WaddleBot #commands; a repeated session_id replays the first reply."""

    def execute_command(self, ctx: CallContext, *, command: str, args: str = "",
                        user_id: str = "", entity_id: str = "", community_id: str = "",
                        session_id: str = "", message: str = "") -> dict:
        """Run the action a router #command maps to; always a ModuleResponse dict.

        A repeat of a ``session_id`` (the router retries) never invokes the action again: it gets
        the first request's reply, waiting for it while it is still running. That holds across
        processes because the session id is the execution's idempotency key in the store.
        """
        started = self._clock()
        fields = {"command": command, "args": args, "user_id": user_id, "entity_id": entity_id,
                  "community_id": community_id, "session_id": session_id, "message": message}
        for name, value in fields.items():
            fields[name] = check_text("" if value is None else value, name,
                                      COMMAND_FIELD_LENGTHS[name])
        command = fields["command"].strip()
        # The router always sends both; without a session id its retries would run the action
        # again, so a call lacking either is refused rather than run unprotected.
        missing = [name for name in ("command", "session_id") if is_blank(fields[name])]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise errors.InvalidInput(f"{' and '.join(missing)} {verb} required")
        session_id = fields["session_id"]
        ctx = replace(ctx, community=community_id or None, user=user_id or None,
                      request_id=ctx.request_id)
        found = self.commands.lookup(command)
        shown = command.split(" ", 1)[0]
        if found is None or not found.enabled:
            text = (f"Unknown command {shown}." if found is None
                    else f"The command {shown} is disabled.")
            aaa("AUDIT", "execute_command", "UNKNOWN" if found is None else "DISABLED",
                community=community_id, user=user_id, command=shown, session_id=session_id)
            return self._module_response(session_id=session_id, success=False,
                                         error_message=text, started=started)
        payload = action_payload(
            command=shown, args=fields["args"], user_id=user_id, entity_id=entity_id,
            community_id=community_id, session_id=session_id, message=fields["message"],
            timestamp=timestamp(),
        )
        wait_ms, read_timeout = self._bounds(ctx, found.timeout_ms)
        ns = self._namespace(None)
        # The session id is the idempotency key, so the router's retries replay the first reply.
        ctx = replace(ctx, idempotency_key=f"session:{session_id}", callback_url=None)

        def call(execution_id: str, started: float) -> ExecutionResult:
            outcome = self.client.invoke_action(
                found.action, payload, namespace=ns, blocking=True, timeout_ms=wait_ms,
                request_id=ctx.request_id, read_timeout=read_timeout,
                headers=self._trace_headers(ctx),
            )
            return self._from_activation(execution_id, "command", outcome, started)

        try:
            outcome = self._execute(
                ctx, op="execute_command", action_type="command", target=found.action,
                namespace=ns, body=payload, blocking=True, timeout_ms=found.timeout_ms,
                call=call, fingerprint=None, record_request_id=session_id,
                replay=lambda record, _hash: self._replay_command(record, found))
        except errors.Throttled:
            raise  # the router backs off on a 429 rather than telling the user
        except errors.ServiceError as exc:
            if exc.execution_id is None:
                raise
            # The failure is on the record: the user gets the apology built from it.
            outcome = self.store.get(exc.execution_id)
            return self._reply_from_record(outcome, found)
        if isinstance(outcome, dict):
            return outcome  # a replay
        # The pipeline knows the completed row unless its write failed; only then is it read.
        return self._reply_from_record(outcome.record or self.store.get(outcome.execution_id),
                                       found)

    def _replay_command(self, record, found) -> dict:
        """The reply of an earlier request for the same session, once it is final (bounded)."""
        wait_s = (found.timeout_ms or self.settings.openwhisk_blocking_wait_ms) / 1000 + 2
        deadline = time.monotonic() + wait_s
        while not record.is_final and time.monotonic() < deadline:
            time.sleep(0.1)
            record = self.store.get(record.execution_id) or record
        aaa("AUDIT", "execute_command", "REPLAYED", execution_id=record.execution_id,
            session_id=record.request_id)
        return self._reply_from_record(record, found)

    def _reply_from_record(self, record, found) -> dict:
        """The ModuleResponse for an execution, built only from the stored record so that a
        replay answers exactly what the first request answered."""
        command = ((record.payload or {}).get("trigger") or {}).get("command") or found.command
        finished = record.completed_at or record.updated_at or record.created_at
        # The record keeps its times to the second, which would make every quick command take 0
        # or 1000 ms: when the action ran, its processing time is the duration OpenWhisk measured
        # (kept in the record, so a replay says the same).
        took = record.duration_ms
        if took is None:
            took = max(0, int((finished - record.created_at).total_seconds() * 1000))
        base = {
            "execution_id": record.execution_id,
            "session_id": (record.payload or {}).get("session_id", record.request_id or ""),
            "processing_time_ms": took,
            "timestamp": finished.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
        if record.status == SUCCEEDED:
            fields = reply_fields(record.result)
            success = fields.pop("success", True)
            return self._module_response(success=success, error_message=None if success else
                                         f"Sorry, {command} could not answer.", **base, **fields)
        if record.status in (PENDING, ACCEPTED) or "time limit" in (record.error or ""):
            text = f"Sorry, {command} took too long to answer. Please try again later."
        elif record.status == FAILED:
            text = f"Sorry, {command} failed. Please try again later."
        else:
            text = f"Sorry, {command} is unavailable right now. Please try again later."
        return self._module_response(success=False, error_message=text, **base)

    def _module_response(self, *, success: bool, started: float | None = None,
                         **fields: Any) -> dict:
        reply = {
            "execution_id": None,
            "session_id": "",
            "module_name": self.settings.module_name,
            "success": success,
            "response_action": "chat",
            "response_data": {},
            "media_type": None,
            "media_url": None,
            "ticker_text": None,
            "ticker_duration": 10,
            "chat_message": None,
            "error_message": None,
            "processing_time_ms": (int((self._clock() - started) * 1000)
                                   if started is not None else 0),
            "timestamp": timestamp(),
        }
        reply.update({k: v for k, v in fields.items() if k in reply})
        return reply
