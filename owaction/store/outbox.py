"""The callback outbox: which final executions still owe their caller a callback."""

from __future__ import annotations

import datetime as dt

from owaction.store import values
from owaction.store.records import IN_FLIGHT, ExecutionRecord, from_row
from owaction.store.schema import OWED_CALLBACK, TABLE
from owaction.store.session import Database


class CallbackOutbox(Database):
    """Due callbacks are claimed so one deliverer sends each; outcomes are recorded."""

    @staticmethod
    def due(db, now: dt.datetime):
        """The set of final executions whose callback is due at ``now``: ``OWED_CALLBACK`` (the
        very text of its partial index, which SQLite needs to see to use it), then the
        execution's end and the retry time.

        "Final" is written as "not in flight": a status the index on status could serve would
        lead SQLite's planner (it keeps no statistics) to read every final row through that
        index instead of the few owed callbacks."""
        t = db[TABLE]
        return db(~t.status.belongs(IN_FLIGHT)
                  & ((t.callback_next_at == None) | (t.callback_next_at <= now)))(  # noqa: E711
            OWED_CALLBACK)

    def due_callbacks(self, *, limit: int = 50, claim_seconds: float = 60) -> list[ExecutionRecord]:
        """Final executions whose callback is due, each claimed so one deliverer sends it."""
        now = values.now()
        claimed = []
        with self.session() as db:
            t = db[TABLE]
            for row in self.due(db, now).select(orderby=t.id, limitby=(0, limit)):
                # A conditional update is the claim: another deliverer that read the same row
                # updates nothing.
                taken = db((t.id == row.id) & (
                    (t.callback_next_at == row.callback_next_at) if row.callback_next_at
                    else (t.callback_next_at == None))).update(  # noqa: E711
                    callback_state="pending",
                    callback_next_at=now + dt.timedelta(seconds=claim_seconds))
                if taken:
                    claimed.append(from_row(row))
        return claimed

    def record_callback(self, execution_id: str, *, delivered: bool, status_code: int | None,
                        retry_in: float | None) -> None:
        """The outcome of one delivery; ``retry_in`` None with no success means give up."""
        state = "delivered" if delivered else ("pending" if retry_in is not None else "failed")
        next_at = values.now() + dt.timedelta(seconds=retry_in) if retry_in is not None else None
        with self.session() as db:
            t = db[TABLE]
            row = db(t.execution_id == execution_id).select(t.callback_attempts).first()
            attempts = ((row.callback_attempts if row else 0) or 0) + 1
            db(t.execution_id == execution_id).update(
                callback_state=state, callback_attempts=attempts, callback_next_at=next_at,
                callback_status_code=status_code, updated_at=values.now())
