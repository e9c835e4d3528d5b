"""The generated code is current, and the process stays free of gevent."""

from __future__ import annotations

import subprocess
import sys

from owaction.rpc import codegen
from tests.procs import ROOT, free_port


def test_committed_generated_code_is_identical_to_a_fresh_generation(tmp_path):
    written = codegen.generate(tmp_path)

    assert sorted(p.name for p in written) == sorted(codegen.GENERATED)
    for path in written:
        committed = codegen.PACKAGE_DIR / path.name
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} is stale: run `make proto` (python -m owaction.rpc.codegen)"
        )


def test_generated_grpc_module_imports_its_messages_package_relative():
    text = (codegen.PACKAGE_DIR / "openwhisk_action_pb2_grpc.py").read_text()

    assert "from . import openwhisk_action_pb2 as" in text
    assert "\nimport openwhisk_action_pb2" not in text


def test_codegen_command_regenerates_into_a_given_folder(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "owaction.rpc.codegen", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert {p.name for p in tmp_path.iterdir()} == set(codegen.GENERATED)


def test_the_grpc_process_and_its_service_never_import_gevent(base_env):
    script = (
        "import sys\n"
        "import grpc_server, owaction.rpc.server\n"
        "assert 'gevent' not in sys.modules, 'gevent imported by the entry point'\n"
        "from owaction.config import load_settings\n"
        "from owaction.service import ActionService\n"
        "settings = load_settings()\n"
        "service = ActionService.from_settings(settings)\n"
        "server, port = owaction.rpc.server.create_server(settings, service)\n"
        "assert port == settings.grpc_port\n"
        "server.stop(None).wait()\n"
        "service.close()\n"
        "assert 'gevent' not in sys.modules, 'gevent imported by the service'\n"
        "print('clean')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT,
        env={**_clean_env(), **base_env, "GRPC_PORT": str(free_port())},
        capture_output=True, text=True, timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "clean"


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("OPENWHISK_", "GRPC_"))}
