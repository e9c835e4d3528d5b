"""Start-up registration with the router: retried until accepted, once per host, again after
the commands change."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from owaction.commands import CommandMap
from owaction.config import load_settings
from owaction.registration import Registrar, backoff_delays
from tests.conftest import TEST_SECRET

SERVICE_KEY = "router-key-" + "z" * 24


class Router:
    """A stand-in router that refuses the first ``refuse`` registrations, then accepts."""

    def __init__(self, refuse: int):
        self.refuse = refuse
        self.calls: list[tuple[str, dict, dict]] = []
        router = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                router.calls.append((self.path, dict(self.headers), body))
                self.send_response(503 if len(router.calls) <= router.refuse else 201)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def router():
    r = Router(refuse=2)
    yield r
    r.close()


@pytest.fixture
def commands(tmp_path):
    path = tmp_path / "commands.yaml"
    path.write_text("commands:\n  '#weather': {action: waddlebot/weather, "
                    "description: Weather, usage: '#weather <place>'}\n")
    return path


def settings_for(router, tmp_path, **extra):
    return load_settings({
        "MODULE_SECRET_KEY": TEST_SECRET, "ROUTER_URL": router.url, "SERVICE_KEY": SERVICE_KEY,
        "DATA_DIR": str(tmp_path), "PUBLIC_REST_URL": "http://owaction:8082",
        "PUBLIC_GRPC_ADDRESS": "owaction:50062", **extra,
    })


def fast():
    return iter(lambda: 0.05, None)


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_registers_after_two_refusals_with_the_documented_body(router, commands, tmp_path):
    mapping = CommandMap(str(commands))
    registrar = Registrar(settings_for(router, tmp_path), mapping, delays=fast)
    started = time.monotonic()
    assert registrar.start() is True
    assert time.monotonic() - started < 0.5  # never delays serving
    assert registrar.registered.wait(10)
    registrar.stop()
    assert len(router.calls) == 3
    path, headers, body = router.calls[-1]
    assert path == "/api/v1/modules/register"
    assert headers["X-Service-Key"] == SERVICE_KEY
    assert body == {
        "module_name": "openwhisk_action_module", "module_version": "1.0.0",
        "rest_url": "http://owaction:8082", "grpc_address": "owaction:50062",
        "health_url": "http://owaction:8082/health",
        "commands": [{"command": "#weather", "description": "Weather",
                      "usage": "#weather <place>", "action": "waddlebot/weather"}],
    }


def test_registers_again_when_the_commands_change(router, commands, tmp_path):
    router.refuse = 0
    mapping = CommandMap(str(commands))
    registrar = Registrar(settings_for(router, tmp_path), mapping, delays=fast)
    registrar.start()
    assert registrar.registered.wait(10)
    commands.write_text("commands:\n  '#hello': {action: hello}\n  '#echo': {action: echo}\n")
    os.utime(commands, (time.time() + 5, time.time() + 5))
    assert mapping.reload() is True
    wait_for(lambda: len(router.calls) == 2)
    registrar.stop()
    assert [c["command"] for c in router.calls[-1][2]["commands"]] == ["#hello", "#echo"]


def test_only_one_process_per_host_registers(router, commands, tmp_path):
    settings = settings_for(router, tmp_path)
    first = Registrar(settings, CommandMap(str(commands)), delays=fast)
    second = Registrar(settings, CommandMap(str(commands)), delays=fast)
    assert first.start() is True
    assert second.start() is False  # the lock is held
    first.stop()
    assert second.start() is True  # and is free again once the holder is gone
    second.stop()


def test_nothing_happens_without_a_router_url(tmp_path, commands):
    settings = load_settings({"MODULE_SECRET_KEY": TEST_SECRET, "DATA_DIR": str(tmp_path)})
    assert Registrar(settings, CommandMap(str(commands))).start() is False


def test_backoff_is_capped_and_jittered():
    delays = backoff_delays(first=1, cap=8)
    values = [next(delays) for _ in range(8)]
    assert all(0.5 <= v <= 8 for v in values)
    assert max(values[4:]) <= 8 and min(values[4:]) >= 4
