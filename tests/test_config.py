"""Settings: every rule, good and bad environments, masking, and the exit path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from owaction.config import (
    GUEST_AUTH_KEY,
    VARIABLES,
    ConfigError,
    config_table_markdown,
    load_settings,
)
from tests.conftest import TEST_SECRET


def env(**overrides):
    base = {"MODULE_SECRET_KEY": TEST_SECRET}
    base.update(overrides)
    return base


def problems(**overrides) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(env(**overrides))
    return info.value.problems


def test_defaults_make_a_working_embedded_configuration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(env())
    assert s.openwhisk_api_host == "http://127.0.0.1:3233"
    assert s.openwhisk_auth_key == GUEST_AUTH_KEY
    assert s.openwhisk_namespace == "guest"
    assert s.rest_port == 8082 and s.grpc_port == 50062
    assert s.db_pool_size == 10
    assert s.max_payload_bytes == 1024 * 1024
    assert s.openwhisk_pool_size > 10  # sized for gevent, not urllib3's default
    assert s.database_url == f"sqlite://{tmp_path}/data/owaction.sqlite"
    assert s.allowed_services == ("router_module",)
    assert s.request_timeout > s.openwhisk_blocking_wait_ms / 1000
    assert s.openwhisk_verify is True


def test_settings_are_immutable():
    s = load_settings(env())
    with pytest.raises(AttributeError):
        s.rest_port = 1  # type: ignore[misc]


def test_module_secret_key_is_required():
    with pytest.raises(ConfigError) as info:
        load_settings({})
    assert any(p.startswith("MODULE_SECRET_KEY is required") for p in info.value.problems)


def test_short_secret_is_refused():
    assert any("at least 64 characters" in p for p in problems(MODULE_SECRET_KEY="x" * 63))


@pytest.mark.parametrize("placeholder", ["changeme" * 9, "secret" * 11, "a" * 80])
def test_placeholder_secrets_are_refused_even_when_long(placeholder):
    found = problems(MODULE_SECRET_KEY=placeholder)
    assert any(p.startswith("MODULE_SECRET_KEY") for p in found)


@pytest.mark.parametrize("key", ["nocolon", "uuid:", ":key", "a b:c", "x:y/z"])
def test_auth_key_must_be_uuid_colon_key(key):
    assert any(p.startswith("OPENWHISK_AUTH_KEY") for p in problems(OPENWHISK_AUTH_KEY=key))


@pytest.mark.parametrize("host", ["ftp://x", "localhost:3233", "http://", "3233"])
def test_api_host_must_be_http_url(host):
    assert any(p.startswith("OPENWHISK_API_HOST") for p in problems(OPENWHISK_API_HOST=host))


def test_https_api_host_accepted_and_trailing_slash_dropped():
    s = load_settings(env(OPENWHISK_API_HOST="https://ow.example:443/"))
    assert s.openwhisk_api_host == "https://ow.example:443"


@pytest.mark.parametrize("port", ["0", "65536", "-1", "http"])
def test_ports_must_be_in_range(port):
    found = problems(REST_PORT=port, GRPC_PORT=port)
    assert any(p.startswith("REST_PORT") for p in found)
    assert any(p.startswith("GRPC_PORT") for p in found)


def test_read_timeout_must_exceed_the_blocking_wait():
    # The original module's 30 s against OpenWhisk's 60 s wait was exactly this bug.
    found = problems(REQUEST_TIMEOUT="30", OPENWHISK_BLOCKING_WAIT_MS="60000")
    assert any(p.startswith("REQUEST_TIMEOUT") for p in found)
    load_settings(env(REQUEST_TIMEOUT="2", OPENWHISK_BLOCKING_WAIT_MS="1000",
                      MAX_ACTION_TIMEOUT="1000"))


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgres", "http://db"])
def test_database_url_must_be_sqlite_or_postgres(url):
    assert any(p.startswith("DATABASE_URL") for p in problems(DATABASE_URL=url))


def test_postgresql_scheme_is_accepted_as_pydal_postgres():
    s = load_settings(env(DATABASE_URL="postgresql://u@127.0.0.1:5432/test"))
    assert s.database_url == "postgres://u@127.0.0.1:5432/test"
    assert not s.is_sqlite


def test_every_problem_is_reported_at_once():
    found = problems(MODULE_SECRET_KEY="short", OPENWHISK_AUTH_KEY="bad", REST_PORT="0",
                     DATABASE_URL="mysql://x", OPENWHISK_API_HOST="nope")
    names = {p.split(" ")[0] for p in found}
    assert {"MODULE_SECRET_KEY", "OPENWHISK_AUTH_KEY", "REST_PORT", "DATABASE_URL",
            "OPENWHISK_API_HOST"} <= names


def test_bad_booleans_and_pairs_are_named():
    found = problems(OPENWHISK_INSECURE="maybe", API_KEYS="novalue", CACHEABLE_ACTIONS="echo=x")
    names = {p.split(" ")[0] for p in found}
    assert {"OPENWHISK_INSECURE", "API_KEYS", "CACHEABLE_ACTIONS"} <= names


def test_insecure_and_ca_bundle_decide_verification():
    assert load_settings(env(OPENWHISK_INSECURE="true")).openwhisk_verify is False
    assert load_settings(env(OPENWHISK_CA_BUNDLE="/ca.pem")).openwhisk_verify == "/ca.pem"


def test_secrets_are_masked_in_repr_and_dumps():
    s = load_settings(env(API_KEYS="svc=apikey-1234567890", SERVICE_KEY="svc-key-0987654321",
                          CALLBACK_SECRET="cb-secret-5555"))
    dumped = repr(s) + str(s.as_dict()) + str(s.as_env())
    for secret in (TEST_SECRET, GUEST_AUTH_KEY, GUEST_AUTH_KEY.split(":")[1],
                   "apikey-1234567890", "svc-key-0987654321", "cb-secret-5555"):
        assert secret not in dumped
    assert s.as_env(mask_secrets=False)["MODULE_SECRET_KEY"] == TEST_SECRET


def test_replace_revalidates():
    s = load_settings(env())
    assert s.replace(rest_port=9000).rest_port == 9000
    with pytest.raises(ConfigError):
        s.replace(rest_port=0)


def test_config_table_lists_every_variable():
    table = config_table_markdown()
    for var in VARIABLES:
        assert f"`{var.env}`" in table


def test_bad_environment_exits_2_naming_each_variable():
    code = "from owaction.config import settings_or_exit; settings_or_exit()"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={"MODULE_SECRET_KEY": "short", "REST_PORT": "99999", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert "MODULE_SECRET_KEY" in proc.stderr and "REST_PORT" in proc.stderr
    assert "Traceback" not in proc.stderr
