"""Registering the module's commands with WaddleBot's router on start-up.

When ``ROUTER_URL`` is set, one process per host sends::

    POST {ROUTER_URL}{ROUTER_REGISTER_PATH}          X-Service-Key: {SERVICE_KEY}
    {"module_name": ..., "module_version": ..., "rest_url": ..., "grpc_address": ...,
     "health_url": ..., "commands": [{"command", "description", "usage", "action"}]}

in a background thread, retrying with capped, jittered backoff until the router answers 2xx, and
again whenever the commands file changes. It never delays serving. Which process registers is
decided by an exclusive lock on ``DATA_DIR/registration.lock``: every gunicorn worker, the gRPC
process and the worker may try, and only the holder sends.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from typing import Any

import requests

from owaction import __version__
from owaction.backoff import exponential, full_jitter
from owaction.commands import CommandMap
from owaction.config import Settings
from owaction.logs import aaa

BACKOFF_FIRST = 1.0
BACKOFF_CAP = 60.0
REQUEST_TIMEOUT = (5.0, 10.0)


def backoff_delays(first: float = BACKOFF_FIRST, cap: float = BACKOFF_CAP):
    """Capped exponential delays with full jitter; a generator so tests can pin it."""
    attempt = 1
    while True:
        yield full_jitter(exponential(attempt, first=first, cap=cap))
        attempt += 1


def registration_body(settings: Settings, commands: CommandMap) -> dict[str, Any]:
    return {
        "module_name": settings.module_name,
        "module_version": __version__,
        "rest_url": settings.rest_url,
        "grpc_address": settings.grpc_address,
        "health_url": settings.rest_url.rstrip("/") + "/health",
        "commands": [c.as_registration() for c in commands.commands],
    }


class Registrar:
    """Registers in the background; ``start()`` returns at once."""

    def __init__(self, settings: Settings, commands: CommandMap, *, session=None,
                 delays=None, lock_path: str | None = None):
        self.settings = settings
        self.commands = commands
        self.session = session or requests.Session()
        self._delays = delays
        self._lock_path = lock_path or os.path.join(settings.data_dir, "registration.lock")
        self._lock_fd: int | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.registered = threading.Event()
        commands.on_change(lambda _map: self.trigger())

    @property
    def url(self) -> str:
        return self.settings.router_url.rstrip("/") + self.settings.router_register_path

    def _take_lock(self) -> bool:
        if self._lock_fd is not None:
            return True
        os.makedirs(os.path.dirname(self._lock_path) or ".", exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def start(self) -> bool:
        """Start registering if this process holds the lock; False when another one does."""
        if not self.settings.router_url:
            return False
        try:
            if not self._take_lock():
                return False
        except OSError as exc:
            aaa("SYSTEM", "register", "FAILURE", level=logging.WARNING,
                msg=f"cannot take the registration lock: {exc}")
            return False
        self._thread = threading.Thread(target=self._run, name="owaction-registrar", daemon=True)
        self._thread.start()
        return True

    def trigger(self) -> None:
        """Register again (after the commands changed)."""
        self.registered.clear()
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def register_once(self) -> bool:
        headers = {"Content-Type": "application/json"}
        if self.settings.service_key:
            headers["X-Service-Key"] = self.settings.service_key
        body = registration_body(self.settings, self.commands)
        try:
            response = self.session.post(self.url, json=body, headers=headers,
                                         timeout=REQUEST_TIMEOUT)
        except requests.RequestException as exc:
            aaa("SYSTEM", "register", "RETRY", level=logging.WARNING,
                msg=f"router unreachable: {type(exc).__name__}")
            return False
        if 200 <= response.status_code < 300:
            aaa("SYSTEM", "register", "SUCCESS", commands=len(body["commands"]),
                router_status=response.status_code)
            return True
        aaa("SYSTEM", "register", "RETRY", level=logging.WARNING,
            router_status=response.status_code)
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            delays = self._delays() if callable(self._delays) else backoff_delays()
            while not self._stop.is_set():
                self._wake.clear()
                if self.register_once():
                    self.registered.set()
                    break
                self._stop.wait(next(delays))
            # Sleep until the commands change (or we stop), then register again.
            self._wake.wait()
