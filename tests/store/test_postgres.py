"""PostgreSQL behaviour: bounded connections under threads and gevent, outages, migration races."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from owaction.store import TABLE, StoreUnavailable
from tests.procs import PYTHON, ROOT, free_port
from tests.store.conftest import pending
from tests.store.helpers import ConnectionSampler, held_session, pg_connections
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.postgres

UNITS = 200
POOL = 5


def _dbname(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _via_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    netloc = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _statuses(url: str) -> dict[str, int]:
    with psycopg2.connect(url, connect_timeout=3) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT status, count(*) FROM "{TABLE}" GROUP BY status')  # noqa: S608
        rows = dict(cur.fetchall())
    conn.close()
    return rows


def test_threads_never_open_more_connections_than_pool_size(pg_url, make_store):
    app = f"owtest-{uuid.uuid4().hex[:12]}"
    store = make_store(pg_url, pool_size=POOL, acquire_timeout=60, application_name=app)
    store.migrate()
    peak_in_use = 0

    def unit(i: int) -> None:
        nonlocal peak_in_use
        record = pending(store, request_id=f"t{i}")
        with store.session() as db:
            peak_in_use = max(peak_in_use, store.sessions_in_use)
            db.executesql("SELECT pg_sleep(0.02)")
        store.complete(record.execution_id, status="succeeded", success=True, duration_ms=20)

    with ConnectionSampler(pg_url, app, _dbname(pg_url)) as sampler, \
            ThreadPoolExecutor(max_workers=UNITS) as pool:
        list(pool.map(unit, range(UNITS)))
    assert sampler.samples, "the sampler never ran"
    assert sampler.peak <= POOL
    assert peak_in_use <= POOL
    assert store.sessions_in_use == 0 and store.sessions_waiting == 0
    assert _statuses(pg_url) == {"succeeded": UNITS}
    store.close()
    # A backend leaves pg_stat_activity a moment after its client hangs up.
    deadline = time.monotonic() + 10
    while pg_connections(pg_url, app) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pg_connections(pg_url, app) == 0


def test_gevent_greenlets_never_open_more_connections_than_pool_size(pg_url, tmp_path):
    app = f"owtest-{uuid.uuid4().hex[:12]}"
    with ConnectionSampler(pg_url, app, _dbname(pg_url)) as sampler:
        proc = subprocess.run(
            [PYTHON, "-m", "tests.store.run_store", "gevent-load", pg_url, app, str(UNITS),
             str(POOL)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**os.environ, "STORE_FOLDER": str(tmp_path / "migrations")},
        )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["errors"] == []
    assert out["peak_in_use"] <= POOL
    # More than one session at a time shows psycopg2 yields to other greenlets under gevent.
    assert out["peak_in_use"] > 1
    assert (out["in_use_after"], out["waiting_after"]) == (0, 0)
    assert sampler.samples and sampler.peak <= POOL
    assert _statuses(pg_url) == {"succeeded": UNITS}


def test_a_closed_port_gives_store_unavailable_quickly(make_store):
    store = make_store(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.migrate()
    with pytest.raises(StoreUnavailable):
        pending(store)
    assert time.monotonic() - started < 5
    assert store.ping(timeout=0.5) is False


def test_store_recovers_by_itself_when_the_database_comes_back(pg_url, make_store):
    target = urlsplit(pg_url)
    proxy = TcpProxy((target.hostname, target.port or 5432)).start()
    port = proxy.port
    store = make_store(_via_port(pg_url, port), pool_size=3, acquire_timeout=2)
    store.migrate()
    before = pending(store)
    assert store.ping()

    proxy.stop()
    with pytest.raises(StoreUnavailable):
        pending(store)
    with pytest.raises(StoreUnavailable):
        store.get(before.execution_id)
    assert store.ping(timeout=0.5) is False
    assert store.sessions_in_use == 0

    proxy = TcpProxy((target.hostname, target.port or 5432), port=port).start()
    try:
        assert store.ping() is True
        assert store.get(before.execution_id) == before
        after = pending(store)
        assert store.complete(after.execution_id, status="succeeded", success=True)
    finally:
        store.close()
        proxy.stop()


def test_a_store_built_while_the_database_is_down_starts_working_when_it_is_up(
    pg_url, make_store
):
    target = urlsplit(pg_url)
    port = free_port()
    store = make_store(_via_port(pg_url, port), pool_size=2, acquire_timeout=2)
    with pytest.raises(StoreUnavailable):
        store.migrate()
    proxy = TcpProxy((target.hostname, target.port or 5432), port=port).start()
    try:
        record = pending(store)  # migrates on first use
        assert store.get(record.execution_id) == record
    finally:
        store.close()
        proxy.stop()


def test_a_statement_past_its_timeout_is_store_unavailable(pg_url, make_store):
    store = make_store(pg_url, statement_timeout=0.2)
    store.migrate()
    with pytest.raises(StoreUnavailable), store.session() as db:
        db.executesql("SELECT pg_sleep(2)")
    assert store.ping()


@pytest.mark.parametrize("children", [6])
def test_processes_starting_together_migrate_without_breaking_each_other(
    pg_url, tmp_path, children
):
    go = tmp_path / "go"
    shared = tmp_path / "shared-migrations"
    procs = []
    for i in range(children):
        # Half share one migrations folder (gunicorn workers); half have their own.
        folder = shared if i % 2 else tmp_path / f"own-{i}"
        procs.append(subprocess.Popen(
            [PYTHON, "-m", "tests.store.run_store", "migrate", pg_url, str(folder), str(go)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    time.sleep(0.5)  # let every child import and wait at the gate
    go.touch()
    outcomes = []
    try:
        for p in procs:
            outcomes.append((p.returncode, *p.communicate(timeout=60)))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    results = []
    for (_, out, err), p in zip(outcomes, procs, strict=True):
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert len({r["execution_id"] for r in results}) == children
    assert _statuses(pg_url) == {"pending": children}
    assert sorted(Path(shared).glob("*.table")), "PyDAL wrote no migration file"


def test_a_table_missing_new_columns_is_migrated_by_the_next_start(pg_url, make_store, tmp_path):
    # An older deployment's table: some columns this version added do not exist yet.
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute(
            f'CREATE TABLE "{TABLE}" (id SERIAL PRIMARY KEY, execution_id VARCHAR(64) NOT NULL,'
            " namespace VARCHAR(256), action_name VARCHAR(600) NOT NULL,"
            " action_type VARCHAR(16) NOT NULL, payload TEXT, blocking CHAR(1),"
            " timeout INTEGER, activation_id VARCHAR(64), result TEXT, duration_ms INTEGER,"
            " status VARCHAR(16) NOT NULL, success CHAR(1), error TEXT,"
            " created_at TIMESTAMP NOT NULL, completed_at TIMESTAMP)"
        )
    conn.close()
    store = make_store(pg_url, folder=str(tmp_path / "fresh"))
    store.migrate()
    record = pending(store, trace_id="t", idempotency_key="k", callback_url="http://cb")
    assert store.get(record.execution_id) == record


def test_units_of_work_are_cheap(pg_url, make_store):
    """One DAL per store, a pooled connection per call: far below a DAL-per-call cost."""
    store = make_store(pg_url, pool_size=2)
    store.migrate()
    record = pending(store)
    calls = 200
    started = time.perf_counter()
    for _ in range(calls):
        store.get(record.execution_id)
    per_call = (time.perf_counter() - started) / calls
    # A loose bound (a shared 2-core machine): a DAL and define_table per call costs tens of ms.
    assert per_call < 0.05


def test_ping_is_false_when_no_session_is_free(pg_url, make_store):
    store = make_store(pg_url, pool_size=1)
    store.migrate()
    with held_session(store):
        assert store.ping(timeout=0.2) is False
    assert store.ping() is True
