"""The gRPC server process: ``create_server`` builds and binds, ``serve`` runs until a signal.

Nothing here imports gevent: this process uses real threads (``ThreadPoolExecutor``), and
gevent's monkey-patching would break grpcio's own threads.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from owaction import tracing
from owaction.auth import PERMISSION_EXECUTE, PERMISSION_MANAGE, PERMISSION_READ, TokenVerifier
from owaction.config import Settings
from owaction.logs import aaa, setup_logging
from owaction.metrics import start_metrics_server
from owaction.rpc import openwhisk_action_pb2 as pb
from owaction.rpc import openwhisk_action_pb2_grpc as pb_grpc
from owaction.rpc.interceptors import AuthInterceptor, DecodeGuardInterceptor
from owaction.rpc.servicer import ActionServicer
from owaction.service.entities import MAX_ACTION_REQUEST_BYTES

log = logging.getLogger("owaction.rpc")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["OpenWhiskActionService"].full_name
# Room for the rest of a message around a payload at the limit (names, headers, envelope).
ENVELOPE_HEADROOM = 64 * 1024
# A reply may hold the result, the logs and the annotations of an activation, each of which
# OpenWhisk bounds by about the payload limit.
REPLY_FACTOR = 4
HEALTH_INTERVAL = 5.0
WORKER_PREFIX = "grpc-worker"

PERMISSIONS = {
    "InvokeAction": PERMISSION_EXECUTE,
    "InvokeActionAsync": PERMISSION_EXECUTE,
    "InvokeSequence": PERMISSION_EXECUTE,
    "InvokeWebAction": PERMISSION_EXECUTE,
    "FireTrigger": PERMISSION_EXECUTE,
    "ExecuteCommand": PERMISSION_EXECUTE,
    "GetActivation": PERMISSION_READ,
    "ListActions": PERMISSION_READ,
    "GetExecution": PERMISSION_READ,
    "ListExecutions": PERMISSION_READ,
    "GetStats": PERMISSION_READ,
    **{rpc: PERMISSION_READ for rpc in (
        "GetAction", "GetPackage", "GetTrigger", "GetRule", "ListEntities", "ListRoutes")},
    **{rpc: PERMISSION_MANAGE for rpc in (
        "PutAction", "DeleteAction", "PutPackage", "DeletePackage", "PutTrigger",
        "DeleteTrigger", "PutRule", "DeleteRule", "SetRuleState", "CreateRoute",
        "DeleteRoute")},
}


def method_permissions() -> dict[str, str]:
    """Full method name -> permission, for every RPC of the service (checked complete)."""
    methods = pb.DESCRIPTOR.services_by_name["OpenWhiskActionService"].methods
    missing = [m.name for m in methods if m.name not in PERMISSIONS]
    if missing:
        raise RuntimeError(f"RPCs without a permission: {', '.join(missing)}")
    return {f"/{SERVICE_NAME}/{m.name}": PERMISSIONS[m.name] for m in methods}


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    # PutAction carries code up to OpenWhisk's own limit, above the invocation payload's.
    receive = max(settings.max_payload_bytes + ENVELOPE_HEADROOM, MAX_ACTION_REQUEST_BYTES)
    return [
        ("grpc.max_receive_message_length", receive),
        ("grpc.max_send_message_length", settings.max_payload_bytes * REPLY_FACTOR
         + ENVELOPE_HEADROOM),
        # Keep idle connections from routers alive through NATs and load balancers, and accept
        # their keepalive pings without calls, but no more often than every 10 s.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.http2.max_pings_without_data", 0),
        # Without this a second process could bind the same port and share its connections.
        ("grpc.so_reuseport", 0),
    ]


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if not settings.grpc_tls_cert:
        return None
    key = Path(settings.grpc_tls_key).read_bytes()
    cert = Path(settings.grpc_tls_cert).read_bytes()
    return grpc.ssl_server_credentials([(key, cert)])


def _address(settings: Settings) -> str:
    host = settings.bind_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{settings.grpc_port}"


def _database_up(service: Any) -> bool:
    try:
        return bool(service.health().get("healthy"))
    except Exception:  # noqa: BLE001 - any failure of the check means "not serving"
        log.warning("health check failed", exc_info=True)
        return False


def _report_health(server: grpc.Server, service: Any, servicer: health.HealthServicer,
                   interval: float) -> None:
    """Set SERVING / NOT_SERVING now and every ``interval`` s until the server terminates."""
    def update() -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if _database_up(service)
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("", SERVICE_NAME):
            servicer.set(name, status)

    def loop() -> None:
        # wait_for_termination returns True when it timed out, i.e. the server still runs.
        while server.wait_for_termination(timeout=interval):
            update()

    update()
    threading.Thread(target=loop, name="grpc-health", daemon=True).start()


def new_health_servicer() -> health.HealthServicer:
    return health.HealthServicer(
        experimental_non_blocking=True,
        experimental_thread_pool=ThreadPoolExecutor(max_workers=1,
                                                    thread_name_prefix="grpc-health-watch"),
    )


def new_executor(settings: Settings) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=settings.grpc_max_workers,
                              thread_name_prefix=WORKER_PREFIX)


def create_server(settings: Settings, service: Any, *,
                  executor: ThreadPoolExecutor | None = None,
                  health_servicer: health.HealthServicer | None = None,
                  health_interval: float = HEALTH_INTERVAL) -> tuple[grpc.Server, int]:
    """A bound, not yet started server for ``service`` and the port it listens on."""
    server = grpc.server(
        executor or new_executor(settings),
        interceptors=[
            AuthInterceptor(TokenVerifier(settings), method_permissions()),
            DecodeGuardInterceptor(),
        ],
        options=server_options(settings),
    )
    pb_grpc.add_OpenWhiskActionServiceServicer_to_server(ActionServicer(service), server)
    health_servicer = health_servicer or new_health_servicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = _address(settings)
    credentials = _credentials(settings)
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address}: {exc}") from None
    if not port:
        raise OSError(f"cannot listen on {address}")
    _report_health(server, service, health_servicer, health_interval)
    return server, port


def serve(settings: Settings) -> int:
    """Run the gRPC process until SIGTERM or SIGINT; in-flight RPCs get ``GRPC_GRACE`` s."""
    # Handlers first: a signal that arrives while the port is being bound still stops cleanly.
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum, frame):
        received.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    setup_logging(settings, process="grpc")
    tracing.configure(f"{settings.module_name}-grpc")
    from owaction.registration import Registrar
    from owaction.service import ActionService

    service = ActionService.from_settings(settings)
    service.warm_up()
    # SIGHUP re-reads the commands file (it is also re-read when it changes).
    signal.signal(signal.SIGHUP, lambda *_: service.commands.reload())
    registrar = Registrar(settings, service.commands)
    health_servicer = new_health_servicer()
    executor = new_executor(settings)
    try:
        server, port = create_server(settings, service, executor=executor,
                                     health_servicer=health_servicer)
        start_metrics_server(settings.grpc_metrics_port, settings=settings)
    except OSError as exc:
        aaa("ERROR", "grpc_start", "FAILED", level=logging.ERROR, msg=str(exc))
        service.close()
        return 1
    server.start()
    registrar.start()
    aaa("SYSTEM", "grpc_start", "SUCCESS", port=port, workers=settings.grpc_max_workers,
        tls=bool(settings.grpc_tls_cert))
    # Event.wait without a timeout would block signal delivery on some platforms.
    while not stop.wait(timeout=1.0):
        pass
    aaa("SYSTEM", "grpc_stop", "STARTED", signal=received[0] if received else None,
        grace=settings.grpc_grace)
    health_servicer.enter_graceful_shutdown()
    registrar.stop()
    server.stop(grace=settings.grpc_grace).wait()
    executor.shutdown(wait=False, cancel_futures=True)
    service.close()
    stuck = _stuck_workers(timeout=1.0)
    if stuck:
        # A call past the grace period is cancelled for its client, but its thread may still
        # sit in an OpenWhisk read for up to REQUEST_TIMEOUT, and the interpreter joins
        # executor threads at exit. The grace period is the promise, so end the process now.
        aaa("SYSTEM", "grpc_stop", "FORCED", level=logging.WARNING, threads=stuck)
        logging.shutdown()
        os._exit(0)
    aaa("SYSTEM", "grpc_stop", "SUCCESS")
    return 0


def _stuck_workers(timeout: float) -> int:
    """How many RPC worker threads are still busy after waiting up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    busy = [t for t in threading.enumerate() if t.name.startswith(WORKER_PREFIX)]
    for thread in busy:
        thread.join(max(0.0, deadline - time.monotonic()))
    return sum(1 for t in busy if t.is_alive())
