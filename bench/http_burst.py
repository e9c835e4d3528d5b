"""A burst of blocking REST invocations released at once, each on its own connection, from
greenlets. Prints one JSON object: wall time to the last reply, statuses, errors.

``python -m bench.http_burst --url http://127.0.0.1:P/api/v1/actions/invoke --count 1000
--body '{"action_name": "hold-1000"}' [--token T]``
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

CALL_TIMEOUT = 60.0


def burst(url: str, body: bytes, headers: dict[str, str], count: int) -> dict:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    go = Event()
    ends: list[float] = []
    kinds: dict[str, int] = {}

    def call() -> None:
        go.wait()
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=CALL_TIMEOUT)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            kind = str(response.status)
        except (OSError, http.client.HTTPException) as exc:
            kind = type(exc).__name__
        finally:
            conn.close()
        ends.append(time.monotonic())
        kinds[kind] = kinds.get(kind, 0) + 1

    greenlets = [gevent.spawn(call) for _ in range(count)]
    gevent.sleep(0.2)  # every greenlet is parked on the event
    started = time.monotonic()
    go.set()
    gevent.joinall(greenlets)
    errors = {kind: n for kind, n in kinds.items() if kind not in ("200", "202")}
    return {"requests": count, "statuses": kinds, "errors": errors,
            "wall_s": max(ends) - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", default="{}")
    parser.add_argument("--token", default="")
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args(argv)
    headers = {"Content-Type": "application/json"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    print(json.dumps(burst(args.url, args.body.encode(), headers, args.count)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
