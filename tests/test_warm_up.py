"""Warm-up at a process's start (ServiceCore.warm_up, TokenVerifier.warm_up): what the first call
would open is opened before it, and nothing that is down stops a process from starting."""

from __future__ import annotations

import sqlite3

import pytest

from owaction.auth import PERMISSION_EXECUTE, TokenVerifier
from owaction.config import load_settings
from owaction.store import ExecutionStore
from tests.conftest import TEST_SECRET
from tests.store.conftest import pending


@pytest.fixture
def make_store(tmp_path):
    made: list[ExecutionStore] = []

    def make(url: str, **kw) -> ExecutionStore:
        made.append(ExecutionStore(url, folder=str(tmp_path / "migrations"), **kw))
        return made[-1]

    yield make
    for store in made:
        store.close()


def test_the_store_is_opened_and_migrated_before_the_first_call(db_url, make_store):
    store = make_store(db_url, pool_size=2, acquire_timeout=2)
    assert store._db is None  # nothing opened yet
    store.warm_up()
    assert store._db is not None
    if db_url.startswith("sqlite://"):
        # The writer's own connection is open, on the migrated table.
        connection = store.writer._sqlite
        assert isinstance(connection, sqlite3.Connection)
        assert connection.execute("SELECT count(*) FROM openwhisk_action_executions").fetchone()
    record = pending(store)
    assert store.get(record.execution_id).status == "pending"


def test_a_database_that_cannot_be_opened_does_not_stop_the_start(tmp_path, make_store):
    missing = tmp_path / "not-yet"
    store = make_store(f"sqlite://{missing}/owaction.sqlite", pool_size=2, acquire_timeout=1)
    store.warm_up()  # logged, not raised
    missing.mkdir()
    record = pending(store)  # the first call opens it
    assert store.get(record.execution_id).status == "pending"


def test_a_service_warms_up_with_openwhisk_unreachable(make_service, tmp_path):
    service = make_service(api_host="http://no-such-host.invalid:3233")
    service.warm_up()
    assert service.store._db is not None


def test_the_token_check_warm_up_leaves_tokens_as_they_were(tmp_path):
    verifier = TokenVerifier(load_settings({"MODULE_SECRET_KEY": TEST_SECRET,
                                            "ALLOWED_SERVICES": "router",
                                            "DATA_DIR": str(tmp_path)}))
    verifier.warm_up()
    assert verifier._verified == {}  # nothing cached, no service named
    token, _ = verifier.issue("router", (PERMISSION_EXECUTE,))
    assert verifier.verify(token).service == "router"
