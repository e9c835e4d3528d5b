"""``owaction webhook list`` and ``owaction webhook test <hook>``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

from owaction.webhooks.hooks import HookFileError, HookMap

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _hooks(settings) -> HookMap | None:
    if not settings.webhooks_file:
        print("owaction webhook: WEBHOOKS_FILE is not set", file=sys.stderr)
        return None
    try:
        return HookMap(settings.webhooks_file)
    except HookFileError as exc:
        print(f"owaction webhook: {exc}", file=sys.stderr)
        return None


def cmd_list(args: argparse.Namespace, settings, base_url: str) -> int:
    hooks = _hooks(settings)
    if hooks is None:
        return EXIT_USAGE
    for hook in hooks.hooks:
        line = hook.describe()
        line["url"] = f"{base_url}/api/v1/webhooks/{hook.name}"
        print(json.dumps(line))
    return EXIT_OK


def sample(hook, args: argparse.Namespace, now: float) -> tuple[dict[str, str], bytes]:
    """The signed test delivery for ``hook``: harmless by default (a challenge or a ping)."""
    from owaction.webhooks import VERIFIERS

    body = args.body.encode("utf-8") if args.body is not None else None
    module = VERIFIERS[hook.verifier]
    if hook.verifier == "twitch":
        kind = "notification" if args.event else "webhook_callback_verification"
        return module.sample(hook, now=now, message_type=kind, body=body)
    if hook.verifier == "github":
        return module.sample(hook, now=now, event=args.event or "ping", body=body)
    return module.sample(hook, now=now, body=body)


def cmd_test(args: argparse.Namespace, settings, base_url: str) -> int:
    import requests

    hooks = _hooks(settings)
    if hooks is None:
        return EXIT_USAGE
    hook = hooks.get(args.hook)
    if hook is None:
        print(f"owaction webhook: no hook named {args.hook!r} in {settings.webhooks_file}",
              file=sys.stderr)
        return EXIT_USAGE
    headers, body = sample(hook, args, time.time())
    url = f"{args.url or base_url}/api/v1/webhooks/{hook.name}"
    try:
        response = requests.post(url, data=body, headers=headers, timeout=30)
    except requests.RequestException as exc:
        print(f"owaction webhook: cannot reach {url}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{response.status_code} {response.text}")
    if response.headers.get("Content-Type", "").startswith("text/plain"):
        sent = json.loads(body).get("challenge")
        return EXIT_OK if response.status_code == 200 and response.text == sent else EXIT_FAILED
    return EXIT_OK if response.status_code in (200, 202) else EXIT_FAILED


def add_parser(sub, settings: Callable, base_url: Callable) -> None:
    """The ``webhook`` subcommands; ``settings()`` and ``base_url(settings)`` from the CLI."""
    p = sub.add_parser("webhook", help="signed inbound webhooks (WEBHOOKS_FILE)")
    wsub = p.add_subparsers(dest="webhook_command", required=True, metavar="SUBCOMMAND")
    w = wsub.add_parser("list", help="the hooks, their targets and URLs (never secrets)")
    w.set_defaults(func=lambda a: cmd_list(a, s := settings(), base_url(s)))
    w = wsub.add_parser("test", help="send a correctly signed test delivery to the running "
                        "module (Twitch: a challenge, GitHub: a ping, unless --event)")
    w.add_argument("hook")
    w.add_argument("--event", help="send this event instead (GitHub event name; for Twitch "
                   "any value sends a notification)")
    w.add_argument("--body", help="the JSON body to send")
    w.add_argument("--url", help="REST base URL (default: from settings)")
    w.set_defaults(func=lambda a: cmd_test(a, s := settings(), base_url(s)))
