"""The ``owaction`` command.

Exit codes (every subcommand):
    0  success
    1  the operation failed (an invocation failed, a server stopped with an error)
    2  invalid configuration or usage (each problem is printed)
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_COMMANDS = ROOT / "deploy" / "commands.example.yaml"
# Both come from the installed package, so a wheel needs none of the checkout's top-level files.
REST_COMMAND = [sys.executable, "-m", "gunicorn", "-c", "python:owaction.gunicorn_conf",
                "owaction.rest.wsgi:app"]
GRPC_COMMAND = [sys.executable, "-m", "owaction", "grpc"]


def _settings():
    from owaction.config import settings_or_exit

    return settings_or_exit()


# --- servers ------------------------------------------------------------------------------


def cmd_rest(args: argparse.Namespace) -> int:
    settings = _settings()  # validate before handing over, so a bad config exits 2 here
    del settings
    os.execv(sys.executable, REST_COMMAND)
    return EXIT_FAILED  # pragma: no cover - execv does not return


def cmd_grpc(args: argparse.Namespace) -> int:
    # gRPC's C core writes its own log lines to stderr, outside Python logging and the AAA
    # format; silence it unless an operator asks for it while debugging (GRPC_VERBOSITY=DEBUG).
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from owaction.rpc.server import serve

    return serve(_settings())


def cmd_worker(args: argparse.Namespace) -> int:
    from owaction.worker import main as worker_main

    return worker_main(_settings(), once=args.once)


def cmd_serve(args: argparse.Namespace) -> int:
    from owaction.supervisor import serve

    return serve(_settings(), migrate=not args.no_migrate)


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from owaction import healthcheck

    role = args.role or healthcheck.container_role()
    if role not in healthcheck.CHECKED_ROLES:
        print(f"owaction healthcheck: unknown role {role!r}", file=sys.stderr)
        return EXIT_FAILED  # Docker reserves 2; anything but 0 is unhealthy
    problems = healthcheck.run(_settings(), role)
    for problem in problems:
        print(f"owaction healthcheck: {problem}", file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


def cmd_emulator(args: argparse.Namespace) -> int:
    # The emulator patches gevent itself; run it in its own interpreter so that happens first.
    from importlib.machinery import PathFinder

    # The child runs `python -m` here, so a checkout in the working directory counts too.
    if PathFinder.find_spec("openwhisk_emulator", [os.getcwd(), *sys.path]) is None:
        print("owaction emulator: the openwhisk_emulator package is not installed; it is a "
              "development tool, not part of the production package: run it from a checkout "
              "(make install) or its own image target", file=sys.stderr)
        return EXIT_FAILED
    argv = [sys.executable, "-m", "openwhisk_emulator", *args.emulator_args]
    os.execv(sys.executable, argv)
    return EXIT_FAILED  # pragma: no cover


# --- tokens and invocations ------------------------------------------------------------------


def cmd_token(args: argparse.Namespace) -> int:
    from owaction.auth import DEFAULT_PERMISSIONS, TokenVerifier

    settings = _settings()
    permissions = (tuple(p for p in (args.permissions or "").split(",") if p)
                   or DEFAULT_PERMISSIONS)
    try:
        token, _ = TokenVerifier(settings).issue(args.service, permissions, ttl=args.ttl)
    except ValueError as exc:
        print(f"owaction token: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(token)
    return EXIT_OK


def _params(pairs: list[str]) -> dict:
    out: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"parameter {pair!r} is not key=value")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def cmd_invoke(args: argparse.Namespace) -> int:
    from owaction.auth import ALL_PERMISSIONS, TokenVerifier

    settings = _settings()
    try:
        params = _params(args.param)
    except ValueError as exc:
        print(f"owaction invoke: {exc}", file=sys.stderr)
        return EXIT_USAGE
    token = args.token or TokenVerifier(settings).issue(_cli_service(settings),
                                                        ALL_PERMISSIONS)[0]
    host = _local_host(settings)
    if args.via == "grpc":
        import grpc

        from owaction.rpc import openwhisk_action_pb2 as pb
        from owaction.rpc import openwhisk_action_pb2_grpc as pb_grpc

        target = args.url or f"{host}:{settings.grpc_port}"
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.OpenWhiskActionServiceStub(channel)
            try:
                reply = stub.InvokeAction(
                    pb.InvokeActionRequest(
                        namespace=args.namespace or "", action_name=args.action,
                        payload=json.dumps(params), blocking=args.blocking,
                    ),
                    metadata=(("authorization", f"Bearer {token}"),),
                    timeout=settings.request_timeout + 5,
                )
            except grpc.RpcError as exc:
                print(f"owaction invoke: {exc.code().name}: {exc.details()}", file=sys.stderr)
                return EXIT_FAILED
            from google.protobuf.json_format import MessageToDict

            body = MessageToDict(reply, preserving_proto_field_name=True)
            print(json.dumps(body, indent=2))
            return EXIT_OK if reply.success else EXIT_FAILED

    import requests

    base = args.url or rest_base_url(settings)
    path = "/api/v1/actions/invoke" if args.blocking else "/api/v1/actions/invoke-async"
    body = {"action_name": args.action, "payload": params}
    if args.namespace:
        body["namespace"] = args.namespace
    try:
        response = requests.post(base + path, json=body, timeout=settings.request_timeout + 5,
                                 headers={"Authorization": f"Bearer {token}"})
    except requests.RequestException as exc:
        print(f"owaction invoke: cannot reach {base}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        print(json.dumps(response.json(), indent=2))
    except ValueError:
        print(response.text)
    return EXIT_OK if response.status_code in (200, 202) else EXIT_FAILED


def _local_host(settings) -> str:
    return "127.0.0.1" if settings.bind_host in ("0.0.0.0", "::") else settings.bind_host


def rest_base_url(settings) -> str:
    """Where this machine reaches the module's REST server."""
    return f"http://{_local_host(settings)}:{settings.rest_port}"


# --- configuration and database ------------------------------------------------------------


def cmd_config_check(args: argparse.Namespace) -> int:
    from owaction.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"owaction: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("configuration is valid; effective settings (secrets masked):")
    for name, value in settings.as_env().items():
        print(f"  {name}={value}")
    return EXIT_OK


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from owaction.errors import ServiceError
    from owaction.store import ExecutionStore

    settings = _settings()
    try:
        store = ExecutionStore.from_settings(settings)
        store.migrate()
        store.close()
    except ServiceError as exc:
        print(f"owaction db migrate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print("database is up to date")
    return EXIT_OK


# --- the local stack -----------------------------------------------------------------------


def _dev_secret(data_dir: Path, name: str = "dev_module_secret_key") -> str:
    """A per-checkout secret for local runs, kept so tokens and keys survive restarts."""
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(64)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def _wait_http(url: str, procs: list[subprocess.Popen], timeout: float = 60) -> bool:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        try:
            requests.get(url, timeout=1)
            return True
        except requests.RequestException:
            time.sleep(0.2)
    return False


def cmd_run(args: argparse.Namespace) -> int:
    """Emulator (unless OPENWHISK_API_HOST is set), REST, gRPC and the worker, until Ctrl-C."""
    env = dict(os.environ)
    data_dir = Path(env.get("DATA_DIR") or Path.cwd() / "data")
    env.setdefault("DATA_DIR", str(data_dir))
    if not env.get("MODULE_SECRET_KEY"):
        env["MODULE_SECRET_KEY"] = _dev_secret(data_dir)
    if not env.get("SERVICE_KEY"):
        env["SERVICE_KEY"] = _dev_secret(data_dir, "dev_service_key")
    start_emulator = not env.get("OPENWHISK_API_HOST")
    if start_emulator and not env.get("COMMANDS_FILE"):
        # The example #commands map the emulator's example actions, so the router path works.
        env["COMMANDS_FILE"] = str(EXAMPLE_COMMANDS)
    emulator_port = int(env.get("EMULATOR_PORT", "3233"))
    if start_emulator:
        env["OPENWHISK_API_HOST"] = f"http://127.0.0.1:{emulator_port}"
    from owaction.config import ConfigError, load_settings

    try:
        settings = load_settings(env)
    except ConfigError as exc:
        print(f"owaction: {exc}", file=sys.stderr)
        return EXIT_USAGE

    python = sys.executable
    procs: dict[str, subprocess.Popen] = {}

    def stop(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C, and SIGTERM from a supervisor, stop every process; explicit, because a shell
    # that starts this in the background hands it SIGINT ignored.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    def spawn(name: str, argv: list[str]) -> None:
        procs[name] = subprocess.Popen(argv, env=env, cwd=str(ROOT))

    try:
        if start_emulator:
            spawn("emulator", [python, "-m", "openwhisk_emulator", "--port", str(emulator_port),
                               "--seed", str(ROOT / "openwhisk_emulator" / "examples")])
            if not _wait_http(f"{settings.openwhisk_api_host}/api/v1", list(procs.values())):
                print("owaction run: the emulator did not start", file=sys.stderr)
                return EXIT_FAILED
        subprocess.run([python, "-m", "owaction", "db", "migrate"], env=env, check=True,
                       cwd=str(ROOT), stdout=subprocess.DEVNULL)
        spawn("rest", REST_COMMAND)
        spawn("grpc", GRPC_COMMAND)
        spawn("worker", [python, "-m", "owaction", "worker"])
        host = "127.0.0.1" if settings.bind_host in ("0.0.0.0", "::") else settings.bind_host
        rest = f"http://{host}:{settings.rest_port}"
        if not _wait_http(f"{rest}/health", list(procs.values())):
            print("owaction run: the REST server did not start", file=sys.stderr)
            return EXIT_FAILED
        from owaction.auth import ALL_PERMISSIONS, TokenVerifier

        token, _ = TokenVerifier(settings).issue(_cli_service(settings), ALL_PERMISSIONS,
                                                 ttl=min(86400, settings.max_token_ttl))
        secret_file = data_dir / "dev_module_secret_key"
        print(_banner(settings, rest, host, token,
                      secret_file if not os.environ.get("MODULE_SECRET_KEY") else None,
                      data_dir / "dev_service_key" if not os.environ.get("SERVICE_KEY") else None),
              flush=True)
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"owaction run: {name} exited with {proc.returncode}", file=sys.stderr)
                    return EXIT_FAILED
            time.sleep(0.5)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except subprocess.CalledProcessError:
        print("owaction run: database migration failed", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _cli_service(settings) -> str:
    """The service the CLI's own tokens name: one the verifier accepts."""
    from owaction.auth import TokenVerifier

    service = TokenVerifier(settings).default_service
    if service is None:
        raise SystemExit("owaction: set ALLOWED_SERVICES or API_KEYS so tokens name a known "
                         "service")
    return service


def _banner(settings, rest: str, host: str, token: str, secret_file: Path | None,
            service_key_file: Path | None) -> str:
    env = f'MODULE_SECRET_KEY="$(cat {secret_file})" ' if secret_file else ""
    # The key itself is not printed: the shell reads it where it is kept.
    service_key = f"$(cat {service_key_file})" if service_key_file else "$SERVICE_KEY"
    return f"""
owaction is running (OpenWhisk at {settings.openwhisk_api_host}, database {
    'SQLite' if settings.is_sqlite else 'PostgreSQL'}).

  REST  {rest}   (OpenAPI: {rest}/openapi.json)
  gRPC  {host}:{settings.grpc_port}

Invoke `hello` through REST:

  curl -s -X POST {rest}/api/v1/actions/invoke \\
    -H 'Authorization: Bearer {token}' \\
    -H 'Content-Type: application/json' \\
    -d '{{"action_name": "hello", "payload": {{}}}}'

Invoke it through gRPC:

  {env}.venv/bin/owaction invoke hello --via grpc

Send `#weather berlin` the way WaddleBot's router does ({
    f"commands from {settings.commands_file}" if settings.commands_file else "no COMMANDS_FILE"}):

  curl -s -X POST {rest}/api/v1/execute \\
    -H "X-Service-Key: {service_key}" \\
    -H 'Content-Type: application/json' \\
    -d '{{"command": "#weather", "args": "berlin", "user_id": "u1", "entity_id": "e1",
         "community_id": "42", "session_id": "sess_'"$(date +%s%N)"'",
         "message": "#weather berlin"}}'

Ctrl-C stops everything.
"""


# --- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from owaction.healthcheck import CHECKED_ROLES

    parser = argparse.ArgumentParser(
        prog="owaction",
        description="WaddleBot's OpenWhisk action module.",
        epilog="Exit codes: 0 success, 1 operation failed, 2 invalid configuration or usage, "
        "130 interrupted.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="the whole module locally: emulator, REST, gRPC, worker")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("rest", help="the REST server (gunicorn with gevent workers)")
    p.set_defaults(func=cmd_rest)
    p = sub.add_parser("grpc", help="the gRPC server process")
    p.set_defaults(func=cmd_grpc)
    p = sub.add_parser("worker", help="completes accepted executions and reconciles crashes")
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("serve", help="REST, gRPC and the worker under one supervisor (one "
                       "container); stops all when one dies")
    p.add_argument("--no-migrate", action="store_true",
                   help="skip creating or migrating the tables first")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("healthcheck", help="exit 0 when this container's role is healthy")
    p.add_argument("role", nargs="?", choices=tuple(CHECKED_ROLES),
                   help="default: OWACTION_ROLE of this container, else serve")
    p.set_defaults(func=cmd_healthcheck)
    p = sub.add_parser("emulator", help="the OpenWhisk emulator (options: owaction emulator "
                       "-- --help)", add_help=False)
    p.add_argument("emulator_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_emulator)

    p = sub.add_parser("token", help="mint a token from MODULE_SECRET_KEY")
    p.add_argument("--service", required=True, help="the token's service claim")
    p.add_argument("--permissions", help="comma-separated, of execute_actions,read,manage "
                   "(default: execute_actions,read)")
    p.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("invoke", help="invoke an action through the running module")
    p.add_argument("action", help="action name, or package/action")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                   help="a parameter (VALUE parsed as JSON when it can be)")
    p.add_argument("--blocking", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--via", choices=("rest", "grpc"), default="rest")
    p.add_argument("--namespace")
    p.add_argument("--url", help="REST base URL or gRPC target (default: from settings)")
    p.add_argument("--token", help="a token to use instead of minting one")
    p.set_defaults(func=cmd_invoke)

    p = sub.add_parser("config", help="configuration")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    c = csub.add_parser("check", help="validate the environment and print the settings")
    c.set_defaults(func=cmd_config_check)

    p = sub.add_parser("db", help="database")
    dsub = p.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    d = dsub.add_parser("migrate", help="create or migrate the tables")
    d.set_defaults(func=cmd_db_migrate)

    from owaction.webhooks.cli import add_parser as add_webhook_parser

    add_webhook_parser(sub, _settings, rest_base_url)

    from owaction.cli_manage import add_commands

    add_commands(sub)  # action, package, trigger, rule, route
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "emulator_args", None) and args.emulator_args[:1] == ["--"]:
        args.emulator_args = args.emulator_args[1:]
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
