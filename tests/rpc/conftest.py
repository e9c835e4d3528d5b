"""The gRPC process as a real subprocess against the emulator and PostgreSQL, and a client."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import pytest

from owaction.auth import TokenVerifier
from owaction.config import load_settings
from tests.conftest import fresh_pg_database
from tests.conftest import module_env as base_module_env
from tests.procs import ROOT, Proc, free_port, wait_for_port

ROUTER = "router_module"  # allowed by default: every permission
LIMITED = "svc-a"  # known through API_KEYS; tokens for it carry chosen permissions


class GrpcModule:
    """One ``python grpc_server.py`` process and a channel to it."""

    def __init__(self, tmp_path: Path, env: dict[str, str]):
        from owaction.rpc import openwhisk_action_pb2_grpc as pb_grpc

        self.port = free_port()
        self.env = {"GRPC_METRICS_PORT": "0", **env, "GRPC_PORT": str(self.port)}
        self.settings = load_settings(self.env)
        self.verifier = TokenVerifier(self.settings)
        self.proc = Proc([sys.executable, str(ROOT / "grpc_server.py")], env=self.env,
                         log_path=tmp_path / f"grpc-{self.port}.log")
        wait_for_port(self.port, self.proc.popen, timeout=30)
        self.target = f"127.0.0.1:{self.port}"
        self.channel = grpc.insecure_channel(self.target)
        self.stub = pb_grpc.OpenWhiskActionServiceStub(self.channel)

    def token(self, service: str = ROUTER, permissions=None, **kw) -> str:
        return self.verifier.issue(service, permissions, **kw)[0]

    def auth(self, service: str = ROUTER, permissions=None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token(service, permissions)}"),)

    def call(self, rpc: str, request, *, timeout: float = 20, metadata=None):
        """Call ``rpc`` as the router; returns the reply (raises grpc.RpcError)."""
        return getattr(self.stub, rpc)(request, metadata=metadata or self.auth(), timeout=timeout)

    def call_with_call(self, rpc: str, request, *, timeout: float = 20, metadata=None):
        """The reply and the call object (for trailing metadata)."""
        return getattr(self.stub, rpc).with_call(
            request, metadata=metadata or self.auth(), timeout=timeout)

    def stop(self) -> int | None:
        self.channel.close()
        return self.proc.stop(timeout=30)


def rpc_error(exc_info) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    err = exc_info.value
    trailing = {k: v for k, v in (err.trailing_metadata() or ())}
    return err.code(), err.details(), trailing


@pytest.fixture(scope="module")
def rpc_pg_url():
    """A PostgreSQL database of this module's own, so tables emptied by other tests' `pg_url`
    never vanish under a server that lives for the whole module."""
    with fresh_pg_database("owaction_rpc") as url:
        yield url


def module_env(tmp: Path, emulator, database_url: str, **extra: str) -> dict[str, str]:
    """The shared module environment, with a grace period short enough for tests."""
    return base_module_env(tmp, emulator, database_url, **{"GRPC_GRACE": "20", **extra})


@pytest.fixture(scope="module")
def grpc_module(tmp_path_factory, emulator, rpc_pg_url):
    """One gRPC process for the module's read-mostly tests (faults are reset per test by `emu`)."""
    tmp = tmp_path_factory.mktemp("grpc")
    # Fault tests must not open the circuit breaker for the tests after them.
    module = GrpcModule(tmp, module_env(tmp, emulator, rpc_pg_url, BREAKER_FAIL_MAX="1000"))
    yield module
    module.stop()


@pytest.fixture
def start_grpc(tmp_path, emulator, pg_url):
    """Start a gRPC process of a test's own (e.g. to stop it); stopped after the test."""
    started: list[GrpcModule] = []

    def start(*, emulator_=None, database_url: str | None = None, **extra: str) -> GrpcModule:
        env = module_env(tmp_path, emulator_ or emulator, database_url or pg_url, **extra)
        module = GrpcModule(tmp_path, env)
        started.append(module)
        return module

    yield start
    for module in started:
        module.stop()
