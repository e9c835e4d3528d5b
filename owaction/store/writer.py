"""Group commit: the single-statement writes of concurrent callers (pending inserts, acceptances,
completions) go to the database together, in one transaction.

A caller hands its statement over and waits until the transaction holding it has committed, so a
pending row is durable before OpenWhisk is called and a completion before the reply, exactly as
with a write of its own; whoever arrives while every writer is busy goes into a next one. No
thread or greenlet of its own: a caller that finds a writer's *turn* free takes it and writes the
queue on behalf of everyone waiting, then hands the turn to the first caller still waiting
without one. A process has ``writers`` turns: one on SQLite (one writer connection; SQLite writes
one transaction at a time anyway), up to ``MAX_WRITERS`` on PostgreSQL (each on its own pooled
connection, so within ``DB_POOL_SIZE``). Only one is used while commits are quick: a statement
that arrives during a commit waits for the next batch, so batches grow with the load and a
commit (a WAL flush on the server) serves many callers. A second turn starts only when the
commit in flight has taken ``STALL_SECONDS`` (it waits on a row lock or a slow disk), so one
stuck statement does not hold up every other caller of the process.

Under gevent a caller that takes a free turn first lets the other greenlets that are ready run
(one pass of the hub, a few microseconds): the callers woken by the same event-loop iteration (the
answers OpenWhisk sent meanwhile, the requests that arrived) queue their statements and go in the
same transaction instead of the next one. Measured on the bench (REST, PostgreSQL, 16 callers):
4.1 -> 5.8 statements a transaction, 7 % more requests a second. With threads the turn is used at
once: a ``time.sleep(0)`` there raised the batches as well (gRPC, PostgreSQL, 64 in flight: 5.3 ->
6.8 statements) but moved neither throughput nor CPU per call beyond the bench's noise.

Where it runs: SQLite under gevent in a real OS thread (a one-thread pool) on a connection of
its own, so waiting for SQLite's file lock (another process writing) or for the disk never stops
the other greenlets; PostgreSQL through a pooled session (green under gevent, so bounded by
``DB_POOL_SIZE`` like every session); SQLite without gevent in the calling thread.

On PostgreSQL a transaction is one statement (data-modifying CTEs, one round trip); on SQLite it
is ``BEGIN IMMEDIATE`` ... ``COMMIT`` on the writer's connection. A batch of completions only
(statements written with ``durable=False``) commits on PostgreSQL without waiting for the WAL
flush (``synchronous_commit`` off for that transaction): it is visible at once and on disk at
the next flush, a few milliseconds later under load (any later commit flushes it too) and at most
three ``wal_writer_delay`` after it when idle. A server crash within that window loses the
completion and the row is back in flight, which the worker reconciles as after a crash of this
process between OpenWhisk's answer and the commit. Pending inserts and acceptances are always
flushed before their caller goes on: OpenWhisk is only called once its pending row is durable.
SQLite (WAL, ``synchronous=NORMAL``) flushes at checkpoints for every transaction alike.

One refused statement (a duplicate idempotency key) must not fail the others: on SQLite its caller
gets the refusal and the transaction is written again without it; PostgreSQL does not say which
statement it was, so each half of the batch is written again on its own, down to the one refused.
When the database itself fails, each statement is written alone, so each caller gets its own
answer.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time

from owaction.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

MAX_BATCH = 256
# Concurrent writer transactions per process on PostgreSQL: at most half the pool, so the reads
# always have connections too.
MAX_WRITERS = 4
# A commit in flight this long is stuck behind something (a row lock, a slow disk): the next
# batch may start beside it. Measured on the bench (2 cores, PostgreSQL 15): a batch commits in
# 0.3 to 5 ms; with a turn per arrival instead, commits per call doubled and throughput fell by
# 10 to 25 %.
STALL_SECONDS = 0.05


class _Write:
    """One caller's statement and, once written, its outcome."""

    __slots__ = ("sql", "params", "durable", "wake", "done", "turn", "queued", "rowcount",
                 "error")

    def __init__(self, sql: str, params: tuple, durable: bool = True):
        self.sql, self.params, self.durable = sql, params, durable
        self.wake = threading.Event()  # set when written, or when a turn is handed to it
        self.done = False
        self.turn = False  # a writer's turn is this caller's to use (set and taken under _lock)
        self.queued = True  # not yet taken into a batch (under _lock)
        self.rowcount = 0
        self.error: BaseException | None = None


class _Refused(Exception):
    """The statement at ``index`` of a shared transaction broke a constraint."""

    def __init__(self, index: int):
        super().__init__(index)
        self.index = index


def _outcome(func, *args) -> tuple[bool, object]:
    """``(False, result)``, or ``(True, exception)`` when ``func`` raised one."""
    try:
        return False, func(*args)
    except Exception as exc:  # noqa: BLE001 - re-raised by the caller, in its own greenlet
        return True, exc


def _one_row_insert(sql: str) -> bool:
    """``INSERT INTO t (...) VALUES (%s, ..., %s)``: a statement whose rows can be joined."""
    head, values, row = sql.rpartition(" VALUES ")
    return (head.startswith("INSERT INTO ") and bool(values) and row.startswith("(")
            and row.endswith(")") and not row[1:-1].replace("%s", "").replace(",", "").strip())


def _flushed(sql: str, durable: bool) -> str:
    """PostgreSQL: ``sql`` as a transaction that commits without waiting for the WAL flush
    unless ``durable``. Sent with it as one query: one implicit transaction, one round trip."""
    return sql if durable else "SET LOCAL synchronous_commit TO OFF; " + sql


class GroupWriter:
    """Batches a process's single-statement writes into shared transactions (see above)."""

    def __init__(self, database, *, green: bool, max_batch: int = MAX_BATCH,
                 writers: int | None = None, stall_seconds: float = STALL_SECONDS):
        self._database = database
        self._max_batch = max_batch
        self._stall_seconds = stall_seconds
        # When the newest turn was handed out (monotonic): its batch is in flight from then on.
        self._batch_started = 0.0
        self._lock = threading.Lock()
        self._queue: list[_Write] = []
        if writers is None:
            writers = (max(1, min(MAX_WRITERS, database.pool_size // 2))
                       if database.is_postgres else 1)
        self.writers = writers
        self._turns_taken = 0
        self._pool = None
        self._sqlite: sqlite3.Connection | None = None
        self._let_others_queue = None
        if green:
            import gevent

            self._let_others_queue = gevent.sleep  # sleep(0): once round the hub (see above)
            if not database.is_postgres:
                from gevent.threadpool import ThreadPool

                self._pool = ThreadPool(1)
        self._migrated = database.is_postgres  # PostgreSQL's sessions migrate on first use
        # Figures for tests and metrics: statements written, transactions committed.
        self.statements = 0
        self.transactions = 0

    def write(self, sql: str, params: tuple, *, durable: bool = True) -> int:
        """Write one statement in the next transaction; the rows it changed, once committed
        (``durable=False``: once visible, flushed soon after; see the module docstring)."""
        if not self._migrated:
            self._database.migrate()  # the table must exist before the writer's own connection
            self._migrated = True
        item = _Write(sql, params, durable)
        # Waiting callers look again after a stall: the commit in flight may be stuck. (With no
        # stall time every arrival is offered a free turn at once, so there is nothing to
        # look again for.)
        recheck = self._stall_seconds if self.writers > 1 and self._stall_seconds > 0 else None
        with self._lock:
            self._queue.append(item)
            self._offer_turn(item)
        while True:
            # Read together: a turn is only handed to a statement still queued, so once it is
            # written no turn can arrive unseen; a turn handed to it is always used or passed on.
            with self._lock:
                turn, item.turn = item.turn, False
                done = item.done
            if turn:
                if self._let_others_queue is not None:
                    try:
                        self._let_others_queue(0)
                    except BaseException:  # killed meanwhile (a timeout): the turn goes on
                        self._abandon(item, turns_held=1)
                        raise
                self._write_next()
            elif done:
                break
            else:
                try:
                    woken = item.wake.wait(recheck)
                except BaseException:  # the caller was killed while waiting (a timeout)
                    self._abandon(item)
                    raise
                item.wake.clear()  # the flags are read again next, so no wake-up is lost
                if not woken:
                    with self._lock:
                        if item.queued and not item.turn:
                            self._offer_turn(item)
        if item.error is not None:
            raise item.error
        return item.rowcount

    def warm_up(self) -> None:
        """SQLite: start the writer's thread and open its connection now rather than on the
        first write (PostgreSQL's writer uses pooled sessions)."""
        if not self._database.is_postgres:
            self._run(self._connection)

    def close(self) -> None:
        """Close the writer's SQLite connection (at shutdown); a later write opens another."""
        connection, self._sqlite = self._sqlite, None
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    # -- the turn ------------------------------------------------------------------------------

    def _offer_turn(self, item: _Write) -> None:
        """Under ``_lock``: a free turn is ``item``'s when no batch is in flight, or when the
        newest one has been in flight for ``STALL_SECONDS`` (see the module docstring)."""
        if self._turns_taken >= self.writers:
            return
        if self._turns_taken and time.monotonic() - self._batch_started < self._stall_seconds:
            return
        self._turns_taken += 1
        self._hand_turn(item)

    def _write_next(self) -> None:
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            for item in batch:
                item.queued = False
        try:
            self._write_batch(batch)
        except BaseException as exc:  # killed mid-write: nobody may be left waiting
            for item in batch:
                if not item.done:
                    item.error, item.done = exc, True
            raise
        finally:
            for item in batch:
                if not item.done:  # pragma: no cover - _write_batch answers every item
                    item.error, item.done = StoreUnavailable("not written"), True
                item.wake.set()
            with self._lock:
                self._pass_turn()

    def _pass_turn(self) -> None:
        """Under ``_lock``: the turn goes to the first caller still waiting without one."""
        waiting = next((i for i in self._queue if not i.turn), None)
        if waiting is not None:
            self._hand_turn(waiting)
            waiting.wake.set()
        else:
            self._turns_taken -= 1

    def _hand_turn(self, item: _Write) -> None:
        """Under ``_lock``: ``item``'s caller writes the next batch (after one hub pass)."""
        self._batch_started = time.monotonic()
        item.turn = True

    def _abandon(self, item: _Write, *, turns_held: int = 0) -> None:
        """A caller gone while waiting: its statement leaves the queue unless already taken
        (nobody waits for it), and a turn handed to it (or ``turns_held``, taken and not yet
        used) goes on, so no turn is ever lost."""
        with self._lock:
            if item.queued:
                self._queue.remove(item)
                item.queued = False
            turns_held += item.turn
            item.turn = False
            for _ in range(turns_held):
                self._pass_turn()

    def _write_batch(self, batch: list[_Write]) -> None:
        remaining = batch
        while len(remaining) > 1:
            try:
                counts = self._run(self._transaction, [(i.sql, i.params) for i in remaining],
                                   any(i.durable for i in remaining))
            except _Refused as refused:
                # That statement's caller gets the refusal; the rest go again without it.
                item = remaining[refused.index]
                item.error, item.done = refused.__cause__, True
                remaining = [i for i in remaining if i is not item]
                continue
            except self._database.integrity_errors:
                # PostgreSQL does not say which statement: each half goes again on its own.
                half = len(remaining) // 2
                self._write_batch(remaining[:half])
                self._write_batch(remaining[half:])
                return
            except Exception:  # noqa: BLE001 - the database failed: each alone, own answers
                log.debug("a shared transaction failed; writing alone", exc_info=True)
                break
            self._count(len(remaining))
            for item, count in zip(remaining, counts, strict=True):
                item.rowcount, item.done = count, True
            return
        for item in remaining:
            try:
                item.rowcount = self._run(self._alone, item.sql, item.params, item.durable)
                self._count(1)
            except Exception as exc:  # noqa: BLE001 - handed to the caller it belongs to
                item.error = exc
            item.done = True

    def _run(self, func, *args):
        if self._pool is None:
            return func(*args)
        # gevent prints a traceback for every exception a pool task raises, and a refusal (a
        # duplicate idempotency key) is an expected answer: it travels back as a value.
        raised, value = self._pool.apply(_outcome, (func, *args))
        if raised:
            raise value
        return value

    # -- the statements ------------------------------------------------------------------------

    def _transaction(self, statements: list[tuple[str, tuple]], durable: bool) -> list[int]:
        if self._database.is_postgres:
            counts = self._postgres_transaction(statements, durable)
        else:
            connection = self._connection()
            try:
                # IMMEDIATE takes the write lock up front: no deadlock with another writer.
                connection.execute("BEGIN IMMEDIATE")
                counts = []
                for index, (sql, params) in enumerate(statements):
                    try:
                        counts.append(connection.execute(sql, params).rowcount)
                    except sqlite3.IntegrityError as exc:
                        raise _Refused(index) from exc
                connection.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):
                    raise StoreUnavailable("database unavailable", retry_after=1) from exc
                raise
        return counts

    def _postgres_transaction(self, statements: list[tuple[str, tuple]],
                              durable: bool) -> list[int]:
        """One statement of data-modifying CTEs: atomic, one round trip, a count for each.

        No two statements of a batch touch the same row (a caller's completion is only written
        after its insert has committed), so their order does not matter, and the same one-row
        ``INSERT ... VALUES (...)`` from several callers goes as one multi-row INSERT: the
        server plans it once, about a third of the CPU per row of one CTE each at 8 rows and
        more (measured on PostgreSQL 15).
        """
        groups: dict[str, list[int]] = {}  # statement text -> the indexes written by it
        for index, (sql, _) in enumerate(statements):
            groups.setdefault(sql if _one_row_insert(sql) else f"#{index}", []).append(index)
        parts, values, members = [], [], []
        for indexes in groups.values():
            sql = statements[indexes[0]][0]
            if len(indexes) > 1:
                head, _, row = sql.rpartition(" VALUES ")
                sql = f"{head} VALUES {', '.join([row] * len(indexes))}"
            parts.append(f"s{len(parts)} AS ({sql} RETURNING 1)")
            for index in indexes:
                values.extend(statements[index][1])
            members.append(indexes)
        counted = ", ".join(f"(SELECT count(*) FROM s{i})"  # noqa: S608 - numbers only
                            for i in range(len(parts)))
        sql = f"WITH {', '.join(parts)} SELECT {counted}"  # noqa: S608 - the store's own SQL
        row = self._database.write_returning(_flushed(sql, durable), tuple(values))
        counts = [0] * len(statements)
        for indexes, count in zip(members, row, strict=True):
            if len(indexes) == 1:
                counts[indexes[0]] = int(count)
            elif int(count) == len(indexes):  # a multi-row INSERT inserts all or fails
                for index in indexes:
                    counts[index] = 1
            else:  # pragma: no cover - an INSERT ... VALUES inserts every row or raises
                raise RuntimeError(f"{count} of {len(indexes)} rows inserted")
        return counts

    def _alone(self, sql: str, params: tuple, durable: bool) -> int:
        if self._database.is_postgres:
            count = self._database.write_alone(_flushed(sql, durable), params)
        else:
            try:
                count = self._connection().execute(sql, params).rowcount
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable("database unavailable", retry_after=1) from exc
        return count

    def _count(self, statements: int) -> None:
        with self._lock:  # several writers may commit at once (never from the SQLite thread)
            self.statements += statements
            self.transactions += 1

    def _connection(self) -> sqlite3.Connection:
        """The writer's own SQLite connection, made on first use; only the writer's turn uses it."""
        if self._sqlite is None:
            path = self._database.database_url[len("sqlite://"):]
            connection = sqlite3.connect(path, timeout=self._database.acquire_timeout,
                                         isolation_level=None, check_same_thread=False)
            # As the pooled connections: WAL (set at migration), commits synced at checkpoints.
            connection.execute("PRAGMA synchronous=NORMAL")
            self._sqlite = connection
        return self._sqlite

