"""Shared fixtures: the emulator on a real port, real databases, a valid environment."""

from __future__ import annotations

import contextlib
import os
import secrets
import uuid
from pathlib import Path

import pytest

from tests.procs import Emulator

# A module secret that passes validation; tests never use a placeholder.
TEST_SECRET = "t" + secrets.token_urlsafe(64)

PG_ADMIN_URL = os.environ.get(
    "OWACTION_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_PG = os.environ.get("OWACTION_REQUIRE_POSTGRES") == "1"


def _pg_connect(url: str):
    import psycopg2

    return psycopg2.connect(url, connect_timeout=3)


def _pg_available() -> str | None:
    try:
        _pg_connect(PG_ADMIN_URL).close()
        return None
    except Exception as exc:  # any failure means "no usable PostgreSQL here"
        return str(exc)


_PG_PROBLEM = _pg_available()


def pytest_collection_modifyitems(config, items):
    # Tests marked after_all (the session's log checks) run after every other test.
    items.sort(key=lambda item: item.get_closest_marker("after_all") is not None)
    if _PG_PROBLEM is None:
        return
    if REQUIRE_PG:
        raise pytest.UsageError(
            f"OWACTION_REQUIRE_POSTGRES=1 but PostgreSQL at {PG_ADMIN_URL} fails: {_PG_PROBLEM}"
        )
    skip = pytest.mark.skip(reason=f"no PostgreSQL at {PG_ADMIN_URL}: {_PG_PROBLEM}")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@contextlib.contextmanager
def fresh_pg_database(prefix: str):
    """A new PostgreSQL database's URL, dropped on exit; skips the test without PostgreSQL."""
    if _PG_PROBLEM is not None:
        pytest.skip(f"no PostgreSQL: {_PG_PROBLEM}")
    from urllib.parse import urlsplit, urlunsplit

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = _pg_connect(PG_ADMIN_URL)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(PG_ADMIN_URL)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@pytest.fixture(scope="session")
def pg_database():
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with fresh_pg_database("owaction_test") as url:
        yield url


@pytest.fixture
def pg_url(pg_database):
    """The session database, emptied of every table before the test."""
    conn = _pg_connect(pg_database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for (table,) in cur.fetchall():
            cur.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    conn.close()
    return pg_database


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite://{tmp_path}/owaction.sqlite"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/owaction.sqlite"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """One seeded emulator for the session, with fault injection on."""
    emu = Emulator(tmp_path_factory.mktemp("emulator"))
    yield emu
    emu.stop()


@pytest.fixture
def emu(emulator):
    """The session emulator with no faults left over from another test."""
    emulator.reset_faults()
    yield emulator
    emulator.reset_faults()


@pytest.fixture
def start_emulator(tmp_path):
    """Start extra emulators with their own options; each is stopped after the test."""
    started = []

    def start(*extra: str, **kw) -> Emulator:
        emu = Emulator(tmp_path, *extra, **kw)
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


API_KEY = "key-a-" + "x" * 20  # the key of service "svc-a" in module_env's API_KEYS


def module_env(tmp: Path, emulator, database_url: str, **extra: str) -> dict[str, str]:
    """A valid environment for the module's processes against ``emulator`` (anything with
    ``url`` and ``auth``), data under ``tmp``; ``extra`` adds or overrides variables."""
    return {
        "MODULE_SECRET_KEY": TEST_SECRET,
        "OPENWHISK_API_HOST": emulator.url,
        "OPENWHISK_AUTH_KEY": emulator.auth,
        "DATA_DIR": str(tmp / "data"),
        "DATABASE_URL": database_url,
        "API_KEYS": f"svc-a={API_KEY}",
        **extra,
    }


@pytest.fixture
def base_env(tmp_path, emulator) -> dict[str, str]:
    """An environment that makes valid settings against the session emulator, on SQLite."""
    return module_env(tmp_path, emulator, f"sqlite://{tmp_path}/owaction.sqlite")


@pytest.fixture
def make_service(tmp_path, emulator):
    """Build ActionServices on the session emulator (or another host) and a database."""
    from owaction.commands import CommandMap
    from owaction.config import load_settings
    from owaction.openwhisk.client import OpenWhiskClient
    from owaction.service import ActionService
    from owaction.store import ExecutionStore

    made: list[ActionService] = []

    def make(db_url: str | None = None, *, api_host: str | None = None,
             commands_file: str = "", **env) -> ActionService:
        values = {
            "MODULE_SECRET_KEY": TEST_SECRET,
            "OPENWHISK_API_HOST": api_host or emulator.url,
            "OPENWHISK_AUTH_KEY": emulator.auth,
            "DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": db_url or f"sqlite://{tmp_path}/svc.sqlite",
            "DB_TIMEOUT": "2",
            **env,
        }
        settings = load_settings(values)
        store = ExecutionStore(settings.database_url, pool_size=settings.db_pool_size,
                               acquire_timeout=settings.db_timeout,
                               folder=str(tmp_path / f"dal{len(made)}"), connect_timeout=1)
        commands = CommandMap(commands_file,
                              unmapped_package=settings.unmapped_command_package,
                              max_timeout_ms=settings.max_action_timeout)
        service = ActionService(settings=settings, client=OpenWhiskClient.from_settings(settings),
                                store=store, commands=commands)
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()
