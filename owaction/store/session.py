"""The database session and pool: the only module that touches PyDAL's internals.

Sessions are bounded per process: each store call is one *unit of work* that takes a slot of a
semaphore of ``pool_size`` (a gevent semaphore when gevent has patched ``threading``), borrows a
connection from PyDAL's pool, commits or rolls back, and gives the connection back. PyDAL's own
``pool_size`` only caps *idle* connections; together with the semaphore, at most ``pool_size``
connections are ever open per process. No connection is held between calls, so none is held
while the service waits on OpenWhisk.

Every database failure (refused, down, timed out, no slot within ``acquire_timeout``) raises
``StoreUnavailable``; the next call simply tries again, so the store recovers without a restart.

PyDAL pools idle connections per URL for the whole process, so use one store per database per
process (the bound above is per store). Start-up migration is serialised across processes (a
PostgreSQL advisory lock, or a lock file beside the SQLite database), so gunicorn workers and
the gRPC process may all start at once. PyDAL's migration files live in ``folder`` (default:
``DATA_DIR/migrations``), except that for an absolute SQLite path PyDAL keeps them beside the
database file.

Every single-statement write (the pending insert, the acceptance, the completion) goes through
``Database.write`` to the process's ``GroupWriter`` (``owaction.store.writer``), which commits the
writes of concurrent callers together and, for SQLite under gevent, off the gevent hub; every
other unit of work goes through ``Database.session``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from owaction import tracing
from owaction.store import schema
from owaction.store.errors import StoreUnavailable
from owaction.store.writer import GroupWriter

log = logging.getLogger(__name__)

# A pooled connection used within this many seconds is not tested before reuse.
IDLE_CHECK_SECONDS = 5.0

# An arbitrary constant naming this module's migration lock among PostgreSQL advisory locks.
_PG_MIGRATION_LOCK = 0x6F77616374696F6E & 0x7FFFFFFFFFFFFFFF


# PyDAL names each adapter's per-thread connection and cursor slots after the adapter and the
# process, and computes the names (a getpid system call each) on every access: 14 times per
# statement. The process id only changes in a forked child, so it is kept and renewed there.
_PID = os.getpid()


def _renew_pid() -> None:
    global _PID
    _PID = os.getpid()


os.register_at_fork(after_in_child=_renew_pid)
_KEPT_NAMES: dict[type, type] = {}


def _keep_slot_names(adapter) -> None:
    """Give ``adapter`` slot names made from the kept process id (the same names otherwise)."""
    base = type(adapter)
    named = _KEPT_NAMES.get(base)
    if named is None:
        named = type(base.__name__, (base,), {
            "_connection_uname_": property(lambda self: f"_pydal_connection_{id(self)}_{_PID}"),
            "_cursors_uname_": property(lambda self: f"_pydal_cursor_{id(self)}_{_PID}"),
        })
        _KEPT_NAMES[base] = named
    adapter.__class__ = named


def normalise_url(url: str) -> str:
    for prefix in ("postgresql+psycopg2://", "postgresql://"):
        if url.startswith(prefix):
            return "postgres://" + url[len(prefix) :]
    if url.startswith(("postgres://", "sqlite://")):
        return url
    raise ValueError("database_url must be a sqlite:// or postgresql:// URL")


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey and monkey.is_module_patched("threading"))


def _new_semaphore(size: int):
    if _gevent_patched():
        from gevent.lock import BoundedSemaphore

        return BoundedSemaphore(size)
    return threading.BoundedSemaphore(size)


def _check_pydal_locals() -> None:
    """PyDAL keeps connections in a thread-local made at import; under gevent it must be green."""
    if not _gevent_patched():
        return
    from gevent.local import local as green_local
    from pydal._globals import THREAD_LOCAL

    if not isinstance(THREAD_LOCAL, green_local):
        raise RuntimeError(
            "pydal was imported before gevent.monkey.patch_all(); its connections would be "
            "shared between greenlets. Patch first (the REST entry point does)."
        )


def _install_green_psycopg2(wait_timeout: float) -> None:
    """Under gevent, make psycopg2 yield to other greenlets while it waits on the server.

    Without this every query blocks the whole worker. A wait longer than ``wait_timeout`` means
    the server is gone (queries are bounded by statement_timeout), so it fails the call.
    """
    import psycopg2
    from gevent.socket import wait_read, wait_write
    from psycopg2 import extensions

    if extensions.get_wait_callback() is not None:
        return

    def wait(conn, timeout=None):
        while True:
            state = conn.poll()
            try:
                if state == extensions.POLL_OK:
                    return
                if state == extensions.POLL_READ:
                    wait_read(conn.fileno(), timeout=wait_timeout)
                elif state == extensions.POLL_WRITE:
                    wait_write(conn.fileno(), timeout=wait_timeout)
                else:
                    raise psycopg2.OperationalError(f"bad state from poll: {state}")
            except OSError as exc:  # gevent's timeout is a socket.timeout, an OSError
                raise psycopg2.OperationalError(f"database did not answer: {exc}") from exc

    extensions.set_wait_callback(wait)


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlite3.OperationalError, OSError]
    try:
        import psycopg2
    except ImportError:  # psycopg2 is only needed for PostgreSQL URLs
        pass
    else:
        errors += [psycopg2.OperationalError, psycopg2.InterfaceError]
        errors.append(psycopg2.errors.QueryCanceled)  # statement_timeout
    return tuple(errors)


def _integrity_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlite3.IntegrityError]
    try:
        import psycopg2
    except ImportError:  # psycopg2 is only needed for PostgreSQL URLs
        pass
    else:
        errors.append(psycopg2.IntegrityError)
    return tuple(errors)


class Database:
    """Bounded, self-healing units of work on one SQLite or PostgreSQL database."""

    def __init__(
        self,
        database_url: str,
        *,
        pool_size: int = 10,
        acquire_timeout: float = 5.0,
        folder: str | None = None,
        connect_timeout: float = 3.0,
        statement_timeout: float = 30.0,
        application_name: str = "owaction",
    ):
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        _check_pydal_locals()
        self.database_url = normalise_url(database_url)
        self.is_postgres = self.database_url.startswith("postgres://")
        self.pool_size = pool_size
        self.acquire_timeout = acquire_timeout
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.application_name = application_name
        self.folder = folder or self._default_folder()
        # The placeholder raw SQL uses for values on this engine.
        self.placeholder = "%s" if self.is_postgres else "?"
        self.integrity_errors = _integrity_errors()
        self._slots = _new_semaphore(pool_size)
        self._counts_lock = threading.Lock()
        self._in_use = 0
        self._waiting = 0
        self._ready_lock = threading.Lock()
        self._db = None
        self._unavailable = _unavailable_errors()
        self._last_used: dict[int, float] = {}
        if self.is_postgres and _gevent_patched():
            _install_green_psycopg2(statement_timeout + connect_timeout + 5)
        # Every single-statement write goes through one writer per database (group commit).
        self.writer = GroupWriter(self, green=_gevent_patched())

    @classmethod
    def from_settings(cls, settings):
        """One for ``settings``: its URL, ``DB_POOL_SIZE``, ``DB_TIMEOUT``, ``DATA_DIR``."""
        data_dir = settings.data_dir or os.path.join(os.getcwd(), "data")
        os.makedirs(data_dir, exist_ok=True)
        url = settings.database_url or "sqlite://" + os.path.join(data_dir, "owaction.sqlite")
        return cls(
            url,
            pool_size=settings.db_pool_size,
            acquire_timeout=settings.db_timeout,
            folder=os.path.join(data_dir, "migrations"),
        )

    def _default_folder(self) -> str:
        if self.is_postgres:
            data_dir = os.environ.get("DATA_DIR") or os.path.join(os.getcwd(), "data")
            return os.path.join(data_dir, "migrations")
        path = self.database_url[len("sqlite://") :]
        return os.path.join(os.path.dirname(os.path.abspath(path)), "migrations")

    def __repr__(self) -> str:
        # The URL may carry a password.
        kind = "postgres" if self.is_postgres else "sqlite"
        return f"<{type(self).__name__} {kind} pool_size={self.pool_size}>"

    # -- metrics ---------------------------------------------------------------------------------

    @property
    def sessions_in_use(self) -> int:
        return self._in_use

    @property
    def sessions_waiting(self) -> int:
        return self._waiting

    # -- connection and migration ----------------------------------------------------------------

    def _driver_args(self) -> dict:
        if self.is_postgres:
            return {
                # libpq counts whole seconds and treats less than 2 as 2.
                "connect_timeout": max(2, math.ceil(self.connect_timeout)),
                "options": f"-c statement_timeout={int(self.statement_timeout * 1000)}",
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
                "application_name": self.application_name,
            }
        # Writers from several processes wait this long for SQLite's file lock before failing.
        return {"timeout": self.acquire_timeout}

    def _probe(self) -> None:
        """Fail fast when the database is down: PyDAL would sleep a second before giving up."""
        if not self.is_postgres:
            path = self.database_url[len("sqlite://") :]
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise StoreUnavailable(f"SQLite directory {directory} does not exist")
            return
        import psycopg2

        params = self._pg_params()
        conn = psycopg2.connect(**params, **self._driver_args())
        conn.close()

    def _pg_params(self) -> dict:
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(self.database_url)
        params = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 5432,
                  "dbname": unquote(parts.path.lstrip("/"))}
        if parts.username:
            params["user"] = unquote(parts.username)
        if parts.password:
            params["password"] = unquote(parts.password)
        return params

    def _connect_dal(self):
        from pydal import DAL

        os.makedirs(self.folder, exist_ok=True)
        db = DAL(
            self.database_url,
            pool_size=self.pool_size,
            folder=self.folder,
            attempts=1,
            driver_args=self._driver_args(),
            migrate=True,
            # Lets a password hold URL-escaped characters; PyDAL fails on None without one.
            decode_credentials=self._has_password(),
        )
        # _check_out tests idle connections itself; PyDAL would ping before every use.
        db._adapter.check_active_connection = False
        _keep_slot_names(db._adapter)
        return db

    def _has_password(self) -> bool:
        from urllib.parse import urlsplit

        return bool(urlsplit(self.database_url).password)

    @contextlib.contextmanager
    def scratch_dal(self) -> Iterator[Any]:
        """A throwaway, unpooled DAL on the same database and migrations folder."""
        from pydal import DAL

        scratch = DAL(self.database_url, pool_size=0, folder=self.folder, attempts=1,
                      driver_args=self._driver_args(), decode_credentials=self._has_password())
        try:
            yield scratch
        finally:
            scratch.close()

    def migration_marker(self, db, table: str) -> str:
        """The file in which PyDAL notes that ``table`` exists (beside an absolute SQLite file)."""
        if self.database_url.startswith("sqlite:///"):
            folder = os.path.dirname(self.database_url[len("sqlite://") :])
        else:
            folder = self.folder
        return os.path.join(folder, f"{db._uri_hash}_{table}.table")

    def migrate(self) -> None:
        """Create or migrate the table and its indexes; safe to run from many processes at once.

        Calling it is optional: the first unit of work migrates too.
        """
        with self.session():
            pass

    def warm_up(self) -> None:
        """At a process's start, do what its first call would: open (and migrate) the database
        and its writer, so that the first call is not slower than the next and the memory they
        take counts in the idle process. A database that is down is only logged: every call
        tries again."""
        try:
            self.migrate()
            self.writer.warm_up()
        except (StoreUnavailable, sqlite3.Error) as exc:
            log.info("database not opened at start (%s); the first call will try again", exc)

    def _ensure_ready(self):
        db = self._db
        if db is not None:
            return db
        with self._ready_lock:
            if self._db is None:
                self._db = self._build()
            return self._db

    def _build(self):
        self._probe()
        lock_file = None if self.is_postgres else self._sqlite_lock()
        try:
            try:
                db = self._connect_dal()
            except RuntimeError as exc:
                # PyDAL reports a failed connect as RuntimeError("Failure to connect ...").
                log.warning("database connection failed", exc_info=True)
                raise StoreUnavailable("database unavailable: cannot connect") from exc
            migrated = False
            try:
                if self.is_postgres:
                    # Session-level: held across the commits PyDAL makes while migrating.
                    db.executesql("SELECT pg_advisory_lock(%s)", placeholders=(
                        _PG_MIGRATION_LOCK,))
                else:
                    # WAL lets readers in other processes proceed while one process writes;
                    # it must be set outside a transaction, so before anything else.
                    db.executesql("PRAGMA journal_mode=WAL")
                schema.migrate(self, db)
                db.commit()
                migrated = True
            finally:
                if not migrated:
                    with contextlib.suppress(*self._unavailable):
                        db.rollback()
                if self.is_postgres:
                    # Unlocked before the connection goes back to the pool, where it would
                    # otherwise keep every other process waiting.
                    with contextlib.suppress(*self._unavailable):
                        db.executesql("SELECT pg_advisory_unlock(%s)", placeholders=(
                            _PG_MIGRATION_LOCK,))
                        db.commit()
                (self._commit if migrated else self._rollback)(db)
        finally:
            if lock_file is not None:
                lock_file.close()  # releases the flock
        return db

    def _sqlite_lock(self):
        import fcntl

        path = self.database_url[len("sqlite://") :]
        handle = open(os.path.abspath(path) + ".migrate.lock", "a")  # noqa: SIM115 - closed by caller
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def close(self) -> None:
        """Close pooled connections and the writer's; later calls reconnect."""
        self.writer.close()
        with self._ready_lock:
            db, self._db = self._db, None
        if db is None:
            return
        from pydal.connection import ConnectionPool

        with contextlib.suppress(*self._unavailable):
            db._adapter.close("rollback")
        pool = ConnectionPool.POOLS.get(db._adapter.uri, [])
        while pool:
            conn = pool.pop()
            with contextlib.suppress(*self._unavailable):
                conn.close()

    # -- unit of work ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self, *, timeout: float | None = None) -> Iterator[Any]:
        """One unit of work: a bounded session, committed on success, rolled back on error.

        Yields the PyDAL ``DAL``. Its connection is returned to the pool at the end, so never
        call OpenWhisk (or wait on anything slow) inside.
        """
        with tracing.span("db session",
                          **{"db.system": "postgresql" if self.is_postgres else "sqlite"}):
            with self._session(timeout) as db:
                yield db

    @contextlib.contextmanager
    def _session(self, timeout: float | None) -> Iterator[Any]:
        wait = self.acquire_timeout if timeout is None else timeout
        with self._counts_lock:
            self._waiting += 1
        try:
            got = self._slots.acquire(timeout=wait)
        finally:
            with self._counts_lock:
                self._waiting -= 1
        if not got:
            raise StoreUnavailable(f"no database session free within {wait:g} s", retry_after=1)
        with self._counts_lock:
            self._in_use += 1
        try:
            try:
                db = self._ensure_ready()
                self._check_out(db)
            except self._unavailable as exc:
                self._last_used.clear()
                raise StoreUnavailable("database unavailable", retry_after=1) from exc
            try:
                yield db
                self._commit(db)
            except self._unavailable as exc:
                # A connection died: the server may have restarted, so every pooled connection
                # is tested before its next use.
                self._last_used.clear()
                self._rollback(db)
                raise StoreUnavailable("database unavailable", retry_after=1) from exc
            except BaseException:
                self._rollback(db)
                raise
        finally:
            with self._counts_lock:
                self._in_use -= 1
            self._slots.release()

    @staticmethod
    def _has_connection(adapter) -> bool:
        from pydal._globals import THREAD_LOCAL

        return getattr(THREAD_LOCAL, adapter._connection_uname_, None) is not None

    def _check_out(self, db) -> None:
        """Take a pooled connection, testing it only when it has sat idle a while.

        PyDAL would send ``SELECT 1`` before every use of a pooled connection, a round trip per
        unit of work; a connection used moments ago is alive, so only idle ones are tested (a
        server restart or an idle timeout is what kills connections). A dead one is dropped and
        the next one (or a new connection) is tried.
        """
        adapter = db._adapter
        for _ in range(self.pool_size + 1):
            connection = adapter.get_connection()
            last = self._last_used.get(id(connection))
            if last is not None and time.monotonic() - last < IDLE_CHECK_SECONDS:
                return
            try:
                adapter.test_connection()
                if not self.is_postgres:
                    # With WAL, NORMAL syncs at checkpoints rather than on every commit: a
                    # commit survives a crash of the process, though not a power cut.
                    # PostgreSQL is the production database; SQLite is the embedded default.
                    adapter.execute("PRAGMA synchronous=NORMAL")
                return
            except self._unavailable:
                self._last_used.pop(id(connection), None)
                with contextlib.suppress(Exception):
                    connection.close()
                adapter.set_connection(None)
        adapter.test_connection()  # still failing: let the caller report it

    def _commit(self, db) -> None:
        adapter = db._adapter
        if not self._has_connection(adapter):
            return
        # Committed here rather than by adapter.close("commit"), which swallows a failed commit.
        adapter.commit()
        self._last_used[id(adapter.connection)] = time.monotonic()
        adapter.close(action=None)  # back to PyDAL's pool

    def _rollback(self, db) -> None:
        adapter = db._adapter
        if not self._has_connection(adapter):
            return
        try:
            # On failure PyDAL closes the connection instead of pooling it.
            adapter.close("rollback")
        except Exception:  # noqa: BLE001 - a broken connection: drop it, the next call reconnects
            log.debug("dropping a broken database connection", exc_info=True)
            with contextlib.suppress(Exception):
                adapter.connection.close()
            adapter.set_connection(None)

    @staticmethod
    def rowcount(db) -> int:
        """How many rows the session's last statement changed."""
        return db._adapter.cursor.rowcount

    # -- single statements -----------------------------------------------------------------------

    def _autocommit(self, connection, on: bool) -> None:
        if self.is_postgres:
            if on and connection.get_transaction_status() != 0:  # not idle: a liveness test
                connection.rollback()  # ran in a transaction of its own; nothing to keep
            connection.autocommit = on
        else:
            # sqlite3: no isolation level means each statement is its own transaction.
            connection.isolation_level = None if on else ""

    @contextlib.contextmanager
    def _statement(self) -> Iterator[Any]:
        """A session's cursor for one statement that commits itself: one round trip instead of
        two. The session's commit then has no transaction to finish and sends nothing."""
        with self.session() as db:
            connection = db._adapter.connection
            self._autocommit(connection, True)
            try:
                yield db._adapter.cursor
            finally:
                self._autocommit(connection, False)

    def select_one(self, sql: str, params: tuple) -> tuple | None:
        """The first row of one SELECT, run outside a transaction (no COMMIT to send)."""
        with self._statement() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    def write(self, sql: str, params: tuple, *, durable: bool = True) -> int:
        """One statement, committed (in a transaction shared with the statements of concurrent
        callers: ``writer``; ``durable=False`` for a completion, see there); the rows it changed."""
        return self.writer.write(sql, params, durable=durable)

    def write_alone(self, sql: str, params: tuple) -> int:
        """One statement in its own transaction; the rows it changed."""
        return self._alone(sql, params, lambda cursor: cursor.rowcount)

    def write_returning(self, sql: str, params: tuple) -> tuple:
        """One statement in its own transaction; the row it returns (the writer's batches)."""
        return self._alone(sql, params, lambda cursor: cursor.fetchone())

    def _alone(self, sql: str, params: tuple, answer):
        """Run one self-committing statement and give ``answer(cursor)``.

        A pooled connection used moments ago is not tested first, so it may turn out dead (the
        server restarted). That failure rolled everything back, so the statement is tried once
        more, on a connection that is now tested first.
        """
        for attempt in (1, 2):
            try:
                with self._statement() as cursor:
                    cursor.execute(sql, params)
                    return answer(cursor)
            except StoreUnavailable as exc:
                if attempt == 2 or not isinstance(exc.__cause__, self._unavailable):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def ping(self, timeout: float = 1.0) -> bool:
        """True when a ``SELECT 1`` answers within about ``timeout`` seconds."""
        started = time.monotonic()
        try:
            with self.session(timeout=timeout) as db:
                if self.is_postgres:
                    remaining = max(0.1, timeout - (time.monotonic() - started))
                    db.executesql(f"SET LOCAL statement_timeout = {int(remaining * 1000)}")
                db.executesql("SELECT 1")
        except StoreUnavailable:
            return False
        return True
