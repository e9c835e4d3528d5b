"""Helpers for the emulator's HTTP API tests: unique names, action creation, polling."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.procs import Emulator


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """The emulator's own tests create many entities; they get an emulator of their own, so
    the one the rest of the suite shares keeps just the example set."""
    emu = Emulator(tmp_path_factory.mktemp("emulator-api"))
    yield emu
    emu.stop()


HELLO_PY = 'def main(args):\n    return {"message": "Hello " + (args.get("name") or "World")}\n'


@pytest.fixture
def uname():
    """A fresh entity name per call, so tests sharing the session emulator never collide."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


def put_action(emu, name: str, code: str = HELLO_PY, *, kind: str = "python:3", **fields):
    body = {"exec": {"kind": kind, "code": code}, **fields}
    r = emu.api("PUT", f"/namespaces/_/actions/{name}", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def put_sequence(emu, name: str, components: list[str], overwrite: bool = False):
    return emu.api(
        "PUT",
        f"/namespaces/_/actions/{name}",
        params={"overwrite": str(overwrite).lower()},
        json={"exec": {"kind": "sequence", "components": components}},
    )


def poll_activation(emu, activation_id: str, timeout: float = 20) -> dict:
    """Activations answer 404 until stored; poll like a client must."""
    deadline = time.monotonic() + timeout
    while True:
        r = emu.api("GET", f"/namespaces/_/activations/{activation_id}")
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 404, r.text
        assert time.monotonic() < deadline, f"activation {activation_id} never stored"
        time.sleep(0.05)


def annotations(record: dict) -> dict:
    return {a["key"]: a["value"] for a in record["annotations"]}
