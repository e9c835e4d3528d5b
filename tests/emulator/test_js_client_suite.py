"""The official JS client's own integration suite, unchanged, against a fresh emulator.

The checkout is named by ``OW_CLIENT_JS_DIR`` (``.ci/run`` points it at
``../shared/openwhisk-client-js``); it is copied to a temporary directory, its dependencies are
installed there with npm (npm's cache in ~/.npm makes the next install quick), and its
``test:integration`` script runs with the ``__OW_*`` variables naming the emulator. Its code never
enters this repository.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

SUITE_ENV = "OW_CLIENT_JS_DIR"
# The placeholder the suite's routes test needs: the emulator's gateway takes any token.
APIGW_TOKEN = "placeholder-apigw-token"
_DECLARED = re.compile(r"^\s*(?:test|test\.serial|tempTest)\(", re.MULTILINE)


def _missing() -> str | None:
    checkout = os.environ.get(SUITE_ENV)
    if not checkout:
        return f"{SUITE_ENV} is not set: the official JS client's integration suite is skipped"
    if not (Path(checkout) / "test" / "integration").is_dir():
        return f"{SUITE_ENV}={checkout} has no test/integration: the suite is skipped"
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are needed for the official JS client's integration suite"
    return None


def _writable_copy(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("node_modules", ".git"))
    # The source may be read-only (shared/ is); npm writes into the copy.
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def declared_tests(checkout: Path) -> int:
    return sum(len(_DECLARED.findall(f.read_text()))
               for f in (checkout / "test" / "integration").glob("*.test.js"))


@pytest.mark.node
@pytest.mark.slow
@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_the_official_js_client_integration_suite_passes(start_emulator, tmp_path):
    checkout = tmp_path / "openwhisk-client-js"
    _writable_copy(Path(os.environ[SUITE_ENV]), checkout)
    npm = ["npm", "ci" if (checkout / "package-lock.json").is_file() else "install",
           "--no-audit", "--no-fund", "--ignore-scripts"]
    installed = subprocess.run(npm, cwd=checkout, capture_output=True, text=True, timeout=900)
    if installed.returncode != 0:
        pytest.skip(f"npm could not install the suite's dependencies: {installed.stderr[-500:]}")

    emu = start_emulator(seed=False)  # the suite creates names (e.g. hello) of its own
    env = {**os.environ, "__OW_API_HOST": emu.url, "__OW_API_KEY": emu.auth,
           "__OW_NAMESPACE": "guest", "__OW_APIGW_TOKEN": APIGW_TOKEN}
    env.pop("__OW_INSECURE", None)
    scripts = (checkout / "package.json").read_text()
    command = (["npm", "run", "--silent", "test:integration"] if '"test:integration"' in scripts
               else ["npx", "mocha", "test/integration/"])
    done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True,
                          timeout=600)
    output = done.stdout + done.stderr
    passed = sum(int(n) for n in re.findall(r"(\d+) tests? passed", output)) or \
        sum(int(n) for n in re.findall(r"(\d+) passing", output))
    failed = sum(int(n) for n in re.findall(r"(\d+) (?:tests? failed|failing)", output))
    expected = declared_tests(checkout)
    print(f"official JS client integration suite: {passed} passed, {failed} failed "
          f"(of {expected})")
    assert (passed, failed, done.returncode) == (expected, 0, 0), output[-4000:]
