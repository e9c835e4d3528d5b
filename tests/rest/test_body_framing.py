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
