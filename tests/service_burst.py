"""Run N service calls at once under gevent or threads; print a JSON summary.

Used by test_service_concurrency.py in a subprocess, because gevent must patch before requests
and pydal are imported, which the test process itself must not do.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and sys.argv[1] == "gevent":
    from gevent import monkey

    monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402


def main(mode: str, n: int, ms: int) -> None:
    from owaction.config import load_settings
    from owaction.openwhisk.client import OpenWhiskClient
    from owaction.service import ActionService, CallContext
    from owaction.store import ExecutionStore

    settings = load_settings(os.environ)
    store = ExecutionStore(settings.database_url, pool_size=settings.db_pool_size,
                           acquire_timeout=30, folder=os.environ["DAL_FOLDER"],
                           application_name=os.environ["APP_NAME"])
    store.migrate()
    service = ActionService(settings=settings, client=OpenWhiskClient.from_settings(settings),
                            store=store)
    ctx = CallContext(source="rest", caller="burst")

    def one(_i):
        try:
            return service.invoke_action(ctx, action_name="sleep", payload={"ms": ms}).outcome
        except Exception as exc:  # the summary reports any failure by type
            return type(exc).__name__

    started = time.monotonic()
    if mode == "gevent":
        import gevent.pool

        outcomes = gevent.pool.Pool(n).map(one, range(n))
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=n) as pool:
            outcomes = list(pool.map(one, range(n)))
    wall = time.monotonic() - started
    records, _ = store.list(limit=500)
    print(json.dumps({
        "wall": wall,
        "outcomes": {o: outcomes.count(o) for o in set(outcomes)},
        "statuses": {s: [r.status for r in records].count(s)
                     for s in {r.status for r in records}},
        "rows": len(records),
        "in_use_after": store.sessions_in_use,
    }))
    service.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
