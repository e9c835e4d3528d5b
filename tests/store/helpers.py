"""Helpers for the store tests: a TCP proxy that can be cut, and database inspection."""

from __future__ import annotations

import contextlib
import socket
import threading

import psycopg2


class TcpProxy:
    """Forwards a local port to a target; ``stop()`` drops the listener and every connection.

    Lets a test take "the database" away and bring it back without touching PostgreSQL.
    """

    def __init__(self, target: tuple[str, int], port: int = 0):
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


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
