"""Child processes for the store tests: ``python -m tests.store.run_store MODE ARGS...``.

``gevent-load URL APP N POOL``  patches with gevent *before* importing the store, then runs N
    greenlets, each recording an execution, holding a session ~20 ms and completing it.
``migrate URL FOLDER GO_FILE``  waits until GO_FILE exists (so all children start together),
    migrates and records one execution.
Each prints one JSON line with its outcome.
"""

from __future__ import annotations

import json
import os
import sys
import time


def gevent_load(url: str, app: str, count: int, pool_size: int) -> dict:
    from gevent import monkey

    monkey.patch_all()
    import gevent

    from owaction.store import ExecutionStore, StoreUnavailable

    store = ExecutionStore(url, pool_size=pool_size, acquire_timeout=60,
                           folder=os.environ["STORE_FOLDER"], application_name=app)
    store.migrate()
    peak_in_use = 0
    errors: list[str] = []

    def one(i: int) -> None:
        nonlocal peak_in_use
        try:
            record = store.create_pending(
                namespace="guest", action_name="load", action_type="action",
                payload={"i": i}, blocking=True, timeout=1000, source="grpc", caller="load",
                request_id=f"g{i}",
            )
            with store.session() as db:
                peak_in_use = max(peak_in_use, store.sessions_in_use)
                # pg_sleep proves psycopg2 yields to other greenlets while the server works.
                db.executesql("SELECT pg_sleep(0.02)")
            store.complete(record.execution_id, status="succeeded", success=True,
                           result={"i": i}, duration_ms=20)
        except StoreUnavailable as exc:
            errors.append(str(exc))

    started = time.monotonic()
    gevent.joinall([gevent.spawn(one, i) for i in range(count)], raise_error=True)
    elapsed = time.monotonic() - started
    store.close()
    return {"errors": errors, "peak_in_use": peak_in_use, "elapsed": elapsed,
            "waiting_after": store.sessions_waiting, "in_use_after": store.sessions_in_use}


def migrate(url: str, folder: str, go_file: str) -> dict:
    from owaction.store import ExecutionStore

    deadline = time.monotonic() + 30
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            return {"error": "never told to go"}
        time.sleep(0.005)
    store = ExecutionStore(url, pool_size=2, folder=folder)
    store.migrate()
    record = store.create_pending(
        namespace="guest", action_name="migrated", action_type="action", payload=None,
        blocking=False, timeout=None, source="worker", caller=f"pid{os.getpid()}",
        request_id=None,
    )
    store.close()
    return {"execution_id": record.execution_id}


def main(argv: list[str]) -> int:
    mode, *args = argv
    if mode == "gevent-load":
        url, app, count, pool = args
        out = gevent_load(url, app, int(count), int(pool))
    elif mode == "migrate":
        out = migrate(*args)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
