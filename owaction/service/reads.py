"""The reading use cases: activations, actions, executions and statistics."""

from __future__ import annotations

import logging
from typing import Any

from owaction import errors
from owaction.inputs import (
    MAX_ACTION_NAME_FILTER,
    check_execution_id,
    check_text,
    parse_instant,
)
from owaction.names import (
    InvalidName,
    check_activation_id,
)
from owaction.openwhisk import errors as ow
from owaction.openwhisk.models import (
    ActionInfo,
    Activation,
)
from owaction.service.context import CallContext
from owaction.service.recording import Recording
from owaction.service.translation import translate_client_error
from owaction.service.validation import (
    ACTION_LIST_DEFAULT,
    LIST_LIMIT_MAX,
    whole,
)
from owaction.store.records import (
    ACCEPTED,
    DEFAULT_LIST_LIMIT,
    FAILED_STATUSES,
    MAX_LIST_LIMIT,
    SUCCEEDED,
)

log = logging.getLogger("owaction.service")


class Reads(Recording):
    """Reads from OpenWhisk and the store; an accepted execution is refreshed."""

    def get_activation(self, ctx: CallContext, *, activation_id: str,
                       namespace: str | None = None) -> Activation:
        ns = self._namespace(namespace)
        try:
            check_activation_id(activation_id)
        except InvalidName as exc:
            raise errors.InvalidInput(str(exc)) from None
        try:
            return self.client.get_activation(activation_id, namespace=ns)
        except ow.NotFound:
            raise errors.NotFound(f"activation {activation_id} does not exist") from None
        except ow.OpenWhiskError as exc:
            raise translate_client_error(exc)[0] from None

    def list_actions(self, ctx: CallContext, *, namespace: str | None = None,
                     limit: int = ACTION_LIST_DEFAULT,
                     skip: int = 0) -> list[ActionInfo]:
        ns = self._namespace(namespace)
        if not whole(limit) or not 0 <= limit <= LIST_LIMIT_MAX:
            raise errors.InvalidInput(f"limit must be between 0 and {LIST_LIMIT_MAX}")
        if not whole(skip) or skip < 0:
            raise errors.InvalidInput("skip must be 0 or more")
        try:
            return self.client.list_actions(namespace=ns, limit=limit, skip=skip)
        except ow.OpenWhiskError as exc:
            raise translate_client_error(exc)[0] from None

    def get_execution(self, execution_id: str, *, refresh: bool = True):
        check_execution_id(execution_id)
        record = self.store.get(execution_id)
        if record is None:
            raise errors.NotFound(f"execution {execution_id} does not exist")
        if refresh and record.status == ACCEPTED and record.activation_id:
            refreshed = self.refresh_execution(record)
            if refreshed is not None:
                return refreshed
        return record

    def refresh_execution(self, record):
        """Complete an accepted execution from its activation, if OpenWhisk has it; the new
        record, or None when the outcome is still unknown."""
        try:
            activation = self.client.get_activation(
                record.activation_id, namespace=record.namespace or None
            )
        except ow.NotFound:
            return None
        except ow.OpenWhiskError as exc:
            log.info("could not refresh execution %s: %s", record.execution_id, exc)
            return None
        self._from_activation(record.execution_id, record.action_type, activation,
                              started=self._clock())
        return self.store.get(record.execution_id)

    def list_executions(self, *, action_name: str | None = None, action_type: str | None = None,
                        status: str | None = None, since: Any = None, until: Any = None,
                        limit: int = DEFAULT_LIST_LIMIT, cursor: str | None = None):
        if not whole(limit) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise errors.InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        if action_name is not None:
            check_text(action_name, "action_name", MAX_ACTION_NAME_FILTER)
        since, until = parse_instant(since, "since"), parse_instant(until, "until")
        try:
            return self.store.list(action_name=action_name, action_type=action_type,
                                   status=status, since=since, until=until, limit=limit,
                                   cursor=cursor)
        except ValueError as exc:
            raise errors.InvalidInput(str(exc)) from None

    def stats(self) -> dict:
        """The store's figures, plus the original module's field names callers read; the one
        definition of "failed" (failed, error, timeout and unknown) for every door."""
        stats = self.store.stats()
        by_status = stats.get("by_status", {})
        stats["total_executions"] = stats.get("total", 0)
        stats["successful_executions"] = by_status.get(SUCCEEDED, 0)
        stats["failed_executions"] = sum(by_status.get(s, 0) for s in FAILED_STATUSES)
        return stats
