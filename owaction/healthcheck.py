"""``owaction healthcheck [ROLE]``: is this container's role working? Exit 0 yes, 1 no.

REST answers ``/health`` with 200; gRPC's health service says SERVING; the worker has finished a
pass recently (it touches ``DATA_DIR/worker.heartbeat`` after each one); ``serve`` is all three.
Docker runs a HEALTHCHECK as a new process without the entrypoint's environment, so without a
ROLE argument the role is read from ``OWACTION_ROLE`` here or in the container's first process
that has it (the entrypoint exports it), and defaults to ``serve``.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from owaction.config import Settings

HEARTBEAT_FILE = "worker.heartbeat"
ROLE_VARIABLE = "OWACTION_ROLE"
CHECK_TIMEOUT = 4.0
CHECKED_ROLES = {"rest": ("rest",), "grpc": ("grpc",), "worker": ("worker",),
                 "serve": ("rest", "grpc", "worker")}


class Unhealthy(Exception):
    """One role failed its check; the message says how."""


def heartbeat_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / HEARTBEAT_FILE


def beat(settings: Settings) -> None:
    """Record that the worker's loop is alive; an unwritable DATA_DIR must not stop it."""
    path = heartbeat_path(settings)
    try:
        path.touch()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:
        pass


def heartbeat_max_age(settings: Settings) -> float:
    """Older than this, the worker is stuck: a few idle polls plus one slow OpenWhisk call."""
    return 3 * settings.worker_poll_interval + settings.request_timeout + 30


def _local_host(settings: Settings) -> str:
    return "127.0.0.1" if settings.bind_host in ("0.0.0.0", "::", "") else settings.bind_host


def check_rest(settings: Settings) -> None:
    import urllib.error
    import urllib.request

    url = f"http://{_local_host(settings)}:{settings.rest_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=CHECK_TIMEOUT) as reply:  # noqa: S310
            status = reply.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        raise Unhealthy(f"REST {url}: {exc}") from None
    if status != 200:
        raise Unhealthy(f"REST {url} answered {status}")


def check_grpc(settings: Settings) -> None:
    address = f"{_local_host(settings)}:{settings.grpc_port}"
    if settings.grpc_tls_cert:
        # The certificate names a public host, not 127.0.0.1: only check that it listens.
        try:
            socket.create_connection((_local_host(settings), settings.grpc_port),
                                     timeout=CHECK_TIMEOUT).close()
        except OSError as exc:
            raise Unhealthy(f"gRPC {address}: {exc}") from None
        return
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=CHECK_TIMEOUT)
        except grpc.RpcError as exc:
            raise Unhealthy(f"gRPC {address}: {exc.code().name}") from None
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise Unhealthy(f"gRPC {address}: "
                        f"{health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")


def check_worker(settings: Settings) -> None:
    path = heartbeat_path(settings)
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        raise Unhealthy(f"worker: no heartbeat at {path}") from None
    if age > heartbeat_max_age(settings):
        raise Unhealthy(f"worker: last pass {age:.0f} s ago")


CHECKS = {"rest": check_rest, "grpc": check_grpc, "worker": check_worker}


def _role_of(pid: str) -> str | None:
    try:
        environ = Path("/proc", pid, "environ").read_bytes()
    except OSError:
        return None
    prefix = ROLE_VARIABLE.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode(errors="replace")
    return None


def container_role() -> str:
    """The role this container runs: our own variable, else the first process's that has it."""
    if os.environ.get(ROLE_VARIABLE):
        return os.environ[ROLE_VARIABLE]
    try:
        pids = sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int)
    except OSError:
        pids = []
    for pid in pids:
        role = _role_of(pid)
        if role:
            return role
    return "serve"


def run(settings: Settings, role: str) -> list[str]:
    """Check ``role``; the problems found, empty when healthy."""
    problems = []
    for part in CHECKED_ROLES[role]:
        try:
            CHECKS[part](settings)
        except Unhealthy as exc:
            problems.append(str(exc))
    return problems
