"""``owaction serve``: REST, gRPC and the worker under one parent, for one container or host.

The parent starts each role as ``python -m owaction ROLE`` (the same commands Kubernetes and
systemd run one per unit), forwards SIGTERM and SIGINT to all of them, and stops the rest when
one exits on its own, so a container never keeps running half a module. As a container's PID 1
it also reaps the orphans a dead gunicorn master would leave behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from owaction.config import Settings
from owaction.logs import aaa, setup_logging

ROLES = ("rest", "grpc", "worker")
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
# Past the servers' own drain time, a child that has not exited is killed.
KILL_MARGIN_SECONDS = 5.0


def role_command(role: str) -> list[str]:
    """The command that runs one role, in this interpreter."""
    return [sys.executable, "-m", "owaction", role]


def stop_timeout(settings: Settings) -> float:
    """How long the children may drain after a stop signal before they are killed."""
    return max(settings.web_graceful_timeout, settings.grpc_grace) + KILL_MARGIN_SECONDS


class Supervisor:
    """Runs ``commands`` (name -> argv) until a signal or until one of them exits."""

    def __init__(self, commands: dict[str, list[str]], *, drain_seconds: float,
                 poll_seconds: float = 0.2):
        self.commands = commands
        self.drain_seconds = drain_seconds
        self.poll_seconds = poll_seconds
        self.children: dict[str, subprocess.Popen] = {}
        self._signal: int | None = None

    def _on_signal(self, signum: int, _frame) -> None:
        self._signal = signum
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        for proc in self.children.values():
            if proc.returncode is None:
                try:
                    proc.send_signal(signum)
                except ProcessLookupError:
                    pass

    def _reap(self) -> None:
        """Collect every exited child, ours or an orphan handed to us as PID 1."""
        ours = {proc.pid: proc for proc in self.children.values()}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in ours:
                ours[pid].returncode = os.waitstatus_to_exitcode(status)

    def _running(self) -> list[str]:
        return [name for name, proc in self.children.items() if proc.returncode is None]

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for name, argv in self.commands.items():
            if self._signal is not None:
                break
            self.children[name] = subprocess.Popen(argv)
            aaa("SYSTEM", "serve_start", "SUCCESS", role=name, pid=self.children[name].pid)
        failed: str | None = None
        while self._signal is None and failed is None:
            self._reap()
            failed = next((n for n, p in self.children.items() if p.returncode is not None),
                          None)
            if failed is None:
                time.sleep(self.poll_seconds)
        if failed is not None:
            aaa("SYSTEM", "serve_child_exit", "FAILURE", level=logging.ERROR, role=failed,
                returncode=self.children[failed].returncode)
            self._forward(signal.SIGTERM)
        self._drain()
        if failed is not None:
            return EXIT_FAILED
        aaa("SYSTEM", "serve_stop", "SUCCESS", signal=signal.Signals(self._signal).name)
        return EXIT_INTERRUPTED if self._signal == signal.SIGINT else EXIT_OK

    def _drain(self) -> None:
        deadline = time.monotonic() + self.drain_seconds
        while self._running() and time.monotonic() < deadline:
            self._reap()
            time.sleep(self.poll_seconds)
        for name in self._running():
            aaa("SYSTEM", "serve_kill", "FAILURE", level=logging.ERROR, role=name,
                msg=f"still running {self.drain_seconds:.0f} s after the stop signal")
            self.children[name].kill()
            self.children[name].wait()


def serve(settings: Settings, roles: tuple[str, ...] = ROLES, *, migrate: bool = True) -> int:
    """Migrate the database, then run ``roles`` until a signal; non-zero when one dies."""
    setup_logging(settings, process="serve")
    if migrate:
        done = subprocess.run([sys.executable, "-m", "owaction", "db", "migrate"],
                              stdout=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            aaa("SYSTEM", "serve_migrate", "FAILURE", level=logging.ERROR,
                returncode=done.returncode)
            return EXIT_FAILED
    supervisor = Supervisor({role: role_command(role) for role in roles},
                            drain_seconds=stop_timeout(settings))
    return supervisor.run()
