"""The REST door's gunicorn worker: gevent's, with gunicorn's own refusals in JSON.

gunicorn refuses a request it cannot parse (a control character in a header, a malformed request
line, a request line or headers over the limits) before Flask sees it, and answers with an HTML
page. Callers of this API read JSON errors, so the refusal keeps gunicorn's status, reason and
logging and leaves with the body every other error has (``owaction.rest.errors``).
"""

from __future__ import annotations

import json

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

from owaction.ids import new_id
from owaction.rest.api import REQUEST_ID_HEADER
from owaction.rest.errors import http_error_body

# gunicorn's reason quotes the caller's request line or header name: enough to find the fault.
_MESSAGE_CHARS = 200


class _Kept:
    """Stands in for the client socket while gunicorn writes its error page, and keeps it."""

    def __init__(self, sock):
        self._sock = sock
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0  # "non-blocking already": gunicorn then just calls sendall

    def sendall(self, data: bytes) -> None:
        self.data += data

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _status(page: bytes) -> tuple[int, str] | None:
    """``(400, "Bad Request")`` from the first line of gunicorn's response."""
    parts = page.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2].decode("latin-1")


def json_error(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP response for a request gunicorn refused; the connection closes after."""
    message = f"{reason.lower()}: {detail}" if detail else reason.lower()
    if len(message) > _MESSAGE_CHARS:
        message = message[:_MESSAGE_CHARS - 3] + "..."
    # The request was not read far enough to trust a caller's id: a new one.
    rid = new_id()
    body = json.dumps(http_error_body(status, reason, message, rid))
    return (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{REQUEST_ID_HEADER}: {rid}\r\n\r\n{body}").encode("latin-1")


class JSONErrorsGeventWorker(GeventWorker):
    """gunicorn's gevent worker whose own error answers are JSON (see the module docstring)."""

    def handle_error(self, req, client, addr, exc):
        kept = _Kept(client)
        super().handle_error(req, kept, addr, exc)  # gunicorn decides the status and logs
        found = _status(kept.data)
        if found is None:
            reply = kept.data  # not a response line we know: send gunicorn's own as it was
        else:
            reply = json_error(*found, str(exc))
        try:
            util.write_nonblock(client, reply)
        except Exception:  # noqa: BLE001 - the caller went away: nothing left to tell it
            self.log.debug("Failed to send error message.")
