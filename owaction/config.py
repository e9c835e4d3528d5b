"""Settings: one typed, immutable object, loaded once from the environment.

Every variable is declared once in ``VARIABLES`` (name, type, default, description). The loader,
``owaction config check`` and the README's configuration table are all generated from that list,
so they cannot disagree. Validation collects every problem and reports them together; there is no
testing-mode bypass.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# The well-known key of OpenWhisk standalone's `guest` namespace. It is public (it ships in
# OpenWhisk's own repository), so it is a fine default for a local emulator, not a secret.
GUEST_AUTH_KEY = (
    "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:"
    "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
)

# Secrets people paste from examples. A module secret equal to (or made only of) one of these is
# refused even when it is long enough.
KNOWN_PLACEHOLDERS = (
    "changeme",
    "change-me",
    "change_me",
    "secret",
    "your-secret-key",
    "your_secret_key",
    "waddlebot_secret_key_change_me_in_production",
    "development",
    "dev-secret",
    "placeholder",
    "password",
    "xxxxxxxx",
)

MIN_SECRET_LENGTH = 64
_AUTH_KEY_RE = re.compile(r"\A[0-9A-Za-z-]{1,128}:[0-9A-Za-z]{1,256}\Z")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(Exception):
    """The environment does not make a valid configuration; ``problems`` names each variable."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


# --- parsers: each turns the raw string into a value or raises ValueError with a reason ---------


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"must be a whole number, got {raw!r}") from None


def _float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"must be a number, got {raw!r}") from None


def _str(raw: str) -> str:
    return raw.strip()


# How every rate limit is written (``600/minute``); owaction.ratelimit parses it with this.
RATE_LIMIT_RE = re.compile(r"\A\s*(\d+)\s*/\s*(second|minute|hour|day)\s*\Z")


def _rate_limit(raw: str) -> str:
    """``N/second|minute|hour|day``, or empty for no limit."""
    value = raw.strip()
    if value and not RATE_LIMIT_RE.match(value):
        raise ValueError("must look like 600/minute")
    return value


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _pairs(raw: str) -> tuple[tuple[str, str], ...]:
    """``a=x,b=y`` into ``(("a", "x"), ("b", "y"))``; a tuple keeps Settings hashable."""
    pairs = []
    for item in _csv(raw):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError("must be comma-separated name=value pairs")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def _permission_pairs(raw: str) -> tuple[tuple[str, str], ...]:
    """``svc=execute_actions+read+manage,...``: each service's permissions, names checked."""
    from owaction.auth import ALL_PERMISSIONS  # auth imports this module; import when parsing

    pairs = []
    for name, value in _pairs(raw):
        perms = [p.strip() for p in value.split("+") if p.strip()]
        unknown = sorted(set(perms) - set(ALL_PERMISSIONS))
        if unknown or not perms:
            raise ValueError(f"permissions of {name!r} must be some of "
                             f"{'+'.join(ALL_PERMISSIONS)}, got {value!r}")
        pairs.append((name, "+".join(dict.fromkeys(perms))))
    return tuple(pairs)


def _ttl_pairs(raw: str) -> tuple[tuple[str, int], ...]:
    pairs = []
    for name, value in _pairs(raw):
        try:
            seconds = int(value)
        except ValueError:
            raise ValueError(f"TTL for {name!r} must be whole seconds") from None
        if seconds <= 0:
            raise ValueError(f"TTL for {name!r} must be positive")
        pairs.append((name, seconds))
    return tuple(pairs)


_WEB_TARGET = re.compile(r"\A([^/\s,=]+/){1,2}[^/\s,=]+\Z")
_ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")


def _web_target(name: str) -> str:
    if not _WEB_TARGET.match(name) or "*" in name[:-2] or (
            name.endswith("*") and not name.endswith("/*")):
        raise ValueError(f"web action {name!r} must be package/action, package/* or "
                         "namespace/package/action (default/action when not in a package)")
    return name


def _web_targets(raw: str) -> tuple[str, ...]:
    return tuple(_web_target(name) for name in _csv(raw))


def _web_secret_vars(raw: str) -> tuple[tuple[str, str], ...]:
    """``package/action=ENV_NAME`` pairs: the secret itself lives in that variable."""
    pairs = _pairs(raw)
    for name, env_name in pairs:
        _web_target(name)
        if not _ENV_NAME.match(env_name):
            raise ValueError(f"{env_name!r} must be the name of an environment variable")
    return pairs


def _port(raw: str) -> int:
    port = _int(raw)
    if not 1 <= port <= 65535:
        raise ValueError(f"must be a port between 1 and 65535, got {port}")
    return port


def _port_or_zero(raw: str) -> int:
    port = _int(raw)
    if not 0 <= port <= 65535:
        raise ValueError(f"must be a port between 0 (off) and 65535, got {port}")
    return port


def _positive_int(raw: str) -> int:
    value = _int(raw)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _positive_float(raw: str) -> float:
    value = _float(raw)
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {value}")
    return value


def _url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not re.match(r"\Ahttps?://[^/\s]+", value):
        raise ValueError(f"must be an http:// or https:// URL, got {raw!r}")
    return value


def _optional_url(raw: str) -> str:
    return _url(raw) if raw.strip() else ""


def _database_url(raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""  # filled in below: SQLite under DATA_DIR
    if value.startswith("postgresql://"):
        # PyDAL spells it postgres://; callers and deployments use both.
        value = "postgres://" + value[len("postgresql://") :]
    if value.startswith("postgresql+psycopg2://"):
        value = "postgres://" + value[len("postgresql+psycopg2://") :]
    if not (value.startswith("sqlite://") or value.startswith("postgres://")):
        raise ValueError("must be a sqlite:// or postgresql:// URL")
    return value


def _auth_key(raw: str) -> str:
    value = raw.strip()
    if not _AUTH_KEY_RE.match(value):
        raise ValueError("must have the OpenWhisk form uuid:key")
    return value


def _secret_key(raw: str) -> str:
    value = raw.strip()
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"must be at least {MIN_SECRET_LENGTH} characters (got {len(value)}); "
            "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(64))'"
        )
    lowered = value.lower()
    for placeholder in KNOWN_PLACEHOLDERS:
        if lowered == placeholder or set(lowered.split(placeholder)) <= {""}:
            raise ValueError("is a known placeholder; generate a real secret")
    if len(set(value)) < 8:
        raise ValueError("has too little variety to be a real secret")
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _log_flush_interval(raw: str) -> int:
    value = _int(raw)
    if not 0 <= value <= 1000:
        raise ValueError("must be between 0 and 1000 (milliseconds)")
    return value


def _log_level(raw: str) -> str:
    return _choice("debug", "info", "warning", "error", "critical")(raw).upper()


# --- the variables ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    """One environment variable: its attribute, parser, default and one line for the README."""

    env: str
    attr: str
    parse: Callable[[str], Any]
    default: str | None  # None: required
    doc: str
    secret: bool = False
    group: str = "general"
    # A URL that may carry a password (``scheme://user:password@host``): the password is masked.
    has_credentials: bool = False


def _default_data_dir() -> str:
    return os.path.join(os.getcwd(), "data")


VARIABLES: tuple[Var, ...] = (
    # OpenWhisk
    Var("OPENWHISK_API_HOST", "openwhisk_api_host", _url, "http://127.0.0.1:3233",
        "OpenWhisk controller URL (standalone listens on 3233)", group="openwhisk"),
    Var("OPENWHISK_AUTH_KEY", "openwhisk_auth_key", _auth_key, GUEST_AUTH_KEY,
        "OpenWhisk credentials `uuid:key`, sent as HTTP Basic (default: the public standalone "
        "guest key)", secret=True, group="openwhisk"),
    Var("OPENWHISK_NAMESPACE", "openwhisk_namespace", _str, "guest",
        "namespace used when a caller gives none", group="openwhisk"),
    Var("OPENWHISK_APIGW_TOKEN", "openwhisk_apigw_token", _str, "",
        "API gateway access token for routes (`wsk`'s APIGW_ACCESS_TOKEN), sent to "
        "/whisk.system/apimgmt with the namespace uuid as spaceguid (empty: none)",
        secret=True, group="openwhisk"),
    Var("OPENWHISK_INSECURE", "openwhisk_insecure", _bool, "false",
        "skip TLS verification of OpenWhisk (logged as a warning)", group="openwhisk"),
    Var("OPENWHISK_CA_BUNDLE", "openwhisk_ca_bundle", _str, "",
        "CA bundle file used to verify OpenWhisk's certificate", group="openwhisk"),
    Var("OPENWHISK_POOL_SIZE", "openwhisk_pool_size", _positive_int, "200",
        "pooled HTTP connections to OpenWhisk per process (sized for gevent concurrency)",
        group="openwhisk"),
    Var("OPENWHISK_CONNECT_TIMEOUT", "openwhisk_connect_timeout", _positive_float, "5",
        "seconds to establish a connection to OpenWhisk", group="openwhisk"),
    Var("OPENWHISK_BLOCKING_WAIT_MS", "openwhisk_blocking_wait_ms", _positive_int, "60000",
        "OpenWhisk's maximum blocking wait (controller max-wait-for-blocking-activation)",
        group="openwhisk"),
    Var("REQUEST_TIMEOUT", "request_timeout", _positive_float, "70",
        "HTTP read timeout for OpenWhisk calls, seconds; must exceed the blocking wait",
        group="openwhisk"),
    Var("MAX_ACTION_TIMEOUT", "max_action_timeout", _positive_int, "60000",
        "largest blocking `timeout` (ms) a caller may ask for", group="openwhisk"),
    Var("OPENWHISK_KEEPALIVE_IDLE", "openwhisk_keepalive_idle", _positive_float, "20",
        "seconds after which an idle pooled connection is discarded instead of reused "
        "(OpenWhisk's nginx closes idle ones after 65 s)", group="openwhisk"),
    Var("OPENWHISK_GET_RETRIES", "openwhisk_get_retries", _int, "3",
        "retries of idempotent GETs on connection errors and 502/503/504", group="openwhisk"),
    Var("WEB_ACTION_SECRETS", "web_action_secrets", _web_secret_vars, "",
        "`package/action=ENV_NAME` pairs (`package/*` for a whole package, "
        "`namespace/package/action` elsewhere): the action's `require-whisk-auth` secret, "
        "sent as X-Require-Whisk-Auth, is read from variable ENV_NAME", group="openwhisk"),
    Var("WEB_ACTION_KEY_ALLOWED", "web_action_key_allowed", _web_targets, "",
        "web actions (same forms) annotated `require-whisk-auth: true` that may be sent "
        "OPENWHISK_AUTH_KEY; their code can read it. Every other web action gets no "
        "credentials", group="openwhisk"),
    Var("BREAKER_FAIL_MAX", "breaker_fail_max", _positive_int, "5",
        "consecutive OpenWhisk transport failures or 5xx that open the circuit breaker",
        group="openwhisk"),
    Var("BREAKER_RESET_TIMEOUT", "breaker_reset_timeout", _positive_float, "30",
        "seconds the breaker stays open before a probe", group="openwhisk"),
    # Servers
    Var("BIND_HOST", "bind_host", _str, "127.0.0.1",
        "address REST and gRPC listen on (0.0.0.0 in containers)", group="servers"),
    Var("REST_PORT", "rest_port", _port, "8082", "REST port", group="servers"),
    Var("GRPC_PORT", "grpc_port", _port, "50062", "gRPC port", group="servers"),
    Var("WEB_WORKERS", "web_workers", _positive_int, "2", "gunicorn gevent workers",
        group="servers"),
    Var("WEB_WORKER_CONNECTIONS", "web_worker_connections", _positive_int, "1000",
        "connections one gunicorn worker serves at once, idle keep-alive ones included; more "
        "wait in the listen backlog", group="servers"),
    Var("WEB_KEEPALIVE", "web_keepalive", _positive_int, "2",
        "seconds gunicorn keeps an idle keep-alive connection (and waits for a request's head)",
        group="servers"),
    Var("WEB_GRACEFUL_TIMEOUT", "web_graceful_timeout", _positive_int, "75",
        "seconds gunicorn lets in-flight requests finish on SIGTERM", group="servers"),
    Var("GRPC_MAX_WORKERS", "grpc_max_workers", _positive_int, "64",
        "threads of the gRPC server's ThreadPoolExecutor", group="servers"),
    Var("GRPC_GRACE", "grpc_grace", _positive_float, "75",
        "seconds in-flight RPCs may finish on SIGTERM", group="servers"),
    Var("GRPC_TLS_CERT", "grpc_tls_cert", _str, "", "PEM certificate for gRPC TLS (optional)",
        group="servers"),
    Var("GRPC_TLS_KEY", "grpc_tls_key", _str, "", "PEM private key for gRPC TLS (optional)",
        group="servers"),
    Var("GRPC_METRICS_PORT", "grpc_metrics_port", _port_or_zero, "9462",
        "Prometheus port of the gRPC process (0: off)", group="servers"),
    Var("WORKER_METRICS_PORT", "worker_metrics_port", _port_or_zero, "9463",
        "Prometheus port of the worker (0: off)", group="servers"),
    Var("MAX_PAYLOAD_BYTES", "max_payload_bytes", _positive_int, "1048576",
        "largest accepted payload or request body", group="servers"),
    # Database
    Var("DATABASE_URL", "database_url", _database_url, "",
        "sqlite:// or postgresql:// URL (default: SQLite under DATA_DIR)", group="database",
        has_credentials=True),
    Var("DATA_DIR", "data_dir", _str, "", "local data directory (default ./data)",
        group="database"),
    Var("DB_POOL_SIZE", "db_pool_size", _positive_int, "10",
        "most database sessions one process uses at once", group="database"),
    Var("DB_TIMEOUT", "db_timeout", _positive_float, "5",
        "seconds to wait for a database session before answering 503", group="database"),
    # Security
    Var("MODULE_SECRET_KEY", "module_secret_key", _secret_key, None,
        "HS256 signing secret for tokens (at least 64 characters; shared with the router)",
        secret=True, group="security"),
    Var("API_KEYS", "api_keys", _pairs, "",
        "service=key pairs accepted by POST /api/v1/auth/token", secret=True,
        group="security"),
    Var("API_KEY_PERMISSIONS", "api_key_permissions", _permission_pairs, "",
        "service=perm+perm pairs: what tokens for that service's API key may carry (default "
        "execute_actions+read; manage only when listed)", group="security"),
    Var("ALLOWED_SERVICES", "allowed_services", _csv, "router_module",
        "services whose router-style tokens (no permissions claim) are accepted",
        group="security"),
    Var("TOKEN_TTL", "token_ttl", _positive_int, "3600", "lifetime of issued tokens, seconds",
        group="security"),
    Var("MAX_TOKEN_TTL", "max_token_ttl", _positive_int, "86400",
        "longest token lifetime (exp - iat) accepted or minted, seconds (the router's tokens "
        "live 3600)", group="security"),
    Var("SERVICE_KEY", "service_key", _str, "",
        "the router's X-Service-Key for POST /api/v1/execute (empty: Bearer tokens only)",
        secret=True, group="security"),
    Var("REDIS_URL", "redis_url", _str, "",
        "Redis for shared rate limits (empty: per-process memory)", group="security",
        has_credentials=True),
    Var("RATE_LIMIT_CALLER", "rate_limit_caller", _rate_limit, "",
        "invocations allowed per calling service, e.g. 6000/minute (empty: no module limit; "
        "OpenWhisk's namespace limits answer 429)", group="security"),
    Var("RATE_LIMIT_ACTION", "rate_limit_action", _rate_limit, "",
        "invocations allowed per action, e.g. 3000/minute (empty: no module limit)",
        group="security"),
    Var("RATE_LIMIT_TOKEN", "rate_limit_token", _rate_limit, "30/minute",
        "token requests allowed per client address", group="security"),
    # Resilience
    Var("IDEMPOTENCY_TTL", "idempotency_ttl", _positive_int, "86400",
        "seconds an Idempotency-Key is remembered", group="resilience"),
    Var("CACHEABLE_ACTIONS", "cacheable_actions", _ttl_pairs, "",
        "action=ttl_seconds pairs whose results may be served from cache", group="resilience"),
    Var("ACCEPTED_MAX_AGE", "accepted_max_age", _positive_int, "3600",
        "seconds after which an execution still accepted is marked unknown", group="resilience"),
    Var("PENDING_GRACE", "pending_grace", _positive_int, "300",
        "seconds before a pending execution without activation id is marked unknown",
        group="resilience"),
    Var("WORKER_POLL_INTERVAL", "worker_poll_interval", _positive_float, "2",
        "seconds between the worker's passes", group="resilience"),
    Var("CALLBACK_SECRET", "callback_secret", _str, "",
        "HMAC-SHA256 key signing callback bodies", secret=True, group="resilience"),
    Var("CALLBACK_ALLOWED_HOSTS", "callback_allowed_hosts", _csv, "",
        "hosts callback URLs may point at (empty: callbacks refused)", group="resilience"),
    # WaddleBot
    Var("MODULE_NAME", "module_name", _str, "openwhisk_action_module",
        "module name in replies, logs and registration", group="waddlebot"),
    Var("COMMANDS_FILE", "commands_file", _str, "",
        "YAML or JSON file mapping #commands to actions", group="waddlebot"),
    Var("WEBHOOKS_FILE", "webhooks_file", _str, "",
        "YAML or JSON file of signed inbound webhooks (empty: none)", group="waddlebot"),
    Var("WEBHOOK_ACK_SECONDS", "webhook_ack_seconds", _positive_float, "2",
        "longest a webhook sender waits for its target before a 202", group="waddlebot"),
    Var("WEBHOOK_RATE_LIMIT", "webhook_rate_limit", _rate_limit, "600/minute",
        "deliveries allowed per hook, unless the hook's own `rate_limit` says otherwise",
        group="waddlebot"),
    Var("UNMAPPED_COMMAND_PACKAGE", "unmapped_command_package", _str, "",
        "package an unmapped #command is looked up in (empty: reply 'unknown command')",
        group="waddlebot"),
    Var("ROUTER_URL", "router_url", _optional_url, "",
        "WaddleBot router base URL; when set, commands are registered on start-up",
        group="waddlebot"),
    Var("ROUTER_REGISTER_PATH", "router_register_path", _str, "/api/v1/modules/register",
        "registration path on the router", group="waddlebot"),
    Var("PUBLIC_REST_URL", "public_rest_url", _str, "",
        "REST URL announced to the router (default http://BIND_HOST:REST_PORT)",
        group="waddlebot"),
    Var("PUBLIC_GRPC_ADDRESS", "public_grpc_address", _str, "",
        "gRPC address announced to the router (default BIND_HOST:GRPC_PORT)",
        group="waddlebot"),
    # Logging
    Var("LOG_LEVEL", "log_level", _log_level, "info", "log level", group="logging"),
    Var("LOG_DIR", "log_dir", _str, "",
        "directory of the rotating AAA log file (default DATA_DIR/log; "
        "/var/log/waddlebotlog in deployments)", group="logging"),
    Var("LOG_FORMAT", "log_format", _choice("text", "json"), "text",
        "text (AAA lines) or json (the same events as JSON lines)", group="logging"),
    Var("LOG_FLUSH_INTERVAL_MS", "log_flush_interval_ms", _log_flush_interval, "0",
        "0: each console and file line is written at once; 1 to 1000: lines are written "
        "together at most this many ms apart (a process killed outright loses its last "
        "ones; at 20 the gRPC process spent 7 % less CPU a call on the bench)", group="logging"),
    Var("ENABLE_SYSLOG", "enable_syslog", _bool, "false", "also log to syslog",
        group="logging"),
    Var("SYSLOG_HOST", "syslog_host", _str, "localhost", "syslog host", group="logging"),
    Var("SYSLOG_PORT", "syslog_port", _port, "514", "syslog UDP port", group="logging"),
    Var("SYSLOG_FACILITY", "syslog_facility", _str, "LOCAL0", "syslog facility",
        group="logging"),
)

_SECRET_ATTRS = frozenset(v.attr for v in VARIABLES if v.secret)


@dataclass(frozen=True, repr=False)
class Settings:
    """The module's configuration. Build it with ``load_settings``; never mutate it."""

    openwhisk_api_host: str
    openwhisk_auth_key: str
    openwhisk_namespace: str
    openwhisk_apigw_token: str
    openwhisk_insecure: bool
    openwhisk_ca_bundle: str
    openwhisk_pool_size: int
    openwhisk_connect_timeout: float
    openwhisk_blocking_wait_ms: int
    request_timeout: float
    max_action_timeout: int
    openwhisk_keepalive_idle: float
    openwhisk_get_retries: int
    web_action_secrets: tuple[tuple[str, str], ...]
    web_action_key_allowed: tuple[str, ...]
    breaker_fail_max: int
    breaker_reset_timeout: float
    bind_host: str
    rest_port: int
    grpc_port: int
    web_workers: int
    web_worker_connections: int
    web_keepalive: int
    web_graceful_timeout: int
    grpc_max_workers: int
    grpc_grace: float
    grpc_tls_cert: str
    grpc_tls_key: str
    grpc_metrics_port: int
    worker_metrics_port: int
    max_payload_bytes: int
    database_url: str
    data_dir: str
    db_pool_size: int
    db_timeout: float
    module_secret_key: str
    api_keys: tuple[tuple[str, str], ...]
    api_key_permissions: tuple[tuple[str, str], ...]
    allowed_services: tuple[str, ...]
    token_ttl: int
    max_token_ttl: int
    service_key: str
    redis_url: str
    rate_limit_caller: str
    rate_limit_action: str
    rate_limit_token: str
    idempotency_ttl: int
    cacheable_actions: tuple[tuple[str, int], ...]
    accepted_max_age: int
    pending_grace: int
    worker_poll_interval: float
    callback_secret: str
    callback_allowed_hosts: tuple[str, ...]
    module_name: str
    commands_file: str
    webhooks_file: str
    webhook_ack_seconds: float
    webhook_rate_limit: str
    unmapped_command_package: str
    router_url: str
    router_register_path: str
    public_rest_url: str
    public_grpc_address: str
    log_level: str
    log_dir: str
    log_format: str
    log_flush_interval_ms: int
    enable_syslog: bool
    syslog_host: str
    syslog_port: int
    syslog_facility: str
    environ_snapshot: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    # The variables WEB_ACTION_SECRETS names, and their values: secrets, shown nowhere.
    web_action_secret_env: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"Settings({shown})"

    def as_dict(self, *, mask_secrets: bool = True) -> dict[str, Any]:
        """Every setting by attribute name; secrets are masked unless asked otherwise."""
        out = {}
        for var in VARIABLES:
            value = getattr(self, var.attr)
            if mask_secrets and var.secret:
                value = mask(value)
            elif mask_secrets and var.has_credentials:
                value = mask_url_password(value)
            out[var.attr] = value
        return out

    def as_env(self, *, mask_secrets: bool = True) -> dict[str, str]:
        """Every setting by environment name, as strings (for `config check`)."""
        out = {}
        for var in VARIABLES:
            value = getattr(self, var.attr)
            if mask_secrets and var.secret:
                out[var.env] = mask(value)
            elif mask_secrets and var.has_credentials:
                out[var.env] = mask_url_password(value)
            elif isinstance(value, tuple):
                out[var.env] = ",".join(
                    "=".join(str(x) for x in item) if isinstance(item, tuple) else str(item)
                    for item in value
                )
            elif isinstance(value, bool):
                out[var.env] = "true" if value else "false"
            else:
                out[var.env] = str(value)
        return out

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (for tests and sub-processes), re-validated."""
        env = {**dict(self.web_action_secret_env), **self.as_env(mask_secrets=False)}
        for attr, value in changes.items():
            var = _BY_ATTR[attr]
            if isinstance(value, bool):
                env[var.env] = "true" if value else "false"
            elif isinstance(value, tuple | list):
                env[var.env] = ",".join(
                    "=".join(str(x) for x in item) if isinstance(item, tuple) else str(item)
                    for item in value
                )
            else:
                env[var.env] = str(value)
        return load_settings(env)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite://")

    @property
    def api_key_map(self) -> dict[str, str]:
        return dict(self.api_keys)

    @property
    def web_action_secret_map(self) -> dict[str, str]:
        """Web action (as configured) -> its X-Require-Whisk-Auth secret."""
        values = dict(self.web_action_secret_env)
        return {name: values[env_name] for name, env_name in self.web_action_secrets}

    @property
    def cacheable_action_map(self) -> dict[str, int]:
        return dict(self.cacheable_actions)

    @property
    def openwhisk_verify(self) -> bool | str:
        """What `requests` takes as `verify`: False, a CA bundle path, or True."""
        if self.openwhisk_insecure:
            return False
        return self.openwhisk_ca_bundle or True

    @property
    def rest_url(self) -> str:
        return self.public_rest_url or f"http://{self.bind_host}:{self.rest_port}"

    @property
    def grpc_address(self) -> str:
        return self.public_grpc_address or f"{self.bind_host}:{self.grpc_port}"


_BY_ATTR = {v.attr: v for v in VARIABLES}


def mask(value: Any) -> str:
    """How a secret shows in a dump: whether it is set, never what it is."""
    if not value:
        return ""
    return "********"


def mask_url_password(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part masked, the rest kept."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{mask(parts.password)}@{hostinfo}"))


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every variable; raise ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for var in VARIABLES:
        raw = env.get(var.env)
        if raw is None or (raw.strip() == "" and var.default is not None):
            if var.default is None:
                problems.append(f"{var.env} is required: {var.doc}")
                continue
            raw = var.default
        try:
            values[var.attr] = var.parse(raw)
        except ValueError as exc:
            problems.append(f"{var.env} {exc}")

    # Rules that relate several variables.
    if "request_timeout" in values and "openwhisk_blocking_wait_ms" in values:
        wait_s = values["openwhisk_blocking_wait_ms"] / 1000
        if values["request_timeout"] <= wait_s:
            problems.append(
                f"REQUEST_TIMEOUT ({values['request_timeout']:g} s) must be longer than "
                f"OPENWHISK_BLOCKING_WAIT_MS ({wait_s:g} s), or blocking calls are cut off "
                "while OpenWhisk is still waiting on the action"
            )
    if "max_action_timeout" in values and "openwhisk_blocking_wait_ms" in values:
        if values["max_action_timeout"] > values["openwhisk_blocking_wait_ms"]:
            problems.append(
                "MAX_ACTION_TIMEOUT must not exceed OPENWHISK_BLOCKING_WAIT_MS: OpenWhisk "
                "refuses a longer blocking timeout with 400"
            )
    if bool(values.get("grpc_tls_cert")) != bool(values.get("grpc_tls_key")):
        problems.append("GRPC_TLS_CERT and GRPC_TLS_KEY must be set together")
    if values.get("rest_port") and values.get("rest_port") == values.get("grpc_port"):
        problems.append("REST_PORT and GRPC_PORT must differ")
    if values.get("token_ttl", 0) > values.get("max_token_ttl", float("inf")):
        problems.append(f"TOKEN_TTL ({values['token_ttl']} s) must not exceed MAX_TOKEN_TTL "
                        f"({values['max_token_ttl']} s)")
    secret_env = []
    for name, env_name in values.get("web_action_secrets", ()):
        value = (env.get(env_name) or "").strip()
        if not value:
            problems.append(f"WEB_ACTION_SECRETS names {env_name} for {name}, which is not set")
        elif not re.match(r"\A[!-~]+\Z", value):
            problems.append(f"{env_name} (a web action secret) must be visible ASCII, one line")
        secret_env.append((env_name, value))
    if problems:
        raise ConfigError(problems)
    values["web_action_secret_env"] = tuple(secret_env)

    if not values["data_dir"]:
        values["data_dir"] = _default_data_dir()
    if not values["database_url"]:
        values["database_url"] = "sqlite://" + os.path.join(values["data_dir"], "owaction.sqlite")
    if not values["log_dir"]:
        values["log_dir"] = os.path.join(values["data_dir"], "log")
    known = {v.env for v in VARIABLES}
    values["environ_snapshot"] = tuple(sorted((k, env[k]) for k in env if k in known))
    return Settings(**values)


def settings_or_exit(environ: Mapping[str, str] | None = None) -> Settings:
    """Entry points call this: a bad configuration prints every problem and exits with 2."""
    try:
        return load_settings(environ)
    except ConfigError as exc:
        print(f"owaction: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def config_table_markdown() -> str:
    """The README's configuration table, generated from VARIABLES."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for var in VARIABLES:
        if var.default is None:
            default = "*required*"
        elif var.secret and var.default:
            default = "(public guest key)"
        elif var.default == "":
            default = "(empty)"
        else:
            default = f"`{var.default}`"
        lines.append(f"| `{var.env}` | {default} | {var.doc} |")
    return "\n".join(lines)


def fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(Settings))


README_START = "<!-- configuration table: generated by `python -m owaction.config README.md` -->"
README_END = "<!-- end of configuration table -->"


def readme_with_table(text: str) -> str:
    """``text`` with the block between the README markers replaced by the current table."""
    head, start, rest = text.partition(README_START)
    _, end, tail = rest.partition(README_END)
    if not start or not end:
        raise ValueError("the README has no configuration table markers")
    return f"{head}{README_START}\n{config_table_markdown()}\n{README_END}{tail}"


if __name__ == "__main__":  # python -m owaction.config README.md
    path = sys.argv[1] if len(sys.argv) > 1 else "README.md"
    with open(path, encoding="utf-8") as fh:
        updated = readme_with_table(fh.read())
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(updated)
