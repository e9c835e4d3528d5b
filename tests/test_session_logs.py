"""Every log the module's processes wrote during this test session: no secret in any line, and
every line an AAA line. Marked ``after_all``: tests/conftest.py runs it after every other test,
so it sees the logs of the whole session whatever the order of the files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from owaction.config import GUEST_AUTH_KEY
from owaction.logs import LINE_RE
from tests.conftest import API_KEY, TEST_SECRET
from tests.rest import test_execute, test_ops

# The module's own logs: process consoles (tests.procs.Proc) and the rotating LOG_DIR files.
# The emulator's logs (emulator-*.log) are not the module's and are left out.
MODULE_LOG = re.compile(r"\A(gunicorn-\d+|grpc-\d+|rest|grpc|worker)\.log\Z")

# gRPC's native core writes its own lines (absl format: "I1128 21:27:33.188392 22188 file.cc:N]")
# straight to the gRPC process's stderr, bypassing Python logging (seen when a plaintext client
# reaches a TLS port). grpc_server.py sets GRPC_VERBOSITY=NONE; the last test proves it held.
GRPC_CORE_LINE = re.compile(r"\A[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w./-]+:\d+\] ")

pytestmark = pytest.mark.after_all

SECRETS = {
    "MODULE_SECRET_KEY": TEST_SECRET,
    "API key": API_KEY,
    "OPENWHISK_AUTH_KEY": GUEST_AUTH_KEY,
    "OPENWHISK_AUTH_KEY's key half": GUEST_AUTH_KEY.partition(":")[2],
    "SERVICE_KEY (ops)": test_ops.SERVICE_KEY,
    "SERVICE_KEY (execute)": test_execute.SERVICE_KEY,
    "CALLBACK_SECRET": test_ops.CALLBACK_SECRET,
}


@pytest.fixture(scope="module")
def module_logs(tmp_path_factory) -> dict[Path, list[str]]:
    root = tmp_path_factory.getbasetemp()
    logs = {path: path.read_text(errors="replace").splitlines()
            for path in sorted(root.rglob("*.log")) if MODULE_LOG.match(path.name)}
    if not logs:
        pytest.skip("no module process ran in this session, so there is no log to check")
    return logs


def test_no_secret_the_suite_used_appears_in_any_module_log(module_logs):
    leaks = [f"{path.name}:{number}: {name}"
             for path, lines in module_logs.items()
             for number, line in enumerate(lines, 1)
             for name, secret in SECRETS.items() if secret in line]
    assert not leaks, "\n".join(leaks[:20])


def stray_lines(module_logs, *, grpc_core: bool) -> list[str]:
    """Lines that are not AAA lines: gRPC core's own lines, or (``grpc_core=False``) all others."""
    return [f"{path.relative_to(path.parents[1])}:{number}: {line[:200]}"
            for path, lines in module_logs.items()
            for number, line in enumerate(lines, 1)
            if not LINE_RE.match(line)
            and grpc_core == bool(path.name.startswith("grpc-") and GRPC_CORE_LINE.match(line))]


def test_every_line_of_the_module_logs_is_an_aaa_line(module_logs):
    strays = stray_lines(module_logs, grpc_core=False)
    assert not strays, f"{len(strays)} lines are not AAA lines:\n" + "\n".join(strays[:30])


def test_grpc_core_writes_no_line_of_its_own(module_logs):
    strays = stray_lines(module_logs, grpc_core=True)
    assert not strays, "\n".join(strays[:30])
