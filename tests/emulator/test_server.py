"""The emulator process: options, seeding, keep-alive timeout, TLS, faults off by default."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest
import requests

from owaction.config import GUEST_AUTH_KEY
from tests.procs import PYTHON, Proc, free_port, wait_for_http, wait_for_port

AUTH = tuple(GUEST_AUTH_KEY.split(":"))


def start(tmp_path, *args: str) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc([PYTHON, "-m", "openwhisk_emulator", "--port", str(port), *args],
                log_path=tmp_path / f"emu-{port}.log")
    return proc, f"http://127.0.0.1:{port}"


def test_faults_route_is_absent_without_the_flag(tmp_path):
    proc, url = start(tmp_path)
    try:
        wait_for_http(url + "/api/v1", proc.popen)
        assert requests.get(url + "/_emulator/faults", timeout=5).status_code == 404
        # no seed: an empty namespace
        r = requests.get(url + "/api/v1/namespaces/_/actions", auth=AUTH, timeout=5)
        assert r.json() == []
    finally:
        proc.stop()


def test_custom_auth_key_replaces_the_guest_key(start_emulator):
    emu = start_emulator(auth="11111111-2222-3333-4444-555555555555:" + "k" * 64)
    assert emu.api("GET", "/namespaces").json() == ["guest"]
    r = requests.get(emu.url + "/api/v1/namespaces", auth=AUTH, timeout=5)
    assert r.status_code == 401


def test_seed_from_a_manifest_file(tmp_path):
    (tmp_path / "double.py").write_text("def main(a):\n    return {'n': a.get('n', 1) * 2}\n")
    manifest = tmp_path / "seed.json"
    manifest.write_text(json.dumps({
        "packages": {"tools": {"parameters": {"n": 21}}},
        "actions": [
            {"name": "tools/double", "kind": "python:3", "code": "double.py"},
            {"name": "twice", "sequence": ["/guest/tools/double", "/guest/tools/double"]},
        ],
        "triggers": {"tick": {}},
        "rules": {"tick-rule": {"trigger": "tick", "action": "tools/double",
                                "status": "inactive"}},
    }))
    proc, url = start(tmp_path, "--seed", str(manifest))
    try:
        wait_for_http(url + "/api/v1", proc.popen)
        r = requests.post(url + "/api/v1/namespaces/_/actions/tools/double",
                          params={"blocking": "true", "result": "true"}, auth=AUTH, timeout=30)
        assert r.json() == {"n": 42}
        r = requests.post(url + "/api/v1/namespaces/_/actions/twice",
                          params={"blocking": "true", "result": "true"}, json={"n": 3},
                          auth=AUTH, timeout=30)
        assert r.json() == {"n": 12}
        rule = requests.get(url + "/api/v1/namespaces/_/rules/tick-rule", auth=AUTH, timeout=5)
        assert rule.json()["status"] == "inactive"
    finally:
        proc.stop()


def test_bad_manifest_exits_2_with_a_message(tmp_path):
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text("actions:\n  - name: x\n    sequence: [/guest/missing]\n")
    done = subprocess.run([PYTHON, "-m", "openwhisk_emulator", "--port", str(free_port()),
                           "--seed", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Sequence component does not exist." in done.stderr


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response (headers and Content-Length body), however it was split."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return data


def test_idle_keepalive_connections_are_closed_after_the_timeout(start_emulator):
    emu = start_emulator("--keepalive-timeout", "0.5")
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
        sock.sendall(b"GET /api/v1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        first = _read_response(sock)
        assert first.startswith(b"HTTP/1.1 200")
        time.sleep(1.5)
        # The server has closed its end: reading gives EOF (or a reset).
        try:
            assert sock.recv(65536) == b""
        except ConnectionResetError:
            pass


def test_keepalive_connections_in_use_stay_open(start_emulator):
    emu = start_emulator("--keepalive-timeout", "2")
    session = requests.Session()
    for _ in range(3):
        assert session.get(emu.url + "/api/v1", timeout=5).status_code == 200
        time.sleep(0.3)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a cert")
def test_serves_https_with_a_certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    port = free_port()
    proc = Proc([PYTHON, "-m", "openwhisk_emulator", "--port", str(port), "--certfile", str(cert),
                 "--keyfile", str(key)], log_path=tmp_path / "tls.log")
    try:
        wait_for_port(port, proc.popen)
        r = requests.get(f"https://127.0.0.1:{port}/api/v1/namespaces", auth=AUTH,
                         verify=str(cert), timeout=10)
        assert r.status_code == 200
        assert r.json() == ["guest"]
    finally:
        proc.stop()


def test_bad_options_exit_with_usage_error():
    done = subprocess.run([PYTHON, "-m", "openwhisk_emulator", "--auth", "nocolon"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--auth must be uuid:key" in done.stderr
