"""The production wheel: it holds the module only, and its servers start from a fresh virtualenv.

The wheel is built from a copy of the sources (the emulator included, so the package filter is
what keeps it out) and installed into a new virtualenv without its dependencies; those come
from this environment's site-packages through a ``.pth`` line, so the test runs offline and in
seconds. The servers run with the temporary directory as their working directory: nothing of the
checkout (wsgi.py, grpc_server.py, gunicorn.conf.py, openwhisk_emulator/) is importable.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import grpc
import pytest
import requests

from owaction.store import ExecutionStore
from tests.conftest import module_env
from tests.procs import ROOT, Proc, free_port, wait_for_http, wait_for_port
from tests.rest.helpers import router_token

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("owaction", "openwhisk_emulator"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "wsgi.py", "grpc_server.py", "gunicorn.conf.py"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheels")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "-w", str(out), str(src)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("owaction-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory, wheel) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--no-index", "--no-deps", "--quiet", str(wheel)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    site = Path(subprocess.check_output(
        [str(venv / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True).strip())
    (site / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


def test_the_wheel_holds_the_module_and_nothing_of_the_emulator(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"owaction", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1]
                    + ".dist-info"}
    assert not [n for n in names if "emulator" in n or n.endswith(".proto")]
    for needed in ("owaction/gunicorn_conf.py", "owaction/rest/wsgi.py",
                   "owaction/rpc/openwhisk_action_pb2.py", "owaction/store/session.py",
                   "owaction/service/pipeline.py"):
        assert needed in names
    metadata = next(n for n in names if n.endswith("METADATA"))
    requires = [line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    assert requires and not [r for r in requires if "psutil" in r or "limits" in r]


def test_rest_grpc_and_worker_start_from_the_installed_wheel(fresh_venv, tmp_path, emulator):
    owaction = str(fresh_venv / "bin" / "owaction")
    python = str(fresh_venv / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import importlib.util as u, owaction; print(owaction.__file__); "
         "print(u.find_spec('openwhisk_emulator'), u.find_spec('wsgi'))"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, env={"PYTHONPATH": ""})
    assert where.returncode == 0, where.stderr
    package, missing = where.stdout.splitlines()
    assert package.startswith(str(fresh_venv)) and missing == "None None"

    rest_port, grpc_port = free_port(), free_port()
    env = module_env(tmp_path, emulator, f"sqlite://{tmp_path}/wheel.sqlite",
                     REST_PORT=str(rest_port), GRPC_PORT=str(grpc_port), BIND_HOST="127.0.0.1",
                     GRPC_METRICS_PORT="0", WORKER_METRICS_PORT="0", WEB_WORKERS="1",
                     WORKER_POLL_INTERVAL="0.5", LOG_DIR=str(tmp_path / "log"), PYTHONPATH="")
    refused = subprocess.run([owaction, "emulator"], cwd=tmp_path, env={**env, "PATH": ""},
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode == 1 and "openwhisk_emulator" in refused.stderr
    assert "not installed" in refused.stderr

    procs = []
    try:
        for role in ("rest", "grpc", "worker"):
            procs.append(Proc([owaction, role], env=env, cwd=tmp_path,
                              log_path=tmp_path / f"{role}.log"))
        rest, grpc_proc, worker = procs
        url = f"http://127.0.0.1:{rest_port}"
        wait_for_http(url + "/health", rest.popen, timeout=60)
        wait_for_port(grpc_port, grpc_proc.popen, timeout=60)
        headers = {"Authorization": f"Bearer {router_token()}"}

        answer = requests.post(url + "/api/v1/actions/invoke", headers=headers, timeout=30,
                               json={"action_name": "hello", "payload": {"name": "wheel"}})
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"] == {"message": "Hello wheel"}

        from owaction.rpc import openwhisk_action_pb2 as pb
        from owaction.rpc import openwhisk_action_pb2_grpc as pb_grpc

        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            reply = pb_grpc.OpenWhiskActionServiceStub(channel).InvokeAction(
                pb.InvokeActionRequest(action_name="hello", payload=json.dumps({"name": "rpc"}),
                                       blocking=True),
                metadata=(("authorization", headers["Authorization"]),), timeout=30)
        assert reply.success and json.loads(reply.result) == {"message": "Hello rpc"}

        # Only the worker finishes a non-blocking call's record.
        queued = requests.post(url + "/api/v1/actions/invoke-async", headers=headers,
                               timeout=30, json={"action_name": "hello", "payload": {}})
        assert queued.status_code == 202, queued.text
        execution = queued.json()["execution_id"]
        # Read the row itself: GET /api/v1/executions/<id> would refresh it from OpenWhisk.
        store = ExecutionStore(env["DATABASE_URL"], folder=str(tmp_path / "reader"))
        try:
            deadline = time.monotonic() + 30
            status = None
            while time.monotonic() < deadline and status != "succeeded":
                time.sleep(0.5)
                status = store.get(execution).status
        finally:
            store.close()
        assert status == "succeeded", worker.output()[-2000:]
        assert worker.popen.poll() is None
    finally:
        for proc in procs:
            proc.stop()
    for proc in procs:
        logged = proc.log_path.read_text(errors="replace")
        assert "Traceback" not in logged, logged[-3000:]
        assert "MonkeyPatchWarning" not in logged, logged[-3000:]  # gevent patched first
