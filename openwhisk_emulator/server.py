"""Serving the emulator with gevent: options, keep-alive, dropped connections, TLS."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys

import gevent
from gevent.pywsgi import WSGIHandler, WSGIServer

from owaction.config import GUEST_AUTH_KEY

log = logging.getLogger("openwhisk_emulator")


class EmulatorHandler(WSGIHandler):
    """Closes idle keep-alive connections (like nginx's keepalive_timeout) and lets the fault
    layer drop a connection without an answer."""

    _dropped = False

    def handle(self):
        # pywsgi writes headers and body separately; with Nagle on, the second small write
        # waits for the client's delayed ACK (about 40 ms on Linux) on every keep-alive reply.
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not a TCP socket (a test's socketpair): nothing to tune
        return super().handle()

    def read_requestline(self):
        timeout = getattr(self.server, "keepalive_timeout", None)
        if timeout:
            self.socket.settimeout(timeout)
        try:
            return super().read_requestline()
        finally:
            if self.socket is not None:
                self.socket.settimeout(None)

    def get_environ(self):
        environ = super().get_environ()
        environ["owaction.drop_connection"] = self._drop
        return environ

    def _drop(self) -> None:
        self._dropped = True
        self.close_connection = True

    def process_result(self):
        if self._dropped:
            return
        super().process_result()

    def log_request(self):
        if not self._dropped:
            super().log_request()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="owaction emulator", description="A local OpenWhisk controller API for development."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3233)
    parser.add_argument("--auth", default=GUEST_AUTH_KEY, help="uuid:key of namespace guest")
    parser.add_argument("--seed", help="a directory holding a manifest, or a manifest file")
    parser.add_argument("--faults", action="store_true", help="enable /_emulator/faults")
    parser.add_argument("--max-blocking-wait-ms", type=int, default=60_000)
    parser.add_argument("--concurrent-limit", type=int, default=10_000)
    parser.add_argument("--per-minute-limit", type=int, default=600_000)
    parser.add_argument("--fires-per-minute", type=int, default=600_000)
    parser.add_argument("--keepalive-timeout", type=float, default=65.0,
                        help="close idle keep-alive connections after this many seconds")
    parser.add_argument("--certfile", help="serve HTTPS with this certificate")
    parser.add_argument("--keyfile", help="the certificate's private key")
    args = parser.parse_args(argv)
    user, sep, key = args.auth.partition(":")
    if not sep or not user or not key:
        parser.error("--auth must be uuid:key")
    for name in ("max_blocking_wait_ms", "concurrent_limit", "per_minute_limit",
                 "fires_per_minute"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if bool(args.certfile) != bool(args.keyfile):
        parser.error("--certfile and --keyfile go together")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until SIGTERM or SIGINT; the caller has patched with gevent.monkey."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from openwhisk_emulator.api import EmulatorConfig, create_app
    from openwhisk_emulator.faultinjection import FaultInjector
    from openwhisk_emulator.manifest import ManifestError, load_manifest
    from openwhisk_emulator.runtime import Runtime

    scheme = "https" if args.certfile else "http"
    config = EmulatorConfig(
        auth=args.auth,
        api_host=f"{scheme}://{args.host}:{args.port}",
        max_blocking_wait_ms=args.max_blocking_wait_ms,
        concurrent_limit=args.concurrent_limit,
        per_minute_limit=args.per_minute_limit,
        fires_per_minute=args.fires_per_minute,
    )
    runtime = Runtime()
    try:
        app = create_app(config, runtime=runtime)
        if args.seed:
            try:
                loaded = load_manifest(app.extensions["openwhisk_emulator"], args.seed)
            except ManifestError as exc:
                print(f"owaction emulator: cannot seed from {args.seed}: {exc}", file=sys.stderr)
                return 2
            log.info("seeded %s", ", ".join(f"{n} {c}" for c, n in loaded.items()))
        wsgi = FaultInjector(app) if args.faults else app
        ssl = {"certfile": args.certfile, "keyfile": args.keyfile} if args.certfile else {}
        server = WSGIServer((args.host, args.port), wsgi, handler_class=EmulatorHandler, **ssl)
        server.keepalive_timeout = args.keepalive_timeout
        gevent.signal_handler(signal.SIGTERM, server.stop)
        gevent.signal_handler(signal.SIGINT, server.stop)
        log.info("OpenWhisk emulator on %s (faults %s)", config.api_host,
                 "on" if args.faults else "off")
        server.serve_forever()
    finally:
        runtime.close()
    return 0
