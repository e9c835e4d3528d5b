"""The execution store on SQLite and PostgreSQL: one suite, run on each (``db_url``)."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import threading

import pytest

from owaction.errors import InvalidInput, Unavailable
from owaction.store import (
    TABLE,
    DuplicateIdempotencyKey,
    ExecutionRecord,
    StoreUnavailable,
    schema,
    values,
)
from tests.store.conftest import pending
from tests.store.helpers import held_session

UTC = dt.UTC


def _backdate(store, execution_id: str, *, seconds: int) -> None:
    """Move a row's created_at into the past, as if it had been recorded long ago."""
    with store.session() as db:
        t = db[TABLE]
        row = db(t.execution_id == execution_id).select().first()
        db(t.execution_id == execution_id).update(
            created_at=row.created_at - dt.timedelta(seconds=seconds)
        )


def test_store_unavailable_is_the_domain_unavailable_error():
    assert issubclass(StoreUnavailable, Unavailable)
    assert StoreUnavailable("x").http_status == 503


def _indexes(store, db) -> dict[str, str]:
    """The table's indexes in the database: name -> definition."""
    if store.is_postgres:
        return {r[0]: r[1] for r in db.executesql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", (TABLE,))}
    return {r[0]: r[1] for r in db.executesql(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name = ?",
        (TABLE,)) if r[1]}


def test_migrate_creates_every_column_and_index(store, db_url):
    with store.session() as db:
        columns = schema.existing_columns(store, db)
        indexes = _indexes(store, db)
    assert set(ExecutionRecord.__dataclass_fields__) | {"id"} == columns
    assert "UNIQUE" in indexes["ux_owae_execution_id"].upper()
    assert "UNIQUE" in indexes["ux_owae_caller_idempotency"].upper()
    for name in ("ix_owae_action_created", "ix_owae_status", "ix_owae_created_at",
                 "ix_owae_callbacks_owed"):
        assert name in indexes
    assert re.search(r"action_name\"?, \"?created_at", indexes["ix_owae_action_created"])
    assert not set(schema.RETIRED_INDEXES) & set(indexes)


def test_migrate_drops_the_indexes_no_query_reads(store, db_url, make_store, tmp_path):
    # A table migrated by an earlier release still has them; the next migration drops them,
    # and leaves the operator's own indexes alone.
    with store.session() as db:
        db.executesql(f'CREATE INDEX "ix_owae_activation_id" ON "{TABLE}" ("activation_id")')
        db.executesql(f'CREATE INDEX "ix_owae_source_request" ON "{TABLE}" '
                      '("source", "request_id")')
        db.executesql(f'CREATE INDEX "ops_by_activation" ON "{TABLE}" ("activation_id")')
        db.commit()
    upgraded = make_store(db_url, folder=str(tmp_path / "next-release"))  # a process starting
    upgraded.migrate()
    with upgraded.session() as db:
        indexes = _indexes(upgraded, db)
    assert not set(schema.RETIRED_INDEXES) & set(indexes)
    assert "ops_by_activation" in indexes
    assert "ix_owae_status" in indexes


def test_migrate_twice_and_from_a_second_store_is_harmless(store, db_url, make_store, tmp_path):
    first = pending(store)
    store.migrate()
    # Another process with its own migrations folder meets a table it did not create.
    other = make_store(db_url, folder=str(tmp_path / "elsewhere"))
    other.migrate()
    assert other.get(first.execution_id) == first
    assert (tmp_path / "elsewhere").is_dir()


def test_create_pending_records_a_pending_row_with_an_unguessable_id(store):
    record = pending(store, payload={"name": "Ada", "n": [1, 2]}, trace_id="t-1",
                     idempotency_key="idem-1", request_hash="h1", callback_url="http://cb/x")
    assert re.fullmatch(r"[0-9a-f]{32}", record.execution_id)
    assert record.status == "pending"
    assert record.payload == {"name": "Ada", "n": [1, 2]}
    assert record.created_at.tzinfo is UTC
    assert record.success is None and record.completed_at is None
    assert store.get(record.execution_id) == record


def test_execution_ids_are_distinct(store):
    ids = {pending(store).execution_id for _ in range(50)}
    assert len(ids) == 50


def test_get_of_an_unknown_id_is_none(store):
    assert store.get("0" * 32) is None


def test_unknown_action_type_is_refused(store):
    with pytest.raises(ValueError, match="action_type"):
        pending(store, action_type="bogus")


def test_lifecycle_pending_accepted_succeeded(store):
    record = pending(store)
    assert store.mark_accepted(record.execution_id, activation_id="a" * 32) is True
    accepted = store.get(record.execution_id)
    assert (accepted.status, accepted.activation_id, accepted.status_code) == (
        "accepted", "a" * 32, 202)
    assert store.complete(record.execution_id, status="succeeded", success=True,
                          result={"greeting": "hi"}, duration_ms=42, status_code=200) is True
    done = store.get(record.execution_id)
    assert done.status == "succeeded" and done.success is True
    assert done.result == {"greeting": "hi"}
    assert done.duration_ms == 42 and done.status_code == 200
    assert done.activation_id == "a" * 32
    assert done.completed_at is not None and done.is_final


def test_a_final_execution_is_never_completed_or_accepted_again(store):
    record = pending(store)
    assert store.complete(record.execution_id, status="failed", success=False,
                          error="boom", result={"error": "boom"})
    assert store.complete(record.execution_id, status="succeeded", success=True) is False
    assert store.mark_accepted(record.execution_id, activation_id="b" * 32) is False
    row = store.get(record.execution_id)
    assert (row.status, row.error, row.activation_id) == ("failed", "boom", None)


def test_complete_refuses_a_non_final_status(store):
    record = pending(store)
    with pytest.raises(ValueError):
        store.complete(record.execution_id, status="accepted", success=True)


def test_result_may_be_any_json_value(store):
    for result in ("plain text", [1, "two"], 3.5, {"nested": {"deep": None}}):
        record = pending(store)
        store.complete(record.execution_id, status="succeeded", success=True, result=result)
        assert store.get(record.execution_id).result == result


def test_to_dict_is_json_ready_with_iso_utc_times(store):
    record = pending(store, payload={"é": "ü"})
    store.complete(record.execution_id, status="timeout", success=False, error="too slow")
    out = store.get(record.execution_id).to_dict()
    assert json.loads(json.dumps(out)) == out
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", out["created_at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", out["completed_at"])
    assert out["payload"] == {"é": "ü"}
    assert out["status"] == "timeout" and out["lease_until"] is None
    assert set(out) == set(ExecutionRecord.__dataclass_fields__)


def test_list_is_newest_first_and_filters(store):
    a = pending(store, action_name="alpha")
    b = pending(store, action_name="beta", action_type="sequence")
    c = pending(store, action_name="alpha", action_type="web")
    store.complete(c.execution_id, status="error", success=False)
    ids = lambda recs: [r.execution_id for r in recs]  # noqa: E731
    assert ids(store.list()[0]) == [c.execution_id, b.execution_id, a.execution_id]
    assert ids(store.list(action_name="alpha")[0]) == [c.execution_id, a.execution_id]
    assert ids(store.list(action_type="sequence")[0]) == [b.execution_id]
    assert ids(store.list(status="error")[0]) == [c.execution_id]
    assert ids(store.list(status="pending", action_name="alpha")[0]) == [a.execution_id]


def test_list_since_and_until_bound_created_at(store):
    old = pending(store)
    _backdate(store, old.execution_id, seconds=7200)
    new = pending(store)
    hour_ago = dt.datetime.now(UTC) - dt.timedelta(hours=1)
    assert [r.execution_id for r in store.list(since=hour_ago)[0]] == [new.execution_id]
    assert [r.execution_id for r in store.list(until=hour_ago)[0]] == [old.execution_id]


def test_keyset_paging_is_stable_when_rows_arrive_between_pages(store):
    created = [pending(store, request_id=f"r{i}").execution_id for i in range(7)]
    page1, cursor = store.list(limit=3)
    assert [r.execution_id for r in page1] == created[::-1][:3]
    # New rows are newer than every page already seen: they must not shift later pages.
    for i in range(4):
        pending(store, request_id=f"late{i}")
    page2, cursor = store.list(limit=3, cursor=cursor)
    page3, last = store.list(limit=3, cursor=cursor)
    assert [r.execution_id for r in page2] == created[::-1][3:6]
    assert [r.execution_id for r in page3] == created[::-1][6:]
    assert last is None


def test_every_cursor_of_the_documented_shape_is_a_position(store):
    """A cursor is <epoch seconds>-<id>, so any such text pages from there, none fails."""
    created = [pending(store).execution_id for _ in range(2)]
    assert store.list(cursor="0-0") == ([], None)
    everything, _ = store.list(cursor="99999999999-999999999999999999")
    assert [r.execution_id for r in everything] == created[::-1]
    first, cursor = store.list(limit=1)
    seconds, row_id = cursor.split("-")
    assert int(seconds) == int(first[0].created_at.timestamp()) and int(row_id) > 0


def test_list_refuses_a_forged_cursor_and_bad_limits(store):
    for cursor in ("garbage", "W10", "eyJhIjoxfQ", "1-", "-1-2", "123456789012-1", "1-2\n"):
        with pytest.raises(InvalidInput):
            store.list(cursor=cursor)
    for limit in (0, -1, 501, True):
        with pytest.raises(InvalidInput):
            store.list(limit=limit)
    with pytest.raises(InvalidInput):
        store.list(status="bogus")


def _percentile_cont(values: list[int], q: float) -> float:
    values = sorted(values)
    pos = q * (len(values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def test_stats_counts_in_flight_and_duration_mean_and_p95(store):
    durations = [5, 80, 13, 400, 21, 34, 55, 8, 1, 2, 3, 144]
    for i, ms in enumerate(durations):
        r = pending(store, action_type="sequence" if i % 3 == 0 else "action")
        store.complete(r.execution_id, status="succeeded" if i % 4 else "failed",
                       success=bool(i % 4), duration_ms=ms)
    accepted = pending(store, action_type="async")
    store.mark_accepted(accepted.execution_id, activation_id="c" * 32)
    pending(store, action_type="trigger")
    old = pending(store)
    store.complete(old.execution_id, status="succeeded", success=True, duration_ms=99999)
    _backdate(store, old.execution_id, seconds=7200)

    stats = store.stats(window_seconds=3600)
    assert stats["total"] == 15
    assert stats["by_status"] == {"pending": 1, "accepted": 1, "succeeded": 10, "failed": 3,
                                  "error": 0, "timeout": 0, "unknown": 0}
    assert stats["by_type"] == {"action": 9, "sequence": 4, "async": 1, "trigger": 1}
    assert stats["in_flight"] == 2
    assert stats["window_total"] == 14
    assert stats["window_with_duration"] == 12
    assert stats["mean_duration_ms"] == pytest.approx(sum(durations) / 12, abs=1e-3)
    assert stats["p95_duration_ms"] == pytest.approx(_percentile_cont(durations, 0.95), abs=1e-3)


def test_stats_of_an_empty_window_has_no_durations(store):
    stats = store.stats()
    assert stats["total"] == 0 and stats["in_flight"] == 0
    assert stats["mean_duration_ms"] is None and stats["p95_duration_ms"] is None


def test_stats_see_rows_written_through_another_store(store, db_url, make_store, tmp_path):
    other = make_store(db_url, folder=str(tmp_path / "other"))
    r = pending(other)
    other.complete(r.execution_id, status="succeeded", success=True, duration_ms=7)
    stats = store.stats()
    assert stats["by_status"]["succeeded"] == 1 and stats["p95_duration_ms"] == 7


def test_repeated_idempotency_key_raises_with_the_original(store):
    first = pending(store, idempotency_key="key-1", request_hash="h")
    with pytest.raises(DuplicateIdempotencyKey) as info:
        pending(store, idempotency_key="key-1", request_hash="h2")
    assert info.value.existing == first
    assert info.value.http_status == 409
    assert store.find_by_idempotency_key("svc-a", "key-1") == first
    # The same key from another caller is another request.
    other = pending(store, caller="svc-b", idempotency_key="key-1")
    assert store.find_by_idempotency_key("svc-b", "key-1") == other
    assert store.find_by_idempotency_key("svc-a", "nope") is None


def test_purge_idempotency_frees_old_keys_only(store):
    old = pending(store, idempotency_key="old")
    _backdate(store, old.execution_id, seconds=90000)
    pending(store, idempotency_key="fresh")
    assert store.purge_idempotency(86400) == 1
    assert store.find_by_idempotency_key("svc-a", "old") is None
    assert store.find_by_idempotency_key("svc-a", "fresh") is not None
    assert store.get(old.execution_id).idempotency_key is None
    pending(store, idempotency_key="old")  # reusable once purged


def test_claim_accepted_leases_each_row_to_one_owner(store):
    rows = [pending(store) for _ in range(3)]
    for r in rows:
        store.mark_accepted(r.execution_id, activation_id=r.execution_id)
    fresh_pending = pending(store)
    claimed = store.claim_accepted("w1", lease_seconds=60, limit=10, pending_grace=300)
    assert [c.execution_id for c in claimed] == [r.execution_id for r in rows]
    assert all(c.lease_owner == "w1" and c.attempts == 1 for c in claimed)
    assert all(c.lease_until > dt.datetime.now(UTC) for c in claimed)
    assert store.claim_accepted("w2", lease_seconds=60, limit=10, pending_grace=300) == []
    # Only the holder of the lease completes it.
    assert store.complete(rows[0].execution_id, status="succeeded", success=True,
                          lease_owner="w2") is False
    assert store.complete(rows[0].execution_id, status="succeeded", success=True,
                          lease_owner="w1") is True
    assert store.get(rows[0].execution_id).lease_owner is None
    assert store.get(fresh_pending.execution_id).lease_owner is None


def test_claim_respects_limit_and_reclaims_expired_or_ended_leases(store):
    rows = [pending(store) for _ in range(3)]
    for r in rows:
        store.mark_accepted(r.execution_id, activation_id=r.execution_id)
    first = store.claim_accepted("w1", lease_seconds=-1, limit=2)  # already expired
    assert len(first) == 2
    again = store.claim_accepted("w2", lease_seconds=60, limit=10)
    assert {c.execution_id for c in again} == {r.execution_id for r in rows}
    assert {c.attempts for c in again if c.execution_id in {f.execution_id for f in first}} == {2}
    assert store.extend_lease(rows[2].execution_id, "w2", -1) is True  # ended early
    assert [c.execution_id for c in store.claim_accepted("w3")] == [rows[2].execution_id]


def test_claim_takes_pending_rows_only_after_the_grace(store):
    stale = pending(store)
    _backdate(store, stale.execution_id, seconds=600)
    pending(store)
    assert store.claim_accepted("w1") == []  # without a grace, pending rows are not claimed
    claimed = store.claim_accepted("w1", pending_grace=300)
    assert [c.execution_id for c in claimed] == [stale.execution_id]


def test_concurrent_claimers_never_share_a_row(store):
    rows = [pending(store) for _ in range(40)]
    for r in rows:
        store.mark_accepted(r.execution_id, activation_id=r.execution_id)
    got: dict[str, list[str]] = {}

    def claim(owner: str) -> None:
        mine = []
        while batch := store.claim_accepted(owner, lease_seconds=60, limit=3):
            mine += [c.execution_id for c in batch]
        got[owner] = mine

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [eid for mine in got.values() for eid in mine]
    assert sorted(everything) == sorted(r.execution_id for r in rows)


def test_session_counts_and_acquire_timeout(db_url, make_store):
    store = make_store(db_url, pool_size=1, acquire_timeout=0.2)
    store.migrate()
    waiter_error: list[BaseException] = []

    def wait_for_slot():
        try:
            store.get("x" * 32)
        except StoreUnavailable as exc:
            waiter_error.append(exc)

    with held_session(store):
        assert store.sessions_in_use == 1
        waiter = threading.Thread(target=wait_for_slot)
        waiter.start()
        waiter.join(10)
        assert len(waiter_error) == 1 and "no database session free" in str(waiter_error[0])
        assert store.sessions_waiting == 0
    assert store.sessions_in_use == 0
    assert store.get("x" * 32) is None


def test_an_error_inside_a_session_rolls_back(store):
    record = pending(store)
    with pytest.raises(ZeroDivisionError), store.session() as db:
        db(db[TABLE].execution_id == record.execution_id).update(status="unknown")
        1 / 0  # noqa: B018
    assert store.get(record.execution_id).status == "pending"
    assert store.sessions_in_use == 0


def test_ping_answers_true_on_a_live_database(store):
    assert store.ping(timeout=1.0) is True


def test_repr_does_not_show_the_url(db_url, make_store):
    store = make_store(db_url.replace("postgres@", "postgres:hunter2@"))
    assert "hunter2" not in repr(store)


def test_the_record_has_exactly_the_tables_columns_in_order():
    assert [name for name, _, _ in schema.COLUMNS] == [
        f for f in ExecutionRecord.__dataclass_fields__]


def test_a_forked_child_never_uses_its_parents_connection(store):
    """PyDAL keys a thread's connection by process; the store keeps that key without asking the
    OS on every access, and a forked child (a gunicorn worker) still gets keys of its own."""
    first = pending(store)
    adapter = store._db._adapter
    parent_slot = adapter._connection_uname_
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        ok = (adapter._connection_uname_ != parent_slot
              and str(os.getpid()) in adapter._connection_uname_)
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(child, 0)
    assert answer == b"1"
    assert parent_slot.endswith(f"_{os.getpid()}")
    assert store.get(first.execution_id) == first


def test_the_outbox_finds_only_callbacks_still_owed(store):
    owed = pending(store, callback_url="http://cb/owed")
    pending(store, callback_url="http://cb/running")  # not final yet: nothing to deliver
    plain = pending(store)
    done = pending(store, callback_url="http://cb/done")
    for record in (owed, plain, done):
        store.complete(record.execution_id, status="succeeded", success=True)
    store.record_callback(done.execution_id, delivered=True, status_code=200, retry_in=None)
    assert [r.execution_id for r in store.due_callbacks()] == [owed.execution_id]
    assert store.due_callbacks() == []  # claimed
    store.record_callback(owed.execution_id, delivered=False, status_code=500, retry_in=0)
    assert [r.execution_id for r in store.due_callbacks()] == [owed.execution_id]


def test_the_outbox_poll_reads_its_partial_index_not_the_table(store):
    # The worker polls every WORKER_POLL_INTERVAL: with every final row read, a poll would grow
    # with the table (8.7 ms at 20,000 rows on PostgreSQL, 0.03 ms through the index).
    with store.session() as db:
        t = db[TABLE]
        sql = store.due(db, values.now())._select(orderby=t.id, limitby=(0, 50))
        if store.is_postgres:
            db.executesql("SET LOCAL enable_seqscan = off")  # a tiny table is cheaper to scan
            plan = " ".join(r[0] for r in db.executesql("EXPLAIN " + sql))
        else:
            plan = " ".join(r[-1] for r in db.executesql("EXPLAIN QUERY PLAN " + sql))
    assert "ix_owae_callbacks_owed" in plan, plan
