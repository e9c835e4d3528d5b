"""Execution store: one row per execution in ``openwhisk_action_executions`` (PyDAL).

Works on SQLite and PostgreSQL. PyDAL creates and migrates the table; its migration files live
in ``folder`` (default: ``DATA_DIR/migrations``), except that for an absolute SQLite path PyDAL
keeps them beside the database file. Start-up migration
is serialised across processes (a PostgreSQL advisory lock, or a lock file beside the SQLite
database), so gunicorn workers and the gRPC process may all start at once.

Sessions are bounded per process: each store call is one *unit of work* that takes a slot of a
semaphore of ``pool_size`` (a gevent semaphore when gevent has patched ``threading``), borrows a
connection from PyDAL's pool, commits or rolls back, and gives the connection back. PyDAL's own
``pool_size`` only caps *idle* connections; together with the semaphore, at most ``pool_size``
connections are ever open per process. No connection is held between calls, so none is held
while the service waits on OpenWhisk.

Every database failure (refused, down, timed out, no slot within ``acquire_timeout``) raises
``StoreUnavailable``; the next call simply tries again, so the store recovers without a restart.

PyDAL pools idle connections per URL for the whole process, so use one store per database per
process (the bound above is per store). Raw SQL below interpolates only constants (the table
name, status names); every value travels as a placeholder.

``execution_id`` is ``secrets.token_hex(16)``: 128 random bits from the OS CSPRNG, so ids are
unique in practice (and the unique index enforces it) and cannot be guessed from one another.

Status lifecycle::

    pending -> accepted -> succeeded | failed | error | timeout | unknown
       \\______________________^  (a pending row may also be completed directly)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from owaction import tracing
from owaction.errors import Conflict, InvalidInput, Unavailable

log = logging.getLogger(__name__)

TABLE = "openwhisk_action_executions"

PENDING = "pending"
ACCEPTED = "accepted"
SUCCEEDED = "succeeded"
FAILED = "failed"
ERROR = "error"
TIMEOUT = "timeout"
UNKNOWN = "unknown"
STATUSES = (PENDING, ACCEPTED, SUCCEEDED, FAILED, ERROR, TIMEOUT, UNKNOWN)
IN_FLIGHT = (PENDING, ACCEPTED)
FINAL = (SUCCEEDED, FAILED, ERROR, TIMEOUT, UNKNOWN)
ACTION_TYPES = ("action", "async", "sequence", "web", "trigger", "command")

MAX_LIST_LIMIT = 500

# (index name, columns, unique). PyDAL's create_index has no IF NOT EXISTS, and indexes must be
# created idempotently by every process that starts, so these are issued as guarded statements.
INDEXES = (
    ("ux_owae_execution_id", ("execution_id",), True),
    ("ux_owae_caller_idempotency", ("caller", "idempotency_key"), True),
    ("ix_owae_activation_id", ("activation_id",), False),
    ("ix_owae_action_created", ("action_name", "created_at"), False),
    ("ix_owae_status", ("status",), False),
    ("ix_owae_created_at", ("created_at",), False),
    ("ix_owae_source_request", ("source", "request_id"), False),
)

# An arbitrary constant naming this module's migration lock among PostgreSQL advisory locks.
_PG_MIGRATION_LOCK = 0x6F77616374696F6E & 0x7FFFFFFFFFFFFFFF


class StoreUnavailable(Unavailable):
    """The database cannot be used right now (down, refused, timed out, no free session)."""

    code = "database_unavailable"


class DuplicateIdempotencyKey(Conflict):
    """``create_pending`` found an execution with the same caller and idempotency key."""

    code = "idempotency_key_exists"

    def __init__(self, existing: ExecutionRecord):
        super().__init__(
            "an execution with this idempotency key already exists",
            execution_id=existing.execution_id,
        )
        self.existing = existing


# --- records ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExecutionRecord:
    """One execution row; times are timezone-aware UTC, payload and result decoded JSON."""

    execution_id: str
    namespace: str
    action_name: str
    action_type: str
    payload: Any
    blocking: bool
    timeout: int | None
    activation_id: str | None
    result: Any
    duration_ms: int | None
    status: str
    success: bool | None
    error: str | None
    created_at: dt.datetime
    completed_at: dt.datetime | None
    source: str | None
    caller: str | None
    request_id: str | None
    idempotency_key: str | None
    request_hash: str | None
    status_code: int | None
    updated_at: dt.datetime | None
    trace_id: str | None
    cached: bool
    callback_url: str | None
    lease_owner: str | None
    lease_until: dt.datetime | None
    attempts: int
    callback_state: str | None = None  # pending | delivered | failed
    callback_attempts: int = 0
    callback_next_at: dt.datetime | None = None
    callback_status_code: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO-8601 UTC strings (``...Z``)."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, dt.datetime):
                out[key] = _iso(value)
        return out


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(ExecutionRecord))
_INSERT_COLUMNS = tuple(name for name in _RECORD_FIELDS if not name.startswith("callback_")
                        or name == "callback_url")
# A pooled connection used within this many seconds is not tested before reuse.
IDLE_CHECK_SECONDS = 5.0


def _sql_value(value: Any) -> Any:
    """A Python value as PyDAL stores it: booleans as 'T'/'F', times as UTC text."""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, dt.datetime):
        return _sql_time(value)
    return value


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> dt.datetime:
    """Naive UTC, whole seconds: the precision PyDAL stores a datetime with."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.replace(tzinfo=dt.UTC)


def _sql_time(value: dt.datetime) -> str:
    """A datetime as PyDAL writes it; both engines compare it correctly with stored values."""
    return _naive_utc(value).strftime("%Y-%m-%d %H:%M:%S")


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        # A row written by something other than this store; show it rather than fail the read.
        return text


def _record(row: Any) -> ExecutionRecord:
    values = {name: row[name] for name in _RECORD_FIELDS}
    values["payload"] = _loads(values["payload"])
    values["result"] = _loads(values["result"])
    for name in ("created_at", "completed_at", "updated_at", "lease_until", "callback_next_at"):
        values[name] = _aware(values[name])
    values["callback_attempts"] = values["callback_attempts"] or 0
    values["blocking"] = bool(values["blocking"])
    values["cached"] = bool(values["cached"])
    values["attempts"] = values["attempts"] or 0
    return ExecutionRecord(**values)


# --- cursors ------------------------------------------------------------------------------------


def _encode_cursor(created_at: dt.datetime, row_id: int) -> str:
    raw = json.dumps([_sql_time(created_at), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        dt.datetime.strptime(created, "%Y-%m-%d %H:%M:%S")
        if not isinstance(row_id, int) or isinstance(row_id, bool):
            raise ValueError
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput("cursor is not one this service issued", code="invalid_cursor") from None
    return created, row_id


# --- database plumbing --------------------------------------------------------------------------


def _normalise_url(url: str) -> str:
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


# --- the store ----------------------------------------------------------------------------------


class ExecutionStore:
    """Executions in SQLite or PostgreSQL, with bounded sessions per process."""

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
        self.database_url = _normalise_url(database_url)
        self.is_postgres = self.database_url.startswith("postgres://")
        self.pool_size = pool_size
        self.acquire_timeout = acquire_timeout
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.application_name = application_name
        self.folder = folder or self._default_folder()
        self._slots = _new_semaphore(pool_size)
        self._counts_lock = threading.Lock()
        self._in_use = 0
        self._waiting = 0
        self._ready_lock = threading.Lock()
        self._db = None
        self._closed = False
        self._unavailable = _unavailable_errors()
        self._integrity = _integrity_errors()
        self._last_used: dict[int, float] = {}
        # The two writes every call makes go out as plain SQL: PyDAL's query building costs more
        # CPU than the database does for them.
        self._p = "%s" if self.is_postgres else "?"
        columns = ", ".join(f'"{c}"' for c in _INSERT_COLUMNS)
        marks = ", ".join([self._p] * len(_INSERT_COLUMNS))
        self._insert_sql = f'INSERT INTO "{TABLE}" ({columns}) VALUES ({marks})'  # noqa: S608
        if self.is_postgres and _gevent_patched():
            _install_green_psycopg2(statement_timeout + connect_timeout + 5)

    @classmethod
    def from_settings(cls, settings) -> ExecutionStore:
        """A store for ``settings``: its URL, ``DB_POOL_SIZE``, ``DB_TIMEOUT``, ``DATA_DIR``."""
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
        return f"<ExecutionStore {kind} pool_size={self.pool_size}>"

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
        return db

    def _has_password(self) -> bool:
        from urllib.parse import urlsplit

        return bool(urlsplit(self.database_url).password)

    def migrate(self) -> None:
        """Create or migrate the table and its indexes; safe to run from many processes at once.

        Calling it is optional: the first unit of work migrates too.
        """
        with self.session():
            pass

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
                self._migrate(db)
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

    def _migrate(self, db) -> None:
        marker = os.path.join(self._migration_dir(), f"{db._uri_hash}_{TABLE}.table")
        existing = self._existing_columns(db)
        if not existing and os.path.exists(marker):
            # The database was replaced (a deleted SQLite file, a new PostgreSQL database)
            # but PyDAL's note that the table exists survived: without this it would never
            # create the table again.
            os.remove(marker)
        if existing and not os.path.exists(marker):
            # Another process (with another folder) created the table. Teach this folder's PyDAL
            # what exists, via a throwaway definition of the columns present, so the real
            # definition below only adds what is missing instead of re-creating the table.
            from pydal import DAL

            scratch = DAL(self.database_url, pool_size=0, folder=self.folder, attempts=1,
                          driver_args=self._driver_args(),
                          decode_credentials=self._has_password())
            try:
                _define(scratch, migrate=True, fake_migrate=True, only=existing)
            finally:
                scratch.close()
        _define(db, migrate=True)
        for name, columns, unique in INDEXES:
            cols = ", ".join(f'"{c}"' for c in columns)
            kind = "UNIQUE INDEX" if unique else "INDEX"
            db.executesql(f'CREATE {kind} IF NOT EXISTS "{name}" ON "{TABLE}" ({cols})')

    def _migration_dir(self) -> str:
        """Where PyDAL keeps this table's migration file: beside an absolute SQLite file."""
        if self.database_url.startswith("sqlite:///"):
            return os.path.dirname(self.database_url[len("sqlite://") :])
        return self.folder

    def _existing_columns(self, db) -> set[str]:
        if self.is_postgres:
            rows = db.executesql(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s",
                placeholders=(TABLE,),
            )
        else:
            rows = db.executesql(f'PRAGMA table_info("{TABLE}")')
            rows = [(r[1],) for r in rows]
        return {r[0] for r in rows}

    def close(self) -> None:
        """Close pooled connections; later calls reconnect."""
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

    def _table(self, db):
        return db[TABLE]

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
        now = _now()
        values = {
            "execution_id": secrets.token_hex(16),
            "namespace": namespace,
            "action_name": action_name,
            "action_type": action_type,
            "payload": _dumps(payload),
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
        }
        params = tuple(_sql_value(values[c]) for c in _INSERT_COLUMNS)
        try:
            self._write(self._insert_sql, params)
        except self._integrity as exc:
            mine = self.get(values["execution_id"])
            if mine is None or mine.request_hash != request_hash or mine.caller != caller:
                if idempotency_key is not None:
                    existing = self.find_by_idempotency_key(caller, idempotency_key)
                    if existing is not None:
                        raise DuplicateIdempotencyKey(existing) from exc
                raise
            # Else the first attempt's commit landed but its answer was lost: the row is ours.
        values["payload"] = payload
        for name in ("created_at", "updated_at"):
            values[name] = _aware(values[name])
        return ExecutionRecord(**values)

    def mark_accepted(
        self, execution_id: str, *, activation_id: str, status_code: int = 202
    ) -> bool:
        """``pending`` -> ``accepted``; False if the row was not pending."""
        p = self._p
        sql = (f'UPDATE "{TABLE}" SET status = {p}, activation_id = {p}, '  # noqa: S608
               f"status_code = {p}, updated_at = {p} WHERE execution_id = {p} AND status = {p}")
        return self._update(sql, (ACCEPTED, activation_id, status_code, _sql_time(_now()),
                                  execution_id, PENDING))

    def _autocommit(self, connection, on: bool) -> None:
        if self.is_postgres:
            if on and connection.get_transaction_status() != 0:  # not idle: a liveness test
                connection.rollback()  # ran in a transaction of its own; nothing to keep
            connection.autocommit = on
        else:
            # sqlite3: no isolation level means each statement is its own transaction.
            connection.isolation_level = None if on else ""

    def _update(self, sql: str, params: tuple) -> bool:
        """Run one UPDATE; True when it changed a row."""
        return self._write(sql, params) > 0

    def _write(self, sql: str, params: tuple) -> int:
        """One statement in its own transaction; the rows it changed.

        A pooled connection used moments ago is not tested first, so it may turn out dead (the
        server restarted). That failure rolled everything back, so the statement is tried once
        more, on a connection that is now tested first.
        """
        for attempt in (1, 2):
            try:
                with self.session() as db:
                    connection = db._adapter.connection
                    cursor = db._adapter.cursor
                    # One statement commits itself: one round trip instead of two. The
                    # session's commit then has no transaction to finish and sends nothing.
                    self._autocommit(connection, True)
                    try:
                        cursor.execute(sql, params)
                    finally:
                        self._autocommit(connection, False)
                    return cursor.rowcount
            except StoreUnavailable as exc:
                if attempt == 2 or not isinstance(exc.__cause__, self._unavailable):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

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
    ) -> bool:
        """Move an in-flight execution to a final status; False if it was already final.

        With ``lease_owner``, only the holder of the row's lease may complete it.
        """
        if status not in FINAL:
            raise ValueError(f"{status!r} is not a final status")
        now = _now()
        fields: dict[str, Any] = {
            "status": status, "success": bool(success), "result": _dumps(result),
            "duration_ms": duration_ms, "error": error, "completed_at": now, "updated_at": now,
            "lease_owner": None, "lease_until": None,
        }
        if activation_id is not None:
            fields["activation_id"] = activation_id
        if status_code is not None:
            fields["status_code"] = status_code
        p = self._p
        sets = ", ".join(f'"{name}" = {p}' for name in fields)
        where = f"execution_id = {p} AND status IN ({p}, {p})"
        params = [_sql_value(v) for v in fields.values()] + [execution_id, *IN_FLIGHT]
        if lease_owner is not None:
            where += f" AND lease_owner = {p}"
            params.append(lease_owner)
        return self._update(f'UPDATE "{TABLE}" SET {sets} WHERE {where}', tuple(params))  # noqa: S608

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
        now = _now()
        until = now + dt.timedelta(seconds=lease_seconds)
        states = f"status = '{ACCEPTED}'"
        params: list[Any] = []
        if pending_grace is not None:
            states = f"({states} OR (status = '{PENDING}' AND created_at < {{p}}))"
            params.append(_sql_time(now - dt.timedelta(seconds=pending_grace)))
        free = "(lease_until IS NULL OR lease_until < {p})"
        params.append(_sql_time(now))
        where = f"{states} AND {free}"
        set_clause = (
            "lease_owner = {p}, lease_until = {p}, attempts = COALESCE(attempts, 0) + 1, "
            "updated_at = {p}"
        )
        set_params = [owner, _sql_time(until), _sql_time(now)]
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
                    if db._adapter.cursor.rowcount == 1:
                        ids.append(row_id)
            if not ids:
                return []
            t = self._table(db)
            rows = db(t.id.belongs(ids)).select(orderby=t.id)
            return [_record(r) for r in rows]

    def extend_lease(self, execution_id: str, owner: str, seconds: float) -> bool:
        """Keep a leased row for ``seconds`` more (the worker's backoff before its next look)."""
        with self.session() as db:
            t = self._table(db)
            updated = db((t.execution_id == execution_id) & (t.lease_owner == owner)).update(
                lease_until=_now() + dt.timedelta(seconds=seconds), updated_at=_now()
            )
        return bool(updated)

    def release(self, execution_id: str, owner: str) -> bool:
        """Give back a lease before it expires (the activation is not final yet)."""
        with self.session() as db:
            t = self._table(db)
            updated = db((t.execution_id == execution_id) & (t.lease_owner == owner)).update(
                lease_owner=None, lease_until=None, updated_at=_now()
            )
        return bool(updated)

    def purge_idempotency(self, older_than: dt.datetime | float) -> int:
        """Forget idempotency keys of executions created before ``older_than``.

        ``older_than`` is a datetime or an age in seconds. Returns how many keys were dropped.
        """
        if isinstance(older_than, dt.datetime):
            cutoff = _naive_utc(older_than)
        else:
            cutoff = _now() - dt.timedelta(seconds=older_than)
        with self.session() as db:
            t = self._table(db)
            return db((t.idempotency_key != None) & (t.created_at < cutoff)).update(  # noqa: E711
                idempotency_key=None, updated_at=_now()
            )

    # -- reads -----------------------------------------------------------------------------------

    def get(self, execution_id: str) -> ExecutionRecord | None:
        with self.session() as db:
            t = self._table(db)
            row = db(t.execution_id == execution_id).select(limitby=(0, 1)).first()
        return _record(row) if row else None

    def find_by_idempotency_key(self, caller: str | None, key: str) -> ExecutionRecord | None:
        with self.session() as db:
            t = self._table(db)
            row = db((t.caller == caller) & (t.idempotency_key == key)).select(
                limitby=(0, 1)
            ).first()
        return _record(row) if row else None

    def find_cached(self, action_name: str, request_hash: str, *,
                    max_age: float) -> ExecutionRecord | None:
        """The newest successful execution of the same request within ``max_age`` seconds."""
        since = _now() - dt.timedelta(seconds=max_age)
        with self.session() as db:
            t = self._table(db)
            row = db((t.action_name == action_name) & (t.request_hash == request_hash)
                     & (t.status == SUCCEEDED) & (t.created_at >= since)).select(
                orderby=~t.id, limitby=(0, 1)
            ).first()
        return _record(row) if row else None

    def forget_idempotency_key(self, execution_id: str) -> bool:
        """Free an execution's key (it certainly never reached OpenWhisk, so a retry may run)."""
        with self.session() as db:
            t = self._table(db)
            updated = db(t.execution_id == execution_id).update(
                idempotency_key=None, updated_at=_now()
            )
        return bool(updated)

    def due_callbacks(self, *, limit: int = 50, claim_seconds: float = 60) -> list:
        """Final executions whose callback is due, each claimed so one deliverer sends it."""
        now = _now()
        claimed = []
        with self.session() as db:
            t = self._table(db)
            query = ((t.callback_url != None) & t.status.belongs(FINAL)  # noqa: E711
                     & ((t.callback_state == None) | (t.callback_state == "pending"))  # noqa: E711
                     & ((t.callback_next_at == None) | (t.callback_next_at <= now)))  # noqa: E711
            for row in db(query).select(orderby=t.id, limitby=(0, limit)):
                # A conditional update is the claim: another deliverer that read the same row
                # updates nothing.
                taken = db((t.id == row.id) & (
                    (t.callback_next_at == row.callback_next_at) if row.callback_next_at
                    else (t.callback_next_at == None))).update(  # noqa: E711
                    callback_state="pending",
                    callback_next_at=now + dt.timedelta(seconds=claim_seconds))
                if taken:
                    claimed.append(_record(row))
        return claimed

    def record_callback(self, execution_id: str, *, delivered: bool, status_code: int | None,
                        retry_in: float | None) -> None:
        """The outcome of one delivery; ``retry_in`` None with no success means give up."""
        state = "delivered" if delivered else ("pending" if retry_in is not None else "failed")
        next_at = _now() + dt.timedelta(seconds=retry_in) if retry_in is not None else None
        with self.session() as db:
            t = self._table(db)
            row = db(t.execution_id == execution_id).select(t.callback_attempts).first()
            attempts = ((row.callback_attempts if row else 0) or 0) + 1
            db(t.execution_id == execution_id).update(
                callback_state=state, callback_attempts=attempts, callback_next_at=next_at,
                callback_status_code=status_code, updated_at=_now())

    def find_by_request_id(self, source: str, request_id: str) -> ExecutionRecord | None:
        """The newest execution ``source`` recorded under ``request_id`` (router session id)."""
        with self.session() as db:
            t = self._table(db)
            row = db((t.source == source) & (t.request_id == request_id)).select(
                orderby=~t.id, limitby=(0, 1)
            ).first()
        return _record(row) if row else None

    def list(
        self,
        *,
        action_name: str | None = None,
        action_type: str | None = None,
        status: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 50,
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
            t = self._table(db)
            query = t.id > 0
            if action_name is not None:
                query &= t.action_name == action_name
            if action_type is not None:
                query &= t.action_type == action_type
            if status is not None:
                query &= t.status == status
            if since is not None:
                query &= t.created_at >= _naive_utc(since)
            if until is not None:
                query &= t.created_at < _naive_utc(until)
            if after is not None:
                created, row_id = after
                created_dt = dt.datetime.strptime(created, "%Y-%m-%d %H:%M:%S")
                query &= (t.created_at < created_dt) | (
                    (t.created_at == created_dt) & (t.id < row_id)
                )
            rows = db(query).select(
                orderby=~t.created_at | ~t.id, limitby=(0, limit + 1)
            )
        records = [_record(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = _encode_cursor(last.created_at, last.id)
        return records, next_cursor

    def stats(self, *, window_seconds: int = 3600) -> dict:
        """Counts by status and type, in flight, and duration mean/p95 over the window."""
        since = _sql_time(_now() - dt.timedelta(seconds=window_seconds))
        p = "%s" if self.is_postgres else "?"
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
        values = [r[0] for r in db.executesql(
            f'SELECT duration_ms FROM "{TABLE}" WHERE {where} '  # noqa: S608
            "ORDER BY duration_ms LIMIT 2 OFFSET ?",
            placeholders=(since, low),
        )]
        if len(values) == 1:
            return float(values[0])
        return values[0] + (values[1] - values[0]) * (position - low)

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


def _define(db, *, migrate: bool = False, fake_migrate: bool = False, only=None) -> None:
    """Define the table on ``db``; ``only`` restricts it to the named columns."""
    from pydal import Field

    fields = [
        Field("execution_id", "string", length=64, notnull=True),
        Field("namespace", "string", length=256),
        Field("action_name", "string", length=600, notnull=True),
        Field("action_type", "string", length=16, notnull=True),
        Field("payload", "text"),
        Field("blocking", "boolean"),
        Field("timeout", "integer"),
        Field("activation_id", "string", length=64),
        Field("result", "text"),
        Field("duration_ms", "integer"),
        Field("status", "string", length=16, notnull=True),
        Field("success", "boolean"),
        Field("error", "text"),
        Field("created_at", "datetime", notnull=True),
        Field("completed_at", "datetime"),
        Field("source", "string", length=32),
        Field("caller", "string", length=128),
        Field("request_id", "string", length=128),
        Field("idempotency_key", "string", length=255),
        Field("request_hash", "string", length=128),
        Field("status_code", "integer"),
        Field("updated_at", "datetime"),
        Field("trace_id", "string", length=128),
        Field("cached", "boolean", default=False),
        Field("callback_url", "string", length=2048),
        Field("lease_owner", "string", length=128),
        Field("lease_until", "datetime"),
        Field("attempts", "integer", default=0),
        Field("callback_state", "string", length=16),
        Field("callback_attempts", "integer", default=0),
        Field("callback_next_at", "datetime"),
        Field("callback_status_code", "integer"),
    ]
    if only is not None:
        fields = [f for f in fields if f.name in only]
    db.define_table(TABLE, *fields, migrate=migrate, fake_migrate=fake_migrate)
