"""2,000 idle keep-alive connections open to a real gunicorn, and invocations still answered."""

from __future__ import annotations

import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import module_env as base_module_env
from tests.rest.conftest import rest_env
from tests.rest.helpers import make_token

pytestmark = pytest.mark.postgres

IDLE = 2000
CHEAP = b"GET /api/v1/stats HTTP/1.1\r\nHost: test\r\n\r\n"  # 401 at once, keeps the connection


def read_answer(sock: socket.socket) -> None:
    """Read one whole 401 answer, so what stays unread later can only be the server's."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), head[:100]
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)


def open_idle(port: int, count: int) -> list[socket.socket]:
    """``count`` connections: half after one answered request, then half that send nothing."""
    held = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        if i < count // 2:
            sock.sendall(CHEAP)
            read_answer(sock)
        held.append(sock)
    return held


def still_open(held: list[socket.socket]) -> int:
    """How many of the connections the server has not closed (nothing more is ever sent on
    them, so reading end-of-file means closed)."""
    count = 0
    for sock in held:
        sock.setblocking(False)
        try:
            data = sock.recv(65536, socket.MSG_PEEK)
        except BlockingIOError:
            count += 1
        except OSError:
            pass
        else:
            count += bool(data)  # anything but end-of-file: still open
    return count


def invoke_many(url: str, n: int = 20) -> list[tuple[int, float]]:
    token = make_token()

    def call(i: int) -> tuple[int, float]:
        started = time.monotonic()
        r = requests.post(f"{url}/api/v1/actions/invoke", json={"action_name": "hello"},
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
        return r.status_code, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(call, range(n)))


@pytest.fixture(scope="module")
def module_env(emulator, rest_pg_url, tmp_path_factory) -> dict[str, str]:
    return rest_env(base_module_env(tmp_path_factory.mktemp("idle"), emulator, rest_pg_url),
                    WEB_WORKERS="2", BREAKER_FAIL_MAX="5")


def test_with_the_defaults_idle_connections_are_shed_and_invocations_answered(
        start_gunicorn, module_env, emu):
    # 2 workers x WEB_WORKER_CONNECTIONS 1000: the idle ones fill every place, and gunicorn
    # closes each WEB_KEEPALIVE (2 s) after its last request, so a new caller waits in the
    # accept queue for a place for about that long.
    server = start_gunicorn(module_env)
    held = open_idle(server.port, IDLE)
    try:
        answers = invoke_many(server.url)
        assert [status for status, _ in answers] == [200] * len(answers)
        assert max(seconds for _, seconds in answers) < 15
        deadline = time.monotonic() + 60
        while still_open(held) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert still_open(held) == 0  # every idle connection was closed by the server
    finally:
        for sock in held:
            sock.close()
    health = requests.get(server.url + "/health", timeout=10).json()
    assert health["breaker"] == "closed"


def test_room_for_them_keeps_2000_idle_connections_open_while_invocations_run(
        start_gunicorn, module_env, emu):
    server = start_gunicorn({**module_env, "WEB_KEEPALIVE": "120",
                             "WEB_WORKER_CONNECTIONS": "2500"})
    held = open_idle(server.port, IDLE)
    try:
        answers = invoke_many(server.url)
        assert [status for status, _ in answers] == [200] * len(answers)
        assert max(seconds for _, seconds in answers) < 10
        assert still_open(held) == IDLE
    finally:
        for sock in held:
            sock.close()
