"""The body limit and broken chunked framing, over raw sockets to a real gunicorn: the server's
own HTTP parser decides what the app sees, so no test client can stand in for it."""

from __future__ import annotations

import json
import socket

import pytest

from owaction.rest import BODY_OVERHEAD_BYTES
from tests.conftest import module_env
from tests.rest.conftest import rest_env
from tests.rest.helpers import make_token

PAYLOAD_LIMIT = 4096
BODY_LIMIT = PAYLOAD_LIMIT + BODY_OVERHEAD_BYTES
HELLO = b'{"action_name": "hello", "payload": {"name": "Ada"}}'


@pytest.fixture(scope="module")
def server(start_gunicorn, emulator, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("framing")
    return start_gunicorn(rest_env(module_env(tmp, emulator, f"sqlite://{tmp}/o.sqlite"),
                                   MAX_PAYLOAD_BYTES=str(PAYLOAD_LIMIT)))


def exchange(server, framing: str, body: bytes) -> tuple[int, dict]:
    """POST ``body`` to /actions/invoke with ``framing`` headers; the status and JSON reply."""
    head = (f"POST /api/v1/actions/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {make_token()}\r\nContent-Type: application/json\r\n"
            f"Connection: close\r\n{framing}\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        try:
            sock.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before taking the whole body
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    _, _, text = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(text)


def chunked(body: bytes, size: int = 8192) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
             for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def recorded(server) -> int:
    return server.api().get("/api/v1/stats").body["stats"]["total"]


CHUNKED = "Transfer-Encoding: chunked\r\n"


def test_a_chunked_body_is_served(server, emu):
    status, reply = exchange(server, CHUNKED, chunked(HELLO, size=7))
    assert status == 200, reply
    assert reply["result"] == {"message": "Hello Ada"}


@pytest.mark.parametrize("broken", [
    b"ZZ\r\n" + HELLO + b"\r\n0\r\n\r\n",  # a chunk size that is not hex
    b"%x\r\n%sXX0\r\n\r\n" % (len(HELLO), HELLO),  # a chunk without its CRLF
    b"-5\r\n" + HELLO + b"\r\n0\r\n\r\n",  # a negative size
], ids=["size-not-hex", "missing-terminator", "negative-size"])
def test_broken_chunked_framing_is_a_400_and_runs_nothing(server, emu, broken):
    before = recorded(server)
    status, reply = exchange(server, CHUNKED, broken)
    assert status == 400, reply
    assert reply["error"]["code"] == "invalid_request"
    assert "chunked" in reply["error"]["message"]
    assert recorded(server) == before


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_the_body_limit_holds_whatever_the_framing(server, emu, framing):
    """Valid JSON padded with whitespace past the body limit: werkzeug alone cut a chunked body
    at the limit and parsed the rest as a whole (accepted); it must be refused like the other."""
    before = recorded(server)
    padded = HELLO + b" " * (BODY_LIMIT - len(HELLO) + 1)
    sent = (chunked(padded) if framing == "chunked" else padded)
    headers = CHUNKED if framing == "chunked" else f"Content-Length: {len(padded)}\r\n"
    status, reply = exchange(server, headers, sent)
    assert status == 413, reply
    assert reply["error"]["code"] == "payload_too_large"
    assert recorded(server) == before

    exact = HELLO + b" " * (BODY_LIMIT - len(HELLO))
    sent = (chunked(exact) if framing == "chunked" else exact)
    headers = CHUNKED if framing == "chunked" else f"Content-Length: {len(exact)}\r\n"
    status, reply = exchange(server, headers, sent)
    assert status == 200, reply
    assert recorded(server) == before + 1


def raw_exchange(server, request: bytes) -> tuple[int, bytes, dict]:
    """Send ``request`` as it is; the status, the head and the JSON reply."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(request)
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass  # closed with part of an oversized request unread; the answer came first
    head, _, text = reply.partition(b"\r\n\r\n")
    return int(head.split(b"\r\n", 1)[0].split()[1]), head + b"\r\n", json.loads(text)


@pytest.mark.parametrize("request_bytes, status, code, needle", [
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n", 400, "invalid_request",
     "X-BAD"),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400, "invalid_request",
     "Bad Name"),
    (b"GARBAGE\r\n\r\n", 400, "invalid_request", "request line"),
    (b"POST /api/v1/actions/invoke HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", 400,
     "invalid_request", "CONTENT-LENGTH"),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long",
     "too large"),
    (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 120 + b"\r\n", 431,
     "request_header_fields_too_large", "headers"),
], ids=["control-character", "space-in-name", "request-line", "content-length", "long-line",
        "many-headers"])
def test_a_request_gunicorn_cannot_parse_gets_a_json_error(server, request_bytes, status, code,
                                                           needle):
    # gunicorn answers these itself, before Flask: an HTML page unless its worker says otherwise.
    got, head, reply = raw_exchange(server, request_bytes)
    assert (got, reply["error"]["code"]) == (status, code)
    assert needle in reply["error"]["message"]
    assert b"\r\nContent-Type: application/json\r\n" in head
    assert f"\r\nX-Request-ID: {reply['request_id']}\r\n".encode() in head
    assert server.api().get("/health").status == 200  # the worker goes on serving
