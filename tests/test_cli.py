"""The owaction command: help everywhere, exit codes, config check, token, db migrate, and
`owaction run` with `invoke` over REST and gRPC against the stack it starts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jwt
import psutil
import pytest
import requests

from tests.conftest import TEST_SECRET
from tests.procs import ROOT, free_port

OWACTION = str(Path(sys.executable).parent / "owaction")


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ["PATH"], **(env or {})}
    return subprocess.run([OWACTION, *args], env=full, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("args", [
    ["--help"], ["run", "--help"], ["rest", "--help"], ["grpc", "--help"],
    ["worker", "--help"], ["token", "--help"], ["invoke", "--help"], ["config", "--help"],
    ["config", "check", "--help"], ["db", "--help"], ["db", "migrate", "--help"],
])
def test_help_works_everywhere(args):
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    assert "usage: owaction" in proc.stdout


def test_emulator_help_is_the_emulators():
    proc = run("emulator", "--", "--help")
    assert proc.returncode == 0 and "--seed" in proc.stdout


def test_unknown_subcommand_is_a_usage_error():
    assert run("nonsense").returncode == 2


def test_config_check_on_a_bad_environment_names_each_problem_and_exits_2():
    proc = run("config", "check", env={"MODULE_SECRET_KEY": "short", "GRPC_PORT": "0"})
    assert proc.returncode == 2
    assert "MODULE_SECRET_KEY" in proc.stderr and "GRPC_PORT" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_check_prints_the_effective_settings_with_secrets_masked(tmp_path):
    proc = run("config", "check", env={"MODULE_SECRET_KEY": TEST_SECRET,
                                       "API_KEYS": "svc=very-secret-api-key-123",
                                       "DATA_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "REST_PORT=8082" in proc.stdout and "MODULE_SECRET_KEY=********" in proc.stdout
    assert TEST_SECRET not in proc.stdout and "very-secret-api-key-123" not in proc.stdout


def test_config_check_masks_the_passwords_inside_database_and_redis_urls(tmp_path):
    proc = run("config", "check", env={
        "MODULE_SECRET_KEY": TEST_SECRET, "DATA_DIR": str(tmp_path),
        "DATABASE_URL": "postgresql://owaction:db-pass-4242@db.example:5432/owaction",
        "REDIS_URL": "redis://:redis-pass-4343@cache.example:6379/0"})
    assert proc.returncode == 0, proc.stderr
    assert "db-pass-4242" not in proc.stdout and "redis-pass-4343" not in proc.stdout
    assert "DATABASE_URL=postgres://owaction:********@db.example:5432/owaction" in proc.stdout
    assert "REDIS_URL=redis://:********@cache.example:6379/0" in proc.stdout


def test_token_refuses_a_lifetime_beyond_max_token_ttl():
    env = {"MODULE_SECRET_KEY": TEST_SECRET}
    proc = run("token", "--service", "router_module", "--ttl", "315360000", env=env)
    assert proc.returncode == 2 and "MAX_TOKEN_TTL" in proc.stderr and not proc.stdout
    short = run("token", "--service", "router_module", "--ttl", "600",
                env={**env, "MAX_TOKEN_TTL": "600", "TOKEN_TTL": "600"})
    assert short.returncode == 0, short.stderr


def test_token_mints_a_verifiable_token_and_refuses_unknown_permissions():
    env = {"MODULE_SECRET_KEY": TEST_SECRET}
    proc = run("token", "--service", "router_module", "--permissions", "read", "--ttl", "60",
               env=env)
    assert proc.returncode == 0, proc.stderr
    claims = jwt.decode(proc.stdout.strip(), TEST_SECRET, algorithms=["HS256"])
    assert claims["service"] == "router_module" and claims["permissions"] == ["read"]
    assert claims["exp"] - claims["iat"] == 60
    assert run("token", "--service", "x", "--permissions", "root", env=env).returncode == 2


def test_db_migrate_creates_the_table(tmp_path):
    proc = run("db", "migrate", env={"MODULE_SECRET_KEY": TEST_SECRET,
                                     "DATA_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "owaction.sqlite").exists()


def test_db_migrate_reports_an_unreachable_database():
    proc = run("db", "migrate", env={"MODULE_SECRET_KEY": TEST_SECRET,
                                     "DATABASE_URL": f"postgresql://u@127.0.0.1:{free_port()}/x"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_run_brings_up_the_stack_and_invoke_works_over_rest_and_grpc(tmp_path):
    ports = {"REST_PORT": free_port(), "GRPC_PORT": free_port(), "EMULATOR_PORT": free_port()}
    env = {"PATH": os.environ["PATH"], "DATA_DIR": str(tmp_path / "data"),
           "GRPC_METRICS_PORT": "0", "WORKER_METRICS_PORT": "0",
           **{k: str(v) for k, v in ports.items()}}
    out = open(tmp_path / "run.out", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([OWACTION, "run"], env=env, stdout=out, stderr=subprocess.STDOUT,
                            cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        text = ""
        while "Ctrl-C stops everything" not in text:
            assert proc.poll() is None, text[-3000:]
            assert time.monotonic() < deadline, text[-3000:]
            time.sleep(0.3)
            text = (tmp_path / "run.out").read_text()
        token = re.search(r"Bearer ([\w.-]+)", text).group(1)
        url = re.search(r"curl -s -X POST (\S+)", text).group(1)
        reply = requests.post(url, headers={"Authorization": f"Bearer {token}"},
                              json={"action_name": "hello", "payload": {}}, timeout=30)
        assert reply.status_code == 200 and reply.json()["result"] == {"message": "Hello World"}

        # The router-style example, pasted into a shell as printed: #weather is mapped by the
        # example commands file and the generated service key is read from where it is kept.
        router_curl = re.search(r"""(curl -s -X POST \S+/api/v1/execute.*?berlin"\}')""", text,
                                re.DOTALL).group(1)
        service_key = (tmp_path / "data" / "dev_service_key").read_text().strip()
        assert service_key not in text
        pasted = subprocess.run(["bash", "-c", router_curl], capture_output=True, text=True,
                                timeout=30, cwd=ROOT)
        module_reply = json.loads(pasted.stdout)
        assert module_reply.get("success") is True, (module_reply, router_curl)
        assert module_reply["chat_message"] == "Weather for berlin: sunny"

        secret = (tmp_path / "data" / "dev_module_secret_key").read_text().strip()
        cli_env = {**env, "MODULE_SECRET_KEY": secret}
        via_grpc = run("invoke", "hello", "--via", "grpc", "-p", "name=Grpc", env=cli_env)
        assert via_grpc.returncode == 0, via_grpc.stderr
        assert '\\"message\\":\\"Hello Grpc\\"' in via_grpc.stdout
        via_rest = run("invoke", "hello", "-p", "name=Rest", env=cli_env)
        assert via_rest.returncode == 0 and "Hello Rest" in via_rest.stdout
        failed = run("invoke", "fail", env=cli_env)
        assert failed.returncode == 1 and "application error" in failed.stdout
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4  # emulator, gunicorn master and workers, grpc, worker
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=60)
        out.close()
    assert code == 130
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
