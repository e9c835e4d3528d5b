"""``owaction serve`` and ``owaction healthcheck`` as real processes: one parent runs REST, gRPC
and the worker, forwards stop signals, and stops everything when one of them dies."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import module_env
from tests.procs import PYTHON, Proc, free_port, wait_for_http


def children_of(pid: int) -> list[int]:
    """Live direct children of ``pid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path("/proc", str(pid), "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def healthcheck(env: dict, *role: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "owaction", "healthcheck", *role],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=30)


def start_serve(tmp_path, emulator) -> tuple[Proc, dict]:
    env = module_env(tmp_path, emulator, f"sqlite://{tmp_path}/owaction.sqlite",
                     REST_PORT=str(free_port()), GRPC_PORT=str(free_port()),
                     GRPC_METRICS_PORT="0", WORKER_METRICS_PORT="0", WEB_WORKERS="1",
                     WEB_GRACEFUL_TIMEOUT="3", GRPC_GRACE="3", WORKER_POLL_INTERVAL="0.5",
                     LOG_DIR=str(tmp_path / "log"))
    proc = Proc([PYTHON, "-m", "owaction", "serve"], env=env, log_path=tmp_path / "serve.log")
    wait_for_http(f"http://127.0.0.1:{env['REST_PORT']}/health", proc.popen, timeout=40)
    assert wait_until(lambda: healthcheck(env, "serve").returncode == 0), proc.output()
    return proc, env


def test_serve_runs_all_three_and_sigterm_stops_them_with_exit_0(tmp_path, emulator):
    proc, env = start_serve(tmp_path, emulator)
    try:
        kids = children_of(proc.pid)
        assert len(kids) == 3, proc.output()
        for role in ("rest", "grpc", "worker"):
            checked = healthcheck(env, role)
            assert checked.returncode == 0, checked.stderr
        proc.signal(signal.SIGTERM)
        assert proc.popen.wait(30) == 0, proc.output()
        assert not any(alive(k) for k in kids)
        # Nothing answers any more, and the check says so for each role.
        for role in ("rest", "grpc"):
            checked = healthcheck(env, role)
            assert checked.returncode == 1 and role.upper() in checked.stderr.upper()
    finally:
        proc.stop()


def test_one_role_dying_stops_the_others_and_exits_1(tmp_path, emulator):
    proc, env = start_serve(tmp_path, emulator)
    try:
        kids = children_of(proc.pid)
        grpc_pid = next(k for k in kids
                        if b"grpc" in Path("/proc", str(k), "cmdline").read_bytes())
        os.kill(grpc_pid, signal.SIGKILL)
        assert proc.popen.wait(30) == 1, proc.output()
        assert not any(alive(k) for k in kids)
        assert "serve_child_exit" in proc.output() and "role=grpc" in proc.output()
    finally:
        proc.stop()


def test_sigint_is_forwarded_and_exits_130(tmp_path, emulator):
    proc, env = start_serve(tmp_path, emulator)
    try:
        kids = children_of(proc.pid)
        os.kill(proc.pid, signal.SIGINT)  # only the parent: it must pass the signal on
        assert proc.popen.wait(30) == 130, proc.output()
        assert not any(alive(k) for k in kids)
    finally:
        proc.stop()


def test_worker_check_fails_on_a_stale_or_missing_heartbeat(tmp_path, emulator):
    env = module_env(tmp_path, emulator, f"sqlite://{tmp_path}/owaction.sqlite",
                     WORKER_POLL_INTERVAL="1", REQUEST_TIMEOUT="70")
    checked = healthcheck(env, "worker")
    assert checked.returncode == 1 and "no heartbeat" in checked.stderr
    beat = Path(env["DATA_DIR"]) / "worker.heartbeat"
    beat.parent.mkdir(parents=True, exist_ok=True)
    beat.touch()
    assert healthcheck(env, "worker").returncode == 0
    old = time.time() - 200  # past 3 polls + REQUEST_TIMEOUT + 30 s
    os.utime(beat, (old, old))
    checked = healthcheck(env, "worker")
    assert checked.returncode == 1 and "last pass" in checked.stderr


@pytest.mark.parametrize(("role_env", "expected"), [("grpc", "gRPC"), ("rest", "REST")])
def test_without_an_argument_the_role_comes_from_owaction_role(tmp_path, emulator, role_env,
                                                                  expected):
    env = module_env(tmp_path, emulator, f"sqlite://{tmp_path}/owaction.sqlite",
                     REST_PORT=str(free_port()), GRPC_PORT=str(free_port()),
                     OWACTION_ROLE=role_env)
    checked = healthcheck(env)
    assert checked.returncode == 1
    assert checked.stderr.startswith(f"owaction healthcheck: {expected} ")
