"""gunicorn's gevent worker on SQLite, as a real process: a write waiting for SQLite's file lock
(another process writing) waits in an OS thread, not on the gevent hub, and a crash between
OpenWhisk's answer and the completion's commit leaves a row the worker reconciles."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time

import requests

from tests.conftest import module_env as base_module_env
from tests.rest.conftest import rest_env
from tests.rest.helpers import make_token

INVOKE = "/api/v1/actions/invoke"


@contextlib.contextmanager
def write_lock(path: str):
    """SQLite's write lock, held by this (another) process until the block ends."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def rows(path: str, action: str) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
        return conn.execute("SELECT execution_id, status FROM openwhisk_action_executions "
                            "WHERE action_name = ?", (action,)).fetchall()


def one_worker(start_gunicorn, emulator, tmp_path_factory, **env: str):
    tmp = tmp_path_factory.mktemp("sqlite-gevent")
    path = str(tmp / "owaction.sqlite")
    server = start_gunicorn(rest_env(base_module_env(tmp, emulator, f"sqlite://{path}"),
                                     WEB_WORKERS="1", **env))
    return server, path


def invoke_in_background(url: str, body: dict) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def call() -> None:
        try:
            out["reply"] = requests.post(url + INVOKE, json=body, timeout=60,
                                         headers={"Authorization": f"Bearer {make_token()}"})
        except requests.RequestException as exc:
            out["error"] = exc

    thread = threading.Thread(target=call)
    thread.start()
    return thread, out


def test_a_lock_held_by_another_process_does_not_stop_health(start_gunicorn, emulator,
                                                             tmp_path_factory, emu):
    server, path = one_worker(start_gunicorn, emulator, tmp_path_factory, DB_TIMEOUT="6")
    api = server.api()
    assert api.post(INVOKE, {"action_name": "hello"}).status == 200  # migrated, connected
    with write_lock(path):
        thread, out = invoke_in_background(server.url, {"action_name": "hello",
                                                        "payload": {"name": "late"}})
        time.sleep(0.5)  # its pending insert now waits for the lock
        started = time.monotonic()
        health = requests.get(server.url + "/health", timeout=5)
        answered_in = time.monotonic() - started
        assert health.status_code == 200 and health.json()["database"] == "connected"
        assert answered_in < 1.5, f"/health took {answered_in:.1f} s behind a lock wait"
        assert thread.is_alive(), "the invocation should still be waiting for the lock"
    thread.join(30)
    assert out["reply"].status_code == 200
    assert out["reply"].json()["result"] == {"message": "Hello late"}


def test_a_crash_before_the_completion_commit_is_reconciled(start_gunicorn, emulator,
                                                            tmp_path_factory, emu,
                                                            make_service):
    from owaction.worker import CompletionWorker

    server, path = one_worker(start_gunicorn, emulator, tmp_path_factory, DB_TIMEOUT="20")
    assert server.api().post(INVOKE, {"action_name": "hello"}).status == 200
    thread, _ = invoke_in_background(server.url, {"action_name": "sleep",
                                                  "payload": {"ms": 1500}})
    deadline = time.monotonic() + 10
    while not rows(path, "sleep") and time.monotonic() < deadline:
        time.sleep(0.02)
    ((execution_id, status),) = rows(path, "sleep")
    assert status == "pending"  # durable before OpenWhisk was called
    with write_lock(path):
        time.sleep(2.5)  # OpenWhisk has answered; the completion waits for the lock
        server.proc.kill()  # the crash, before the completion could commit
    thread.join(30)
    assert rows(path, "sleep") == [(execution_id, "pending")]

    service = make_service(f"sqlite://{path}", PENDING_GRACE="1")
    time.sleep(1.5)
    counts = CompletionWorker(service, owner="reconciler").run_once()
    assert counts["unknown"] == 1
    record = service.store.get(execution_id)
    assert record.status == "unknown" and "stopped before OpenWhisk answered" in record.error
