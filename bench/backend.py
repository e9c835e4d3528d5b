"""A canned OpenWhisk for benchmarks: answers invokes with a fixed activation record, fast.

``python -m bench.backend --port N [--workers K]``. It answers only what the module and the
bare forwarders call:

* ``GET /api/v1``: the info object;
* ``POST /api/v1/namespaces/{ns}/actions/{name}``: blocking, 200 with an activation record and
  the ``x-openwhisk-activation-id`` header; non-blocking, 202 with ``{"activationId"}``;
* ``GET /api/v1/namespaces/{ns}/activations/{id}``: that activation, so the worker can complete
  accepted executions.

A response is held ``hold_ms`` milliseconds, taken from the query (direct calls) or from an
action named ``hold-<ms>`` (calls through a module, which cannot pass extra query parameters).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIHandler, WSGIServer  # noqa: E402

ACTIONS_RE = re.compile(r"\A/api/v1/namespaces/([^/]+)/actions/(.+)\Z")
ACTIVATION_RE = re.compile(r"\A/api/v1/namespaces/([^/]+)/activations/([0-9a-f]{32})\Z")
HOLD_NAME_RE = re.compile(r"(?:\A|/)hold-(\d{1,6})\Z")
# The listen queue must take a burst of a thousand connections at once without SYN retries.
BACKLOG = 4096

INFO = json.dumps({
    "description": "OpenWhisk (bench backend)", "api_version": "1.0.0",
    "api_version_path": "v1", "build": "bench", "buildno": "0",
    "swagger_paths": {"ui": "/docs", "api-docs": "/api/v1/api-docs"},
}).encode()


def activation(activation_id: str, name: str, namespace: str = "guest") -> bytes:
    """An activation record shaped like OpenWhisk's extended JSON for a successful run."""
    end = int(time.time() * 1000)
    return json.dumps({
        "activationId": activation_id,
        "annotations": [
            {"key": "path", "value": f"{namespace}/{name}"},
            {"key": "waitTime", "value": 5},
            {"key": "kind", "value": "python:3"},
            {"key": "timeout", "value": False},
            {"key": "limits", "value": {"concurrency": 1, "logs": 10, "memory": 256,
                                        "timeout": 60000}},
        ],
        "duration": 3,
        "end": end,
        "logs": [],
        "name": name.rsplit("/", 1)[-1],
        "namespace": namespace,
        "publish": False,
        "response": {"result": {"greeting": "Hello, stranger!", "ok": True},
                     "size": 45, "status": "success", "success": True},
        "start": end - 3,
        "subject": namespace,
        "version": "0.0.1",
    }, separators=(",", ":")).encode()


def _reply(start_response, status: str, body: bytes, extra=()) -> list[bytes]:
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))), *extra])
    return [body]


def _hold_ms(name: str, query: dict[str, list[str]]) -> int:
    if "hold_ms" in query:
        return int(query["hold_ms"][0])
    match = HOLD_NAME_RE.search(name)
    return int(match.group(1)) if match else 0


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    method = environ["REQUEST_METHOD"]
    # Read the whole body so the keep-alive connection stays usable.
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    if method == "POST" and (match := ACTIONS_RE.match(path)):
        namespace, name = match.groups()
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            hold = _hold_ms(name, query)
        except ValueError:
            return _reply(start_response, "400 Bad Request", b'{"error":"bad hold_ms"}')
        if hold:
            gevent.sleep(hold / 1000)
        activation_id = uuid.uuid4().hex
        header = [("x-openwhisk-activation-id", activation_id)]
        if query.get("blocking", ["false"])[0] != "true":
            body = json.dumps({"activationId": activation_id}).encode()
            return _reply(start_response, "202 Accepted", body, header)
        ns = "guest" if namespace == "_" else namespace
        return _reply(start_response, "200 OK", activation(activation_id, name, ns), header)
    if method == "GET" and (match := ACTIVATION_RE.match(path)):
        namespace, activation_id = match.groups()
        ns = "guest" if namespace == "_" else namespace
        return _reply(start_response, "200 OK", activation(activation_id, "hello", ns))
    if method == "GET" and path.rstrip("/") == "/api/v1":
        return _reply(start_response, "200 OK", INFO)
    return _reply(start_response, "404 Not Found",
                  b'{"error":"The requested resource does not exist.","code":"bench"}')


def listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Several processes share the port so that the backend is never the bottleneck.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


class NoDelayHandler(WSGIHandler):
    """pywsgi writes headers and body separately; without TCP_NODELAY every keep-alive reply
    would wait ~40 ms for the client's delayed ACK, and the backend would be the bottleneck."""

    def handle(self):
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().handle()


def serve(port: int) -> None:
    server = WSGIServer(listener(port), app, log=None, error_log=sys.stderr,
                        handler_class=NoDelayHandler)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1,
                        help="processes sharing the port (SO_REUSEPORT)")
    args = parser.parse_args(argv)
    children = []
    for _ in range(args.workers - 1):
        pid = os.fork()
        if pid == 0:
            serve(args.port)
            os._exit(0)
        children.append(pid)
    try:
        serve(args.port)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
