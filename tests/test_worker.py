"""The completion worker: accepted executions complete, crashed ones become unknown."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from owaction.openwhisk.errors import NotFound
from owaction.service import CallContext
from owaction.worker import CompletionWorker, lease_for
from tests.conftest import TEST_SECRET

CTX = CallContext(source="rest", caller="svc")


def wait_activation(service, activation_id, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return service.client.get_activation(activation_id)
        except NotFound:  # not stored yet
            time.sleep(0.1)
    raise AssertionError("activation never appeared")


def test_accepted_execution_is_completed_from_its_activation(make_service, db_url):
    service = make_service(db_url)
    accepted = service.invoke_action_async(CTX, action_name="hello", payload={"name": "W"})
    wait_activation(service, accepted.activation_id)
    counts = CompletionWorker(service, owner="w1").run_once()
    assert counts["completed"] == 1
    record = service.get_execution(accepted.execution_id, refresh=False)
    assert record.status == "succeeded" and record.result == {"message": "Hello W"}


def test_trigger_fire_is_completed_too(make_service):
    service = make_service()
    fired = service.fire_trigger(CTX, trigger_name="ping", payload={"x": 1})
    wait_activation(service, fired.activation_id)
    CompletionWorker(service, owner="w1").run_once()
    assert service.get_execution(fired.execution_id, refresh=False).status == "succeeded"


def test_pending_without_activation_becomes_unknown_after_the_grace(make_service, db_url):
    service = make_service(db_url, PENDING_GRACE="1")
    record = service.store.create_pending(
        namespace="guest", action_name="hello", action_type="action", payload={},
        blocking=True, timeout=None, source="rest", caller="svc", request_id=None,
    )
    worker = CompletionWorker(service, owner="w1")
    assert worker.run_once()["unknown"] == 0  # still within the grace period
    time.sleep(2.1)  # the store compares times to the second
    assert worker.run_once()["unknown"] == 1
    final = service.get_execution(record.execution_id)
    assert final.status == "unknown" and "may have run" in final.error


def test_accepted_that_never_finishes_becomes_unknown_after_max_age(make_service):
    # The store keeps whole seconds, so a row's age reads up to a second more than it is:
    # a maximum age of 3 s leaves the first look well inside it.
    service = make_service(ACCEPTED_MAX_AGE="3")
    record = service.store.create_pending(
        namespace="guest", action_name="hello", action_type="async", payload={},
        blocking=False, timeout=None, source="rest", caller="svc", request_id=None,
    )
    service.store.mark_accepted(record.execution_id, activation_id="0" * 32)
    worker = CompletionWorker(service, owner="w1")
    assert worker.run_once()["waiting"] == 1
    # Past the maximum age, and the lease from the first look has run out.
    time.sleep(max(3.1, lease_for(1)) + 1)
    assert worker.run_once()["unknown"] == 1
    assert service.get_execution(record.execution_id).status == "unknown"


def test_two_workers_complete_each_row_once(make_service, pg_url):
    service = make_service(pg_url)
    accepted = [service.invoke_action_async(CTX, action_name="echo", payload={"i": i})
                for i in range(12)]
    for result in accepted:
        wait_activation(service, result.activation_id)
    workers = [CompletionWorker(service, owner=f"w{i}") for i in range(2)]
    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda w: w.run_once(), workers))
    assert sum(c["completed"] for c in counts) == 12
    statuses = {service.get_execution(r.execution_id, refresh=False).status for r in accepted}
    assert statuses == {"succeeded"}


def test_backoff_doubles_and_is_capped():
    assert [lease_for(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert lease_for(50) == 60.0


def test_worker_process_runs_one_pass_and_exits(emulator, tmp_path):
    env = {
        "MODULE_SECRET_KEY": TEST_SECRET, "OPENWHISK_API_HOST": emulator.url,
        "DATA_DIR": str(tmp_path), "WORKER_METRICS_PORT": "0", "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run([sys.executable, "-m", "owaction", "worker", "--once"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "worker_start" in proc.stderr and "worker_stop" in proc.stderr


def test_worker_serves_metrics_and_stops_on_sigterm(emulator, tmp_path):
    import signal

    import requests

    from tests.procs import Proc, free_port, wait_for_http

    port = free_port()
    env = {
        "MODULE_SECRET_KEY": TEST_SECRET, "OPENWHISK_API_HOST": emulator.url,
        "DATA_DIR": str(tmp_path), "WORKER_METRICS_PORT": str(port),
        "WORKER_POLL_INTERVAL": "0.2",
    }
    proc = Proc([sys.executable, "-m", "owaction", "worker"], env=env,
                log_path=tmp_path / "worker.out")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/metrics", proc.popen)
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "owaction_callback_deliveries_total" in text
        assert "owaction_breaker_state" in text
        # A one-shot pass beside the running worker needs none of its port (same environment).
        once = subprocess.run([sys.executable, "-m", "owaction", "worker", "--once"],
                              env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=60)
        assert once.returncode == 0, once.stderr
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).ok
        proc.signal(signal.SIGTERM)
        assert proc.popen.wait(timeout=20) == 0
    finally:
        proc.stop()
