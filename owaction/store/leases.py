"""Leases: the worker claims in-flight executions, extends and releases its claim."""

from __future__ import annotations

import datetime as dt
from typing import Any

from owaction.store import values
from owaction.store.records import ACCEPTED, PENDING, ExecutionRecord, from_row
from owaction.store.schema import TABLE
from owaction.store.session import Database


class Leases(Database):
    """No row is leased to two owners at once; an expired lease may be claimed again."""

    def claim_accepted(
        self,
        owner: str,
        *,
        lease_seconds: float = 60,
        limit: int = 50,
        pending_grace: float | None = None,
    ) -> list[ExecutionRecord]:
        """Lease up to ``limit`` in-flight rows for ``owner``; no row is leased to two owners.

        Claims ``accepted`` rows, and ``pending`` rows older than ``pending_grace`` seconds
        (left by a crashed process) when it is given. Expired leases may be claimed again.
        Each claim increments ``attempts``.
        """
        now = values.now()
        until = now + dt.timedelta(seconds=lease_seconds)
        states = f"status = '{ACCEPTED}'"
        params: list[Any] = []
        if pending_grace is not None:
            states = f"({states} OR (status = '{PENDING}' AND created_at < {{p}}))"
            params.append(values.sql_time(now - dt.timedelta(seconds=pending_grace)))
        free = "(lease_until IS NULL OR lease_until < {p})"
        params.append(values.sql_time(now))
        where = f"{states} AND {free}"
        set_clause = (
            "lease_owner = {p}, lease_until = {p}, attempts = COALESCE(attempts, 0) + 1, "
            "updated_at = {p}"
        )
        set_params = [owner, values.sql_time(until), values.sql_time(now)]
        with self.session() as db:
            if self.is_postgres:
                sql = (
                    f'UPDATE "{TABLE}" SET {set_clause} WHERE id IN ('  # noqa: S608
                    f'SELECT id FROM "{TABLE}" WHERE {where} ORDER BY id LIMIT {{p}} '
                    "FOR UPDATE SKIP LOCKED) RETURNING id"
                ).replace("{p}", "%s")
                rows = db.executesql(sql, placeholders=(*set_params, *params, int(limit)))
                ids = [r[0] for r in rows]
            else:
                # SQLite serialises writers, so a conditional UPDATE per row is atomic: a row
                # another process leased meanwhile no longer matches and updates nothing.
                select = f'SELECT id FROM "{TABLE}" WHERE {where} ORDER BY id LIMIT ?'  # noqa: S608
                candidates = db.executesql(select.replace("{p}", "?"),
                                           placeholders=(*params, int(limit)))
                update = f'UPDATE "{TABLE}" SET {set_clause} WHERE id = ? AND {where}'  # noqa: S608
                update = update.replace("{p}", "?")
                ids = []
                for (row_id,) in candidates:
                    db.executesql(update, placeholders=(*set_params, row_id, *params))
                    if self.rowcount(db) == 1:
                        ids.append(row_id)
            if not ids:
                return []
            t = db[TABLE]
            rows = db(t.id.belongs(ids)).select(orderby=t.id)
            return [from_row(r) for r in rows]

    def extend_lease(self, execution_id: str, owner: str, seconds: float) -> bool:
        """Keep a leased row for ``seconds`` more (the worker's backoff before its next look)."""
        with self.session() as db:
            t = db[TABLE]
            updated = db((t.execution_id == execution_id) & (t.lease_owner == owner)).update(
                lease_until=values.now() + dt.timedelta(seconds=seconds),
                updated_at=values.now())
        return bool(updated)
