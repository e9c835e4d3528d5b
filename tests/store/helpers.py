"""Helpers for the store tests: a session held elsewhere, and database inspection."""

from __future__ import annotations

import contextlib
import threading

import psycopg2


@contextlib.contextmanager
def held_session(store):
    """One of the store's sessions held by another thread until the block ends."""
    entered, leave = threading.Event(), threading.Event()

    def hold():
        with store.session():
            entered.set()
            leave.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(10)
    try:
        yield
    finally:
        leave.set()
        holder.join(10)


def pg_connections(admin_url: str, application_name: str) -> int:
    """How many connections carry ``application_name``, per pg_stat_activity."""
    with contextlib.closing(psycopg2.connect(admin_url, connect_timeout=3)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (application_name,),
            )
            return cur.fetchone()[0]


class ConnectionSampler:
    """Samples pg_stat_activity from its own connection until stopped; keeps the maximum."""

    def __init__(self, url: str, application_name: str, database: str):
        self._conn = psycopg2.connect(url, connect_timeout=3)
        self._conn.autocommit = True
        self.application_name = application_name
        self.database = database
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        self._conn.close()

    def _run(self) -> None:
        with self._conn.cursor() as cur:
            while not self._stop.is_set():
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = %s AND application_name = %s",
                    (self.database, self.application_name),
                )
                self.samples.append(cur.fetchone()[0])
                self._stop.wait(0.005)

    @property
    def peak(self) -> int:
        return max(self.samples, default=0)
