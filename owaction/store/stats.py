"""Execution statistics: counts by status and type, and durations over a window."""

from __future__ import annotations

import datetime as dt
import math

from owaction.store import values
from owaction.store.records import ACCEPTED, PENDING, STATUSES
from owaction.store.schema import TABLE
from owaction.store.session import Database


class Stats(Database):
    """Aggregates computed by the database, the same on SQLite and PostgreSQL."""

    def stats(self, *, window_seconds: int = 3600) -> dict:
        """Counts by status and type, in flight, and duration mean/p95 over the window."""
        since = values.sql_time(values.now() - dt.timedelta(seconds=window_seconds))
        p = self.placeholder
        with self.session() as db:
            by_status = dict(db.executesql(
                f'SELECT status, COUNT(*) FROM "{TABLE}" GROUP BY status'))  # noqa: S608
            by_type = dict(db.executesql(
                f'SELECT action_type, COUNT(*) FROM "{TABLE}" GROUP BY action_type'))  # noqa: S608
            window_where = f"created_at >= {p} AND duration_ms IS NOT NULL"
            count, mean = db.executesql(
                f'SELECT COUNT(*), AVG(duration_ms) FROM "{TABLE}" WHERE {window_where}',  # noqa: S608
                placeholders=(since,),
            )[0]
            window_total = db.executesql(
                f'SELECT COUNT(*) FROM "{TABLE}" WHERE created_at >= {p}',  # noqa: S608
                placeholders=(since,),
            )[0][0]
            p95 = self._p95(db, window_where, since, count)
        counts = {s: int(by_status.get(s, 0)) for s in STATUSES}
        return {
            "total": sum(int(v) for v in by_status.values()),
            "by_status": counts,
            "by_type": {k: int(v) for k, v in by_type.items()},
            "in_flight": counts[PENDING] + counts[ACCEPTED],
            "window_seconds": window_seconds,
            "window_total": int(window_total),
            "window_with_duration": int(count),
            "mean_duration_ms": None if mean is None else round(float(mean), 3),
            "p95_duration_ms": None if p95 is None else round(float(p95), 3),
        }

    def _p95(self, db, where: str, since: str, count: int) -> float | None:
        """Linear-interpolated 95th percentile, PostgreSQL's percentile_cont on both engines."""
        if not count:
            return None
        if self.is_postgres:
            return db.executesql(
                "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) "  # noqa: S608
                f'FROM "{TABLE}" WHERE {where}',
                placeholders=(since,),
            )[0][0]
        position = 0.95 * (count - 1)
        low = math.floor(position)
        rows = db.executesql(
            f'SELECT duration_ms FROM "{TABLE}" WHERE {where} '  # noqa: S608
            "ORDER BY duration_ms LIMIT 2 OFFSET ?",
            placeholders=(since, low),
        )
        found = [r[0] for r in rows]
        if len(found) == 1:
            return float(found[0])
        return found[0] + (found[1] - found[0]) * (position - low)
