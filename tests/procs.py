"""Start the module's servers as real processes for tests, and stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {port} within {timeout} s")


def wait_for_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before answering {url}")
        try:
            requests.get(url, timeout=0.5)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


class Proc:
    """A child process whose output goes to a log file the test can read."""

    def __init__(self, args: list[str], *, env: dict | None = None, log_path: Path, cwd=None):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.popen = subprocess.Popen(
            args,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd or ROOT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def stop(self, timeout: float = 15) -> int | None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


class Emulator:
    """The OpenWhisk emulator running as a real process on a free port."""

    def __init__(self, tmp_path: Path, *extra: str, seed: bool = True, auth: str | None = None):
        from owaction.config import GUEST_AUTH_KEY

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = auth or GUEST_AUTH_KEY
        args = [PYTHON, "-m", "openwhisk_emulator", "--port", str(self.port), "--faults"]
        if auth:
            args += ["--auth", auth]
        if seed:
            args += ["--seed", str(ROOT / "openwhisk_emulator" / "examples")]
        args += list(extra)
        self.proc = Proc(args, log_path=tmp_path / f"emulator-{self.port}.log")
        wait_for_http(self.url + "/api/v1", self.proc.popen)

    @property
    def basic_auth(self) -> tuple[str, str]:
        user, _, key = self.auth.partition(":")
        return user, key

    def api(self, method: str, path: str, **kw) -> requests.Response:
        """A call straight to the emulator's /api/v1, authenticated as guest."""
        kw.setdefault("timeout", 30)
        return requests.request(method, f"{self.url}/api/v1{path}", auth=self.basic_auth, **kw)

    def fault(self, **spec) -> None:
        r = requests.post(f"{self.url}/_emulator/faults", json=spec, timeout=5)
        r.raise_for_status()

    def reset_faults(self) -> None:
        requests.delete(f"{self.url}/_emulator/faults", timeout=5).raise_for_status()

    def activations(self, name: str | None = None) -> list[dict]:
        params = {"limit": 200, "docs": "true"}
        if name:
            params["name"] = name
        return self.api("GET", "/namespaces/_/activations", params=params).json()

    def stop(self) -> None:
        self.proc.stop()
