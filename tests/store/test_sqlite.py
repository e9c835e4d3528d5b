"""SQLite specifics: several processes sharing one database file."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time

import pytest

from owaction.store import TABLE, ExecutionStore, StoreUnavailable
from tests.procs import PYTHON, ROOT


def test_processes_starting_together_share_one_sqlite_file(tmp_path):
    url = f"sqlite://{tmp_path}/shared.sqlite"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "tests.store.run_store", "migrate", url,
             str(tmp_path / ("shared" if i % 2 else f"own-{i}")), str(go)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(4)
    ]
    time.sleep(0.5)  # let every child import and wait at the gate
    go.touch()
    outcomes = []
    try:
        outcomes = [(p, *p.communicate(timeout=60)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, _out, err in outcomes:
        assert p.returncode == 0, err
    ids = {json.loads(out.strip().splitlines()[-1])["execution_id"] for _, out, _ in outcomes}
    assert len(ids) == 4
    with contextlib.closing(sqlite3.connect(tmp_path / "shared.sqlite")) as conn:
        rows = conn.execute(f'SELECT execution_id FROM "{TABLE}"').fetchall()  # noqa: S608
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert {r[0] for r in rows} == ids
    assert mode == "wal"


def test_a_sqlite_file_in_a_missing_directory_is_store_unavailable(tmp_path):
    store = ExecutionStore(f"sqlite://{tmp_path}/missing/dir/x.sqlite",
                           folder=str(tmp_path / "m"))
    with pytest.raises(StoreUnavailable):
        store.migrate()
    assert store.ping() is False


def test_importing_pydal_before_gevent_patches_is_refused(tmp_path):
    code = (
        "import pydal\n"
        "from gevent import monkey; monkey.patch_all()\n"
        "from owaction.store import ExecutionStore\n"
        f"ExecutionStore('sqlite://{tmp_path}/x.sqlite')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert "pydal was imported before gevent.monkey.patch_all()" in proc.stderr


def test_unsupported_database_urls_are_refused():
    with pytest.raises(ValueError, match="sqlite:// or postgresql://"):
        ExecutionStore("mysql://u@h/db")


def test_from_settings_uses_the_database_url_pool_size_timeout_and_data_dir(tmp_path):
    from owaction.config import load_settings
    from tests.conftest import TEST_SECRET

    settings = load_settings({
        "MODULE_SECRET_KEY": TEST_SECRET, "DATA_DIR": str(tmp_path / "data"),
        "DB_POOL_SIZE": "3", "DB_TIMEOUT": "0.5",
    })
    store = ExecutionStore.from_settings(settings)
    try:
        assert (store.pool_size, store.acquire_timeout) == (3, 0.5)
        store.migrate()
        assert (tmp_path / "data" / "owaction.sqlite").is_file()
        # PyDAL keeps an absolute SQLite file's migration files beside it.
        assert list((tmp_path / "data").glob("*_openwhisk_action_executions.table"))
    finally:
        store.close()
