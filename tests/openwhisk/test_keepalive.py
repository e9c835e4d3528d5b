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


def _one_response_per_connection_server():
    """A server that answers one request per connection with a keep-alive response and then
    closes the socket without saying so: the client must notice before reusing it."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    connections = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(conn)
            conn.recv(65536)
            body = b'{"n": %d}' % len(connections)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: keep-alive\r\n\r\n%s"
                         % (len(body), body))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener, connections


def test_a_connection_the_server_closed_is_not_reused(make_client):
    # Three POSTs, each on a fresh connection: a POST sent into the closed one would fail
    # (and could not be retried, since it may have run).
    listener, connections = _one_response_per_connection_server()
    try:
        client = make_client(api_host=f"http://127.0.0.1:{listener.getsockname()[1]}",
                             keepalive_idle=60)
        for n in (1, 2, 3):
            time.sleep(0.05)  # the server's close has arrived
            outcome = client.invoke_action("echo", {}, result=True)
            assert isinstance(outcome, ActionResult) and outcome.result == {"n": n}
        assert len(connections) == 3
    finally:
        listener.close()


def test_the_liveness_check_under_gevent_uses_the_system_poll(tmp_path):
    # Under gevent the check must poll with the operating system's poll (gevent's is ten times
    # dearer) and still tell an open connection from one the server closed.
    import subprocess
    import sys

    script = tmp_path / "check.py"
    script.write_text(
        "from gevent import monkey; monkey.patch_all()\n"
        "import select, socket\n"
        "from owaction.openwhisk import transport\n"
        "assert transport._os_poll() is monkey.get_original('select', 'poll')\n"
        "assert transport._os_poll() is not select.poll\n"
        "a, b = socket.socketpair()\n"
        "conn = transport._Connection('127.0.0.1', 1)\n"
        "conn.sock = a\n"
        "assert conn.is_connected\n"
        "b.close()\n"
        "assert not conn.is_connected\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.stdout.strip() == "ok", out.stderr
