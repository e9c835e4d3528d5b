"""wsk-like ``owaction action|package|trigger|rule|route`` commands over the module's REST API.

Each command is one request to a running module (``--url``, default from the settings), with a
token the CLI mints from ``MODULE_SECRET_KEY`` carrying ``manage`` (or ``--token``). It prints
the reply's JSON; exit codes as for every command: 0 success, 1 the module or OpenWhisk refused
or failed, 2 invalid usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# As `wsk action create` infers a kind from the file's extension.
KINDS_BY_SUFFIX = {".py": "python:default", ".js": "nodejs:default"}


class UsageError(Exception):
    """Arguments the command cannot use; exit 2."""


def _pairs(values: list[str] | None) -> dict | None:
    """``-p KEY VALUE`` pairs (VALUE parsed as JSON when it can be) as a dict."""
    if not values:
        return None
    out: dict[str, Any] = {}
    for key, value in values:
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _path(*segments: str) -> str:
    return "/".join(quote(s, safe="") for s in segments)


def _action_name(name: str) -> str:
    # `pkg/action` is two path segments, each percent-encoded.
    return "/".join(quote(part, safe="") for part in name.split("/"))


def _flag(text: str) -> bool:
    value = text.lower()
    if value not in ("true", "false", "yes", "no"):
        raise UsageError(f"{text!r} is not true or false")
    return value in ("true", "yes")


# --- request builders: (method, path, query, body) ----------------------------------------------


def action_put(args: argparse.Namespace, *, overwrite: bool):
    body: dict[str, Any] = {}
    if args.sequence:
        if args.file:
            raise UsageError("give a file or --sequence, not both")
        body["components"] = [c for c in args.sequence.split(",") if c]
    elif args.file:
        path = Path(args.file)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
        if path.suffix == ".zip" or args.binary:
            import base64

            body["code"], body["binary"] = base64.b64encode(raw).decode("ascii"), True
        else:
            try:
                body["code"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UsageError(f"{args.file} is not UTF-8 text: use --binary") from None
        kind = args.kind or KINDS_BY_SUFFIX.get(path.suffix)
        if kind is None:
            raise UsageError(f"cannot tell the kind of {args.file}: give --kind")
        body["kind"] = kind
    elif not overwrite:
        raise UsageError("an action needs a file or --sequence")
    elif args.kind:
        raise UsageError("--kind needs the action's file")
    if args.main:
        body["main"] = args.main
    for field, value in (("parameters", _pairs(args.param)),
                         ("annotations", _pairs(args.annotation))):
        if value is not None:
            body[field] = value
    limits = {k: getattr(args, k) for k in ("timeout", "memory", "logs", "concurrency")
              if getattr(args, k) is not None}
    if limits:
        body["limits"] = limits
    if args.web is not None:
        web = args.web.lower()
        body["web_export"] = web != "false" and web != "no"
        body["raw_http"] = web == "raw"
        if web not in ("true", "false", "yes", "no", "raw"):
            raise UsageError("--web is true, false or raw")
    if args.web_secure is not None:
        secure = args.web_secure
        body["require_whisk_auth"] = (_flag(secure) if secure.lower() in (
            "true", "false", "yes", "no") else secure)
    return "PUT", f"/api/v1/actions/{_action_name(args.name)}", {"overwrite": overwrite}, body


def _entity_put(collection: str, build: Callable[[argparse.Namespace], dict], overwrite: bool):
    def request(args: argparse.Namespace):
        return ("PUT", f"/api/v1/{collection}/{_path(args.name)}", {"overwrite": overwrite},
                build(args))

    return request


def _package_body(args: argparse.Namespace) -> dict:
    body: dict[str, Any] = {}
    for field, value in (("parameters", _pairs(args.param)),
                         ("annotations", _pairs(args.annotation))):
        if value is not None:
            body[field] = value
    if getattr(args, "shared", None) is not None:
        body["publish"] = _flag(args.shared)
    return body


def package_bind(args: argparse.Namespace):
    body = _package_body(args)
    body["binding"] = args.package
    return "PUT", f"/api/v1/packages/{_path(args.name)}", {"overwrite": False}, body


def _trigger_body(args: argparse.Namespace) -> dict:
    body = _package_body(args)
    if args.feed:
        body["feed"] = args.feed
    return body


def _rule_body(args: argparse.Namespace) -> dict:
    return {"trigger": args.trigger, "action": args.action}


def _get(collection: str, *, name_path: Callable[[str], str] = _path):
    def request(args: argparse.Namespace):
        query = {"code": True} if getattr(args, "code", False) else {}
        return "GET", f"/api/v1/{collection}/{name_path(args.name)}", query, None

    return request


def _delete(collection: str, *, name_path: Callable[[str], str] = _path):
    def request(args: argparse.Namespace):
        query = {"force": True} if getattr(args, "force", False) else {}
        return "DELETE", f"/api/v1/{collection}/{name_path(args.name)}", query, None

    return request


def _list(collection: str):
    def request(args: argparse.Namespace):
        return "GET", f"/api/v1/{collection}", {"limit": args.limit, "skip": args.skip}, None

    return request


def trigger_fire(args: argparse.Namespace):
    return "POST", "/api/v1/triggers/fire", {}, {"trigger_name": args.name,
                                                 "payload": _pairs(args.param) or {}}


def rule_state(verb: str):
    def request(args: argparse.Namespace):
        return "POST", f"/api/v1/rules/{_path(args.name)}/{verb}", {}, None

    return request


def route_create(args: argparse.Namespace):
    body = {"basepath": args.basepath, "relpath": args.relpath, "verb": args.verb.upper(),
            "action": args.action, "response_type": args.response_type}
    if args.api_name:
        body["api_name"] = args.api_name
    return "POST", "/api/v1/routes", {}, body


def _route_query(args: argparse.Namespace) -> dict:
    return {k: v for k, v in (("basepath", args.basepath), ("relpath", args.relpath),
                              ("verb", args.verb.upper() if args.verb else None)) if v}


def route_list(args: argparse.Namespace):
    return "GET", "/api/v1/routes", _route_query(args), None


def route_delete(args: argparse.Namespace):
    return "DELETE", "/api/v1/routes", _route_query(args), None


# --- running one ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Build the request, send it with a manage token, print the answer."""
    from owaction.auth import ALL_PERMISSIONS, TokenVerifier
    from owaction.cli import _cli_service, _settings, rest_base_url

    what = f"owaction {args.command} {args.entity_command}"
    try:
        method, path, query, body = args.build(args)
    except UsageError as exc:
        print(f"{what}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = _settings()
    token = args.token or TokenVerifier(settings).issue(_cli_service(settings),
                                                        ALL_PERMISSIONS)[0]
    if getattr(args, "namespace", None):
        if body is not None and path == "/api/v1/routes":
            body["namespace"] = args.namespace
        else:
            query["namespace"] = args.namespace
    params = {k: ("true" if v is True else "false" if v is False else v)
              for k, v in query.items()}
    base = args.url or rest_base_url(settings)
    import requests

    try:
        response = requests.request(method, base + path, params=params, json=body,
                                    headers={"Authorization": f"Bearer {token}"},
                                    timeout=settings.request_timeout + 5)
    except requests.RequestException as exc:
        print(f"{what}: cannot reach {base}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        reply = response.json()
    except ValueError:
        reply = {"error": {"code": str(response.status_code), "message": response.text[:500]}}
    if response.status_code >= 400:
        error = reply.get("error") if isinstance(reply, dict) else None
        error = error if isinstance(error, dict) else {}
        print(f"{what}: {response.status_code} {error.get('code', '')}: "
              f"{error.get('message', '')}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(reply, indent=2))
    return EXIT_OK


# --- the parser -------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespace", help="OpenWhisk namespace (default: OPENWHISK_NAMESPACE)")
    p.add_argument("--url", help="the module's REST base URL (default: from settings)")
    p.add_argument("--token", help="a token carrying manage, instead of minting one")


def _params(p: argparse.ArgumentParser, *, annotations: bool = True) -> None:
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="a parameter (VALUE parsed as JSON when it can be); repeatable")
    if annotations:
        p.add_argument("-a", "--annotation", nargs=2, action="append",
                       metavar=("KEY", "VALUE"), help="an annotation; repeatable")


def _sub(group, name: str, build, help_text: str) -> argparse.ArgumentParser:
    p = group.add_parser(name, help=help_text, description=help_text)
    p.set_defaults(func=run, build=build)
    _common(p)
    return p


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=30, help="at most this many (0..200)")
    p.add_argument("--skip", type=int, default=0)


def add_commands(sub) -> None:
    """Add the entity commands to the ``owaction`` parser's subcommands."""
    epilog = "Exit codes: 0 success, 1 refused or failed, 2 invalid usage."

    p = sub.add_parser("action", help="create, update, get, delete and list actions",
                       epilog=epilog)
    group = p.add_subparsers(dest="entity_command", required=True, metavar="SUBCOMMAND")
    for verb, overwrite in (("create", False), ("update", True)):
        a = _sub(group, verb, lambda args, o=overwrite: action_put(args, overwrite=o),
                 f"{verb} an action from a file (kind from .py/.js, or --kind) or --sequence")
        a.add_argument("name", help="action, or package/action")
        a.add_argument("file", nargs="?", help="the code: .py, .js, or a .zip")
        a.add_argument("--kind", help="runtime kind, e.g. python:3 or nodejs:20")
        a.add_argument("--main", help="the entry function")
        a.add_argument("--binary", action="store_true", help="send the file as a base64 zip")
        a.add_argument("--sequence", metavar="A,B,...", help="a sequence of these actions")
        a.add_argument("--web", metavar="true|false|raw", help="make it a web action")
        a.add_argument("--web-secure", metavar="SECRET|true|false",
                       help="require-whisk-auth for the web action")
        for limit, unit in (("timeout", "ms"), ("memory", "MB"), ("logs", "MB"),
                            ("concurrency", "activations")):
            a.add_argument(f"--{limit}", type=int, help=f"limit ({unit})")
        _params(a)
    a = _sub(group, "get", _get("actions", name_path=_action_name), "show an action")
    a.add_argument("name")
    a.add_argument("--code", action="store_true", help="include the code")
    a = _sub(group, "delete", _delete("actions", name_path=_action_name), "delete an action")
    a.add_argument("name")
    a = _sub(group, "list", lambda args: ("GET", "/api/v1/actions",
                                          {"limit": args.limit, "skip": args.skip}, None),
             "list actions")
    _list_args(a)

    p = sub.add_parser("package", help="packages and bindings", epilog=epilog)
    group = p.add_subparsers(dest="entity_command", required=True, metavar="SUBCOMMAND")
    for verb, overwrite in (("create", False), ("update", True)):
        a = _sub(group, verb, _entity_put("packages", _package_body, overwrite),
                 f"{verb} a package")
        a.add_argument("name")
        a.add_argument("--shared", metavar="yes|no", help="publish to other namespaces")
        _params(a)
    a = _sub(group, "bind", package_bind, "bind a package (own or shared) with parameters")
    a.add_argument("package", help="the package: name, or /namespace/name")
    a.add_argument("name", help="the binding's name")
    _params(a)
    a = _sub(group, "get", _get("packages"), "show a package, its actions and feeds")
    a.add_argument("name")
    a = _sub(group, "delete", _delete("packages"), "delete a package or binding")
    a.add_argument("name")
    a.add_argument("--force", action="store_true", help="delete its actions too")
    _list_args(_sub(group, "list", _list("packages"), "list packages"))

    p = sub.add_parser("trigger", help="triggers, with feeds", epilog=epilog)
    group = p.add_subparsers(dest="entity_command", required=True, metavar="SUBCOMMAND")
    for verb, overwrite in (("create", False), ("update", True)):
        a = _sub(group, verb, _entity_put("triggers", _trigger_body, overwrite),
                 f"{verb} a trigger")
        a.add_argument("name")
        a.add_argument("--feed", help="a /whisk.system feed, e.g. /whisk.system/alarms/alarm "
                       "(its parameters go in -p)")
        _params(a)
    a = _sub(group, "fire", trigger_fire, "fire a trigger")
    a.add_argument("name")
    _params(a, annotations=False)
    a = _sub(group, "get", _get("triggers"), "show a trigger (and its feed's state)")
    a.add_argument("name")
    a = _sub(group, "delete", _delete("triggers"), "delete a trigger (its feed first)")
    a.add_argument("name")
    _list_args(_sub(group, "list", _list("triggers"), "list triggers"))

    p = sub.add_parser("rule", help="rules: create, enable, disable, ...", epilog=epilog)
    group = p.add_subparsers(dest="entity_command", required=True, metavar="SUBCOMMAND")
    for verb, overwrite in (("create", False), ("update", True)):
        a = _sub(group, verb, _entity_put("rules", _rule_body, overwrite),
                 f"{verb} a rule (active when new)")
        a.add_argument("name")
        a.add_argument("trigger")
        a.add_argument("action")
    for verb in ("enable", "disable"):
        _sub(group, verb, rule_state(verb), f"{verb} a rule").add_argument("name")
    _sub(group, "get", _get("rules"), "show a rule and its status").add_argument("name")
    _sub(group, "delete", _delete("rules"), "delete a rule").add_argument("name")
    _list_args(_sub(group, "list", _list("rules"), "list rules"))

    p = sub.add_parser("route", help="API gateway routes to web actions", epilog=epilog)
    group = p.add_subparsers(dest="entity_command", required=True, metavar="SUBCOMMAND")
    a = _sub(group, "create", route_create, "create a route: BASEPATH RELPATH VERB ACTION")
    a.add_argument("basepath", help="e.g. /hello")
    a.add_argument("relpath", help="e.g. /world")
    a.add_argument("verb", help="GET, POST, PUT, DELETE, PATCH, HEAD or OPTIONS")
    a.add_argument("action", help="a web action")
    a.add_argument("--response-type", default="json",
                   choices=("json", "http", "html", "svg", "text"))
    a.add_argument("--api-name")
    for verb, help_text in (("list", "list routes"), ("delete", "delete routes")):
        a = _sub(group, verb, route_list if verb == "list" else route_delete, help_text)
        a.add_argument("basepath", nargs=None if verb == "delete" else "?")
        a.add_argument("relpath", nargs="?")
        a.add_argument("verb", nargs="?")
