"""Store fixtures: a migrated store on each database, closed after the test."""

from __future__ import annotations

import uuid

import pytest

from owaction.store import ExecutionStore


@pytest.fixture
def make_store(tmp_path):
    """Build stores on a URL; each is closed after the test so no connection outlives it."""
    made: list[ExecutionStore] = []

    def make(url: str, **kw) -> ExecutionStore:
        kw.setdefault("folder", str(tmp_path / "migrations"))
        kw.setdefault("application_name", f"owtest-{uuid.uuid4().hex[:12]}")
        store = ExecutionStore(url, **kw)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(db_url, make_store):
    s = make_store(db_url, pool_size=4, acquire_timeout=2)
    s.migrate()
    return s


def pending(store, **overrides):
    """Record a pending execution with plausible defaults."""
    fields = dict(
        namespace="guest", action_name="hello", action_type="action", payload={"name": "x"},
        blocking=True, timeout=5000, source="rest", caller="svc-a", request_id="req-1",
    )
    fields.update(overrides)
    return store.create_pending(**fields)
