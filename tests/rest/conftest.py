"""REST fixtures: the app in-process on SQLite, and gunicorn as a real process on PostgreSQL."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import fresh_pg_database
from tests.procs import Proc, free_port, wait_for_http
from tests.rest.helpers import FlaskApi, HttpApi, make_token

GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def rest_env(base_env: dict, **changes: str) -> dict[str, str]:
    """A valid environment for the REST app: small limits so tests stay fast, no breaker trips
    from the faults tests inject on purpose."""
    env = dict(base_env)
    env.update({
        "MAX_PAYLOAD_BYTES": "4096",
        "BREAKER_FAIL_MAX": "1000",
        "OPENWHISK_GET_RETRIES": "0",
        "DB_TIMEOUT": "2",
        "WEB_GRACEFUL_TIMEOUT": "2",
        "LOG_DIR": os.path.join(env["DATA_DIR"], "log"),
    })
    env.update(changes)
    return env


@pytest.fixture
def make_app(base_env):
    """Build the app in-process from an environment; services are closed after the test."""
    from owaction.config import load_settings
    from owaction.rest import create_app

    apps = []

    def make(**changes: str):
        settings = load_settings(rest_env(base_env, **changes))
        app = create_app(settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["owaction"].service.close()


@pytest.fixture
def api(make_app, emu):
    """The app on SQLite against the session emulator, called with an all-permission token."""
    return FlaskApi(make_app(), token=make_token())


@pytest.fixture(scope="module")
def rest_pg_url():
    """A PostgreSQL database of this module's own, so a running server never loses its table to
    another test's cleanup."""
    with fresh_pg_database("owaction_rest") as url:
        yield url


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py wsgi:app`` on a free port."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**env, "REST_PORT": str(self.port), "BIND_HOST": "127.0.0.1"}
        self.proc = Proc([GUNICORN, "-c", "gunicorn.conf.py", "wsgi:app"], env=full_env,
                         log_path=log_dir / f"gunicorn-{self.port}.log")
        try:
            wait_for_http(self.url + "/openapi.json", self.proc.popen, timeout=30)
        except Exception:
            self.proc.stop()
            raise RuntimeError(f"gunicorn did not start:\n{self.proc.output()[-3000:]}") from None

    def api(self, token: str | None = None) -> HttpApi:
        return HttpApi(self.url, token=token if token is not None else make_token())

    def stop(self) -> None:
        self.proc.stop()


@pytest.fixture(scope="module")
def start_gunicorn(tmp_path_factory):
    """Start gunicorn servers; each is stopped at the end of the module."""
    started: list[Gunicorn] = []

    def start(env: dict[str, str]) -> Gunicorn:
        server = Gunicorn(env, tmp_path_factory.mktemp("gunicorn"))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for server in started:
        output = server.proc.log_path.read_text(errors="replace")
        assert "Traceback" not in output, f"gunicorn logged an error:\n{output[-3000:]}"
