"""The image as a new user runs it: deploy/image-test.sh builds it with podman and runs the seed's
``docker run -d -p 8082:8082 -p 50062:50062 -e ... image``. A full build takes minutes, so it runs
only with OWACTION_IMAGE_TEST=1 (``make image-test``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    os.environ.get("OWACTION_IMAGE_TEST") != "1",
    reason="builds the container image (minutes): set OWACTION_IMAGE_TEST=1 or run make image-test",
)


def tree_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.timeout(1200)
def test_the_seed_docker_run_serves_both_and_every_role_passes_its_health_check(tmp_path):
    before = tree_state()
    proc = subprocess.run(["bash", str(ROOT / "deploy" / "image-test.sh")], capture_output=True,
                          text=True, timeout=1150)
    if proc.returncode == 77:
        pytest.skip(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = proc.stdout
    assert "REST /health and gRPC health answer" in out
    for role in ("rest", "grpc", "worker", "emulator"):
        assert f"{role}: health check passes" in out
    assert "podman stop: exit 0" in out
    assert tree_state() == before, "the image test wrote into the repository"
