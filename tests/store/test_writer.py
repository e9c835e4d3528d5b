"""Group commit (owaction.store.writer) on SQLite and PostgreSQL: concurrent callers share
transactions, and each caller's row is its own and right."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time

import psycopg2
import pytest

from owaction.store import TABLE, DuplicateIdempotencyKey
from owaction.store.writer import GroupWriter
from tests.store.conftest import pending

CALLERS = 24


@contextlib.contextmanager
def table_locked(db_url: str):
    """Every write to the table waits while the block runs (a lock held by another client), so
    concurrent callers pile up behind the writer and must share its next transaction."""
    if db_url.startswith("sqlite://"):
        conn = sqlite3.connect(db_url[len("sqlite://"):], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    else:
        conn = psycopg2.connect(db_url.replace("postgres://", "postgresql://", 1))
        conn.cursor().execute(f'LOCK TABLE "{TABLE}" IN EXCLUSIVE MODE')
    try:
        yield
    finally:
        conn.rollback() if not db_url.startswith("sqlite://") else conn.execute("ROLLBACK")
        conn.close()


def test_concurrent_calls_share_commits_and_each_row_is_right(store, db_url):
    statements, transactions = store.writer.statements, store.writer.transactions
    records: dict[int, object] = {}
    errors: list[BaseException] = []
    go = threading.Barrier(CALLERS + 1)

    def call(i: int) -> None:
        try:
            go.wait()
            # Two callers use the same idempotency key: exactly one of them may record it.
            key = "shared-key" if i in (0, 1) else f"key-{i}"
            try:
                record = pending(store, action_name=f"act-{i}", payload={"i": i},
                                 idempotency_key=key, request_id=f"req-{i}")
            except DuplicateIdempotencyKey as dup:
                records[i] = dup
                return
            records[i] = record
            assert store.complete(record.execution_id, status="succeeded", success=True,
                                  result={"answer": i}, duration_ms=i, status_code=200)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CALLERS)]
    for t in threads:
        t.start()
    with table_locked(db_url):
        go.wait()
        time.sleep(0.5)  # every caller has queued its insert behind the held lock
    for t in threads:
        t.join(30)
    assert not errors, errors

    duplicates = [i for i, r in records.items() if isinstance(r, DuplicateIdempotencyKey)]
    assert len(duplicates) == 1 and duplicates[0] in (0, 1)
    winner = 1 - duplicates[0]
    assert records[duplicates[0]].existing.execution_id == records[winner].execution_id
    for i, record in records.items():
        if i in duplicates:
            continue
        row = store.get(record.execution_id)
        assert (row.action_name, row.payload, row.request_id) == (f"act-{i}", {"i": i},
                                                                  f"req-{i}")
        assert (row.status, row.result, row.duration_ms) == ("succeeded", {"answer": i}, i)
    written = store.writer.statements - statements
    committed = store.writer.transactions - transactions
    assert written == 2 * (CALLERS - 1)  # every insert and completion but the duplicate
    # Shared: far fewer transactions than statements (one per statement without the writer).
    assert committed < written / 2, (committed, written)


def test_a_completion_of_a_row_already_final_changes_nothing(store):
    record = pending(store)
    assert store.complete(record.execution_id, status="failed", success=False, error="x")
    assert not store.complete(record.execution_id, status="succeeded", success=True)
    assert store.get(record.execution_id).status == "failed"


def test_postgres_starts_the_next_batch_while_a_commit_is_in_flight(store, db_url):
    if db_url.startswith("sqlite://"):
        pytest.skip("SQLite writes one transaction at a time (one writer turn)")
    assert 1 < store.writer.writers <= store.pool_size // 2
    blocked = pending(store)
    holder = psycopg2.connect(db_url.replace("postgres://", "postgresql://", 1))
    holder.cursor().execute(f'SELECT 1 FROM "{TABLE}" WHERE execution_id = %s FOR UPDATE',  # noqa: S608
                            (blocked.execution_id,))
    done = threading.Event()

    def complete_blocked() -> None:
        store.complete(blocked.execution_id, status="succeeded", success=True)
        done.set()

    waiter = threading.Thread(target=complete_blocked)
    waiter.start()
    try:
        time.sleep(0.5)  # the completion's transaction now waits for the row lock
        assert not done.is_set()
        # Another caller's insert commits meanwhile instead of queueing behind that commit.
        other = pending(store)
        assert store.get(other.execution_id).status == "pending"
        assert not done.is_set()
    finally:
        holder.rollback()
        holder.close()
        waiter.join(10)
    assert done.is_set() and store.get(blocked.execution_id).status == "succeeded"



def test_postgres_batches_behind_a_quick_commit_instead_of_starting_another(store, db_url):
    """Until the commit in flight has stalled, a statement arriving meanwhile waits for the next
    batch (so batches grow with the load) rather than taking a turn of its own."""
    if db_url.startswith("sqlite://"):
        pytest.skip("SQLite has one writer turn")
    # Nothing counts as stalled in this test: the row lock below stands for a slow commit.
    store.writer = GroupWriter(store, green=False, stall_seconds=60)
    blocked = pending(store)
    holder = psycopg2.connect(db_url.replace("postgres://", "postgresql://", 1))
    holder.cursor().execute(f'SELECT 1 FROM "{TABLE}" WHERE execution_id = %s FOR UPDATE',  # noqa: S608
                            (blocked.execution_id,))
    finished: list[str] = []

    def complete_blocked() -> None:
        store.complete(blocked.execution_id, status="succeeded", success=True)
        finished.append("completion")

    def insert_other() -> None:
        finished.append(pending(store).execution_id)

    first = threading.Thread(target=complete_blocked)
    first.start()
    time.sleep(0.3)  # the completion's commit is in flight, waiting for the row lock
    second = threading.Thread(target=insert_other)
    second.start()
    try:
        time.sleep(0.5)
        assert finished == []  # queued for the next batch, not written beside the first
    finally:
        holder.rollback()
        holder.close()
        first.join(10)
        second.join(10)
    assert finished[0] == "completion" and len(finished) == 2
    assert store.get(blocked.execution_id).status == "succeeded"
    assert store.get(finished[1]).status == "pending"



# Records, in the row it updates, whether its transaction waits for the WAL flush.
_RECORD_FLUSH_SETTING = (f'UPDATE "{TABLE}" SET error = current_setting(\'synchronous_commit\') '  # noqa: S608
                         "WHERE execution_id = %s")


def test_postgres_flushes_inserts_before_answering_and_lets_completions_flush_later(store,
                                                                                     db_url):
    if db_url.startswith("sqlite://"):
        pytest.skip("SQLite flushes every transaction alike, at checkpoints")
    store.writer = GroupWriter(store, green=False, stall_seconds=60)  # batches as below
    rows = [pending(store) for _ in range(8)]

    def write(record, durable: bool) -> threading.Thread:
        thread = threading.Thread(target=store.write, args=(_RECORD_FLUSH_SETTING,
                                                            (record.execution_id,)),
                                  kwargs={"durable": durable})
        thread.start()
        return thread

    write(rows[0], False).join(10)  # alone
    write(rows[1], True).join(10)
    with table_locked(db_url):
        threads = [write(rows[2], True)]  # blocked by the lock: the callers below pile up
        time.sleep(0.3)
        threads += [write(rows[3], False), write(rows[4], False)]  # the next batch: both
        time.sleep(0.3)
    for thread in threads:
        thread.join(10)
    with table_locked(db_url):
        threads = [write(rows[5], True)]
        time.sleep(0.3)
        threads += [write(rows[6], False), write(rows[7], True)]  # one durable: all flushed
        time.sleep(0.3)
    for thread in threads:
        thread.join(10)
    assert [store.get(r.execution_id).error for r in rows] == ["off", "on", "on", "off", "off",
                                                                "on", "on", "on"]


KILLED_WAITER = """
import json, os, sqlite3, sys
from gevent import monkey
monkey.patch_all()
import gevent
from owaction.store import ExecutionStore

url, folder = sys.argv[1], sys.argv[2]
store = ExecutionStore(url, pool_size=4, acquire_timeout=30, folder=folder)
store.migrate()

def pending(i):
    return store.create_pending(namespace="guest", action_name="a", action_type="action",
                                payload={}, blocking=True, timeout=None, source="t",
                                caller="t", request_id=f"r{i}")

holder = sqlite3.connect(url[len("sqlite://"):], isolation_level=None)
holder.execute("BEGIN IMMEDIATE")  # the writer's first transaction waits for this lock
first = gevent.spawn(pending, 1)
gevent.sleep(0.3)
waiter = gevent.spawn(pending, 2)  # queued behind the first, waiting for a turn
gevent.sleep(0.3)
waiter.kill()  # as a request's timeout would
holder.execute("ROLLBACK")
first.join(10)
later = gevent.spawn(pending, 3)
later.join(10)
print(json.dumps({"first": first.successful(), "later": later.successful()}))
"""


def test_a_caller_killed_while_waiting_leaves_no_turn_lost(tmp_path):
    url = f"sqlite://{tmp_path}/killed.sqlite"
    out = subprocess.run([sys.executable, "-c", KILLED_WAITER, url, str(tmp_path)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert json.loads(out.splitlines()[-1]) == {"first": True, "later": True}


GREEN_CALLERS = """
import json, sys
from gevent import monkey
monkey.patch_all()
import gevent
from owaction.store import ExecutionStore

url, folder, callers, kill_first = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
store = ExecutionStore(url, pool_size=4, acquire_timeout=30, folder=folder)
store.migrate()

def pending(i):
    return store.create_pending(namespace="guest", action_name="a", action_type="action",
                                payload={"i": i}, blocking=True, timeout=None, source="t",
                                caller="t", request_id=f"r{i}").execution_id

before = store.writer.transactions
# Spawned together, so all are ready in the same pass of the hub, as callers woken by one
# event-loop iteration are.
calls = [gevent.spawn(pending, i) for i in range(callers)]
if kill_first:
    def kill_in_its_pass():
        # Runs once the first caller holds the writer's turn, suspended in its pass of the hub
        # while the others queue: the exception a timeout would raise is thrown into it there.
        calls[0].throw(gevent.GreenletExit)
    gevent.spawn(kill_in_its_pass)
gevent.joinall(calls, timeout=20)
committed = store.writer.transactions - before
later = gevent.spawn(pending, callers)  # the writer's turn was not lost
later.join(20)
rows = {}
for call in calls[1:] + [later]:
    record = store.get(call.value) if call.successful() else None
    rows[call.value or "-"] = None if record is None else record.payload["i"]
print(json.dumps({"committed": committed,
                  "killed": isinstance(calls[0].value, gevent.GreenletExit),
                  "later": later.successful(), "rows": sorted(rows.values(), key=str),
                  "requests": sorted(r.request_id for r in store.list(limit=100)[0])}))
"""


def _green_callers(db_url: str, folder, callers: int, kill_first: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", GREEN_CALLERS, db_url, str(folder), str(callers),
                          "1" if kill_first else "0"],
                         capture_output=True, text=True, check=True, timeout=90).stdout
    return json.loads(out.splitlines()[-1])


def test_greenlets_woken_together_share_one_transaction(db_url, tmp_path):
    # The first caller lets the others queue before it writes: one commit for all eight.
    got = _green_callers(db_url, tmp_path, 8, kill_first=False)
    assert got["committed"] == 1
    assert got["rows"] == list(range(1, 9))
    assert got["requests"] == sorted(f"r{i}" for i in range(9))


def test_a_caller_killed_while_the_others_queue_passes_its_turn_on(db_url, tmp_path):
    # Killed holding the writer's turn: its row is never written, and the others (and a later
    # caller) are written all the same instead of waiting for a turn nobody holds.
    got = _green_callers(db_url, tmp_path, 8, kill_first=True)
    assert got["killed"] and got["later"]
    assert got["rows"] == list(range(1, 9))
    assert got["requests"] == sorted(f"r{i}" for i in range(1, 9))
