"""Executions: record, accept and complete them; read, find and page through them.

``execution_id`` is ``owaction.ids.new_id()``: time-ordered, with 80 random bits from the OS
CSPRNG, so ids are unique in practice (and the unique index enforces it) and cannot be guessed
from one another.
Raw SQL here interpolates only constants (the table name, column and status names); every value
travels as a placeholder.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from owaction.errors import InvalidInput
from owaction.ids import new_id
from owaction.store import values
from owaction.store.errors import DuplicateIdempotencyKey
from owaction.store.records import (
    ACCEPTED,
    ACTION_TYPES,
    DEFAULT_LIST_LIMIT,
    FINAL,
    IN_FLIGHT,
    MAX_LIST_LIMIT,
    PENDING,
    RECORD_FIELDS,
    STATUSES,
    SUCCEEDED,
    ExecutionRecord,
    from_row,
    from_values,
)
from owaction.store.schema import INSERT_COLUMNS, TABLE
from owaction.store.session import Database


def _insert_sql(placeholder: str) -> str:
    columns = ", ".join(f'"{c}"' for c in INSERT_COLUMNS)
    marks = ", ".join([placeholder] * len(INSERT_COLUMNS))
    return f'INSERT INTO "{TABLE}" ({columns}) VALUES ({marks})'  # noqa: S608


_SELECT_COLUMNS = ", ".join(f'"{name}"' for name in RECORD_FIELDS)

# The two writes every call makes go out as plain SQL: PyDAL's query building costs more CPU
# than the database does for them.
_INSERT_SQL = {p: _insert_sql(p) for p in ("%s", "?")}


# A page ends at a row's (created_at, id): the cursor is that position as epoch seconds and id,
# so every text of this shape is a position (past the last row, the page is empty) and the
# OpenAPI document can say exactly which cursors are valid.
CURSOR_PATTERN = r"^[0-9]{1,11}-[0-9]{1,18}$"
_CURSOR = re.compile(CURSOR_PATTERN)


def _encode_cursor(created_at: dt.datetime, row_id: int) -> str:
    seconds = int(values.naive_utc(created_at).replace(tzinfo=dt.UTC).timestamp())
    return f"{seconds}-{row_id}"


def _decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    if not isinstance(cursor, str) or not _CURSOR.fullmatch(cursor):
        raise InvalidInput("cursor is not one this service issued (it is <epoch seconds>-<id>)",
                           code="invalid_cursor")
    seconds, row_id = cursor.split("-")
    created = dt.datetime.fromtimestamp(int(seconds), dt.UTC).replace(tzinfo=None)
    return created, int(row_id)


class Executions(Database):
    """The execution rows' lifecycle and reads."""

    # -- writes ----------------------------------------------------------------------------------

    def create_pending(
        self,
        *,
        namespace: str,
        action_name: str,
        action_type: str,
        payload: Any,
        blocking: bool,
        timeout: int | None,
        source: str | None,
        caller: str | None,
        request_id: str | None,
        idempotency_key: str | None = None,
        trace_id: str | None = None,
        request_hash: str | None = None,
        callback_url: str | None = None,
        cached: bool = False,
    ) -> ExecutionRecord:
        """Record a new execution as ``pending``.

        Raises ``DuplicateIdempotencyKey`` (carrying the existing record) when the caller
        already used ``idempotency_key``.
        """
        if action_type not in ACTION_TYPES:
            raise ValueError(f"unknown action_type {action_type!r}")
        now = values.now()
        fields = {
            "execution_id": new_id(),
            "namespace": namespace,
            "action_name": action_name,
            "action_type": action_type,
            "payload": values.dumps(payload),
            "blocking": bool(blocking),
            "timeout": timeout,
            "activation_id": None,
            "result": None,
            "duration_ms": None,
            "status": PENDING,
            "success": None,
            "error": None,
            "created_at": now,
            "completed_at": None,
            "source": source,
            "caller": caller,
            "request_id": request_id,
            "idempotency_key": idempotency_key,
            "request_hash": request_hash,
            "status_code": None,
            "updated_at": now,
            "trace_id": trace_id,
            "cached": bool(cached),
            "callback_url": callback_url,
            "lease_owner": None,
            "lease_until": None,
            "attempts": 0,
            "error_code": None,
            "retry_after": None,
        }
        params = tuple(values.sql_value(fields[c]) for c in INSERT_COLUMNS)
        try:
            self.write(_INSERT_SQL[self.placeholder], params)
        except self.integrity_errors as exc:
            # The usual refusal is a taken idempotency key: one read answers it.
            existing = (self.find_by_idempotency_key(caller, idempotency_key)
                        if idempotency_key is not None else None)
            if existing is None or existing.execution_id != fields["execution_id"]:
                if existing is not None:
                    raise DuplicateIdempotencyKey(existing) from exc
                mine = self.get(fields["execution_id"])
                if mine is None or mine.request_hash != request_hash or mine.caller != caller:
                    raise
            # Else the first attempt's commit landed but its answer was lost: the row is ours.
        fields["payload"] = payload
        for name in ("created_at", "updated_at"):
            fields[name] = values.aware(fields[name])
        return ExecutionRecord(**fields)

    def mark_accepted(
        self, execution_id: str, *, activation_id: str, status_code: int = 202
    ) -> bool:
        """``pending`` -> ``accepted``; False if the row was not pending."""
        p = self.placeholder
        sql = (f'UPDATE "{TABLE}" SET status = {p}, activation_id = {p}, '  # noqa: S608
               f"status_code = {p}, updated_at = {p} WHERE execution_id = {p} AND status = {p}")
        return self.write(sql, (ACCEPTED.value, activation_id, status_code,
                                values.sql_time(values.now()), execution_id,
                                PENDING.value)) > 0

    def complete(
        self,
        execution_id: str,
        *,
        status: str,
        success: bool,
        activation_id: str | None = None,
        result: Any = None,
        duration_ms: int | None = None,
        error: str | None = None,
        status_code: int | None = None,
        lease_owner: str | None = None,
        error_code: str | None = None,
        retry_after: float | None = None,
        completed_at: dt.datetime | None = None,
    ) -> bool:
        """Move an in-flight execution to a final status; False if it was already final.

        With ``lease_owner``, only the holder of the row's lease may complete it.
        ``completed_at`` (default now) lets the caller know the row's final state unread.
        """
        if status not in FINAL:
            raise ValueError(f"{status!r} is not a final status")
        now = values.now() if completed_at is None else values.naive_utc(completed_at)
        fields: dict[str, Any] = {
            "status": status, "success": bool(success), "result": values.dumps(result),
            "duration_ms": duration_ms, "error": error, "completed_at": now, "updated_at": now,
            "lease_owner": None, "lease_until": None,
        }
        if activation_id is not None:
            fields["activation_id"] = activation_id
        if status_code is not None:
            fields["status_code"] = status_code
        if error_code is not None:
            fields["error_code"] = error_code
            fields["retry_after"] = None if retry_after is None else math.ceil(retry_after)
        p = self.placeholder
        sets = ", ".join(f'"{name}" = {p}' for name in fields)
        where = f"execution_id = {p} AND status IN ({p}, {p})"
        params = [values.sql_value(v) for v in fields.values()]
        params += [execution_id, *(s.value for s in IN_FLIGHT)]
        if lease_owner is not None:
            where += f" AND lease_owner = {p}"
            params.append(lease_owner)
        sql = f'UPDATE "{TABLE}" SET {sets} WHERE {where}'  # noqa: S608
        # Not flushed before the caller goes on (owaction.store.writer): if a server crash
        # loses it, the row is in flight again and the worker reconciles it.
        return self.write(sql, tuple(params), durable=False) > 0

    def forget_idempotency_key(self, execution_id: str) -> bool:
        """Free an execution's key (it certainly never reached OpenWhisk, so a retry may run)."""
        with self.session() as db:
            t = db[TABLE]
            updated = db(t.execution_id == execution_id).update(
                idempotency_key=None, updated_at=values.now()
            )
        return bool(updated)

    def purge_idempotency(self, older_than: dt.datetime | float) -> int:
        """Forget idempotency keys of executions created before ``older_than``.

        ``older_than`` is a datetime or an age in seconds. Returns how many keys were dropped.
        """
        if isinstance(older_than, dt.datetime):
            cutoff = values.naive_utc(older_than)
        else:
            cutoff = values.now() - dt.timedelta(seconds=older_than)
        with self.session() as db:
            t = db[TABLE]
            return db((t.idempotency_key != None) & (t.created_at < cutoff)).update(  # noqa: E711
                idempotency_key=None, updated_at=values.now()
            )

    # -- reads -----------------------------------------------------------------------------------

    def _first(self, where: str, params: tuple, *,
                newest: bool = False) -> ExecutionRecord | None:
        """The first (or newest) row matching ``where`` ({p} for each value), as a record.

        Plain SQL: these run on every call (the router path reads twice), and PyDAL's query
        building and row parsing cost more CPU than the database does for them.
        """
        p = self.placeholder
        sql = (f"SELECT {_SELECT_COLUMNS} FROM \"{TABLE}\" "  # noqa: S608
               f"WHERE {where.replace('{p}', p)}"
               f"{' ORDER BY id DESC' if newest else ''} LIMIT 1")
        row = self.select_one(sql, params)
        return from_values(row) if row else None

    def get(self, execution_id: str) -> ExecutionRecord | None:
        return self._first("execution_id = {p}", (execution_id,))

    def find_by_idempotency_key(self, caller: str | None, key: str) -> ExecutionRecord | None:
        if caller is None:
            return self._first("caller IS NULL AND idempotency_key = {p}", (key,))
        return self._first("caller = {p} AND idempotency_key = {p}", (caller, key))

    def find_cached(self, action_name: str, request_hash: str, *,
                    max_age: float) -> ExecutionRecord | None:
        """The newest successful execution of the same request within ``max_age`` seconds."""
        since = values.sql_time(values.now() - dt.timedelta(seconds=max_age))
        return self._first(
            "action_name = {p} AND request_hash = {p} AND status = {p} AND created_at >= {p}",
            (action_name, request_hash, SUCCEEDED.value, since), newest=True)

    def list(
        self,
        *,
        action_name: str | None = None,
        action_type: str | None = None,
        status: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
        cursor: str | None = None,
    ) -> tuple[list[ExecutionRecord], str | None]:
        """Newest first, ``limit`` at a time; pass the returned cursor to get the next page.

        Paging is by (created_at, id), so rows inserted meanwhile never shift a page.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_LIST_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
        if action_type is not None and action_type not in ACTION_TYPES:
            raise InvalidInput(f"action_type must be one of {', '.join(ACTION_TYPES)}")
        after = _decode_cursor(cursor) if cursor else None
        with self.session() as db:
            t = db[TABLE]
            query = t.id > 0
            if action_name is not None:
                query &= t.action_name == action_name
            if action_type is not None:
                query &= t.action_type == action_type
            if status is not None:
                query &= t.status == status
            if since is not None:
                query &= t.created_at >= values.naive_utc(since)
            if until is not None:
                query &= t.created_at < values.naive_utc(until)
            if after is not None:
                created, row_id = after
                query &= (t.created_at < created) | ((t.created_at == created) & (t.id < row_id))
            rows = db(query).select(
                orderby=~t.created_at | ~t.id, limitby=(0, limit + 1)
            )
        records = [from_row(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = _encode_cursor(last.created_at, last.id)
        return records, next_cursor
