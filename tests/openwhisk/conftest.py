"""Clients pointed at the emulator, closed after each test."""

from __future__ import annotations

import pytest
import requests

from owaction.config import GUEST_AUTH_KEY
from owaction.openwhisk import OpenWhiskClient
from tests.openwhisk.recorder import Recorder


def no_jitter(delay: float) -> float:
    return delay


@pytest.fixture
def make_client(request):
    """Build clients against the session emulator (or ``api_host=``); fast retries."""
    made: list[OpenWhiskClient] = []

    def make(**kw) -> OpenWhiskClient:
        if "api_host" not in kw:
            emu = request.getfixturevalue("emu")
            kw["api_host"] = emu.url
            kw.setdefault("auth_key", emu.auth)
        kw.setdefault("auth_key", GUEST_AUTH_KEY)
        kw.setdefault("backoff_base", 0.01)
        kw.setdefault("backoff_max", 0.05)
        kw.setdefault("jitter", no_jitter)
        kw.setdefault("read_timeout", 15.0)
        kw.setdefault("blocking_wait_ms", 10000)
        client = OpenWhiskClient(**kw)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client) -> OpenWhiskClient:
    return make_client()


def remaining_uses(emu) -> list[int]:
    """How many uses each fault still waiting at the emulator has left."""
    body = requests.get(f"{emu.url}/_emulator/faults", timeout=5).json()
    listed = body["faults"] if isinstance(body, dict) else body
    return [f["remaining"] if "remaining" in f else f["times"] for f in listed]


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.close()
