"""Stale keep-alive connections (issue 9): connections idle longer than ``keepalive_idle`` are
discarded before reuse, so a POST never goes out on one the server is closing."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from owaction.openwhisk import ActionResult


def test_bursts_separated_by_idle_gaps_all_succeed(make_client, start_emulator, caplog):
    emu = start_emulator("--keepalive-timeout", "1")
    client = make_client(api_host=emu.url, auth_key=emu.auth, keepalive_idle=0.5,
                         pool_size=20)
    outcomes = []
    with caplog.at_level(logging.DEBUG, logger="owaction.openwhisk"), \
            ThreadPoolExecutor(max_workers=10) as pool:
        for burst in range(3):
            if burst:
                time.sleep(1.5)  # longer than the server keeps an idle connection
            outcomes += list(pool.map(
                lambda i, b=burst: client.invoke_action("echo", {"b": b, "i": i}, result=True),
                range(10),
            ))
    assert len(outcomes) == 30
    assert all(isinstance(o, ActionResult) and o.success for o in outcomes)
    assert sorted((o.result["b"], o.result["i"]) for o in outcomes) == [
        (b, i) for b in range(3) for i in range(10)
    ]
    # The pooled connections from earlier bursts were discarded by the client itself.
    discarded = [r for r in caplog.records if "discarding a keep-alive connection" in r.message]
    assert discarded


def test_connections_are_reused_within_the_idle_limit(make_client, start_emulator, caplog):
    emu = start_emulator("--keepalive-timeout", "5")
    client = make_client(api_host=emu.url, auth_key=emu.auth, keepalive_idle=3)
    with caplog.at_level(logging.DEBUG):
        for i in range(5):
            assert client.invoke_action("echo", {"i": i}, result=True).result == {"i": i}
    new_connections = [r for r in caplog.records
                       if r.name == "urllib3.connectionpool" and "Starting new" in r.message]
    assert len(new_connections) == 1
    assert not [r for r in caplog.records if "discarding a keep-alive" in r.message]
