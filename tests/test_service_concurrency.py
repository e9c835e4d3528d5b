"""200 service calls in flight against a 1-second action, on PostgreSQL, under gevent and under
threads: the database connections stay within DB_POOL_SIZE and every row ends complete."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid

import psycopg2
import pytest

from tests.conftest import TEST_SECRET
from tests.procs import ROOT

POOL = 5
CALLS = 200


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["gevent", "threads"])
def test_burst_keeps_db_connections_within_the_pool(mode, pg_url, emulator, tmp_path):
    app_name = f"burst-{uuid.uuid4().hex[:8]}"
    env = {
        "MODULE_SECRET_KEY": TEST_SECRET,
        "OPENWHISK_API_HOST": emulator.url,
        "OPENWHISK_AUTH_KEY": emulator.auth,
        "DATABASE_URL": pg_url,
        "DB_POOL_SIZE": str(POOL),
        "DATA_DIR": str(tmp_path),
        "DAL_FOLDER": str(tmp_path / "dal"),
        "APP_NAME": app_name,
        "PATH": "/usr/bin:/bin",
    }
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        conn = psycopg2.connect(pg_url.replace("postgres://", "postgresql://", 1))
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            (app_name,))
                peak = max(peak, cur.fetchone()[0])
                time.sleep(0.02)
        conn.close()

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "service_burst.py"), mode, str(CALLS), "1000"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=240,
        )
    finally:
        stop.set()
        sampler.join()
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["outcomes"] == {"succeeded": CALLS}, summary
    assert summary["rows"] == CALLS and summary["statuses"] == {"succeeded": CALLS}, summary
    assert summary["in_use_after"] == 0
    assert 0 < peak <= POOL, f"peak {peak} connections for pool {POOL}"
