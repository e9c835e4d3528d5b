"""D: the bare gRPC forwarder: ``grpc.server(ThreadPoolExecutor(max_workers))`` with owaction's
proto, forwarding through one ``requests.Session``, without auth, database or logging.

``python -m bench.bare_grpc --port P --backend URL --workers N``.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc

from bench.bare_rest import GUEST, pooled_session
from owaction.rpc import openwhisk_action_pb2 as pb
from owaction.rpc import openwhisk_action_pb2_grpc as pb_grpc


class BareServicer(pb_grpc.OpenWhiskActionServiceServicer):
    def __init__(self, backend_url: str, pool_size: int):
        self.backend_url = backend_url
        self.session = pooled_session(pool_size)

    def InvokeAction(self, request, context):  # noqa: N802 - the proto's name
        response = self.session.post(
            f"{self.backend_url}/api/v1/namespaces/guest/actions/{request.action_name}",
            params={"blocking": "true", "result": "false", "timeout": "60000"},
            json=json.loads(request.payload or "{}"), auth=GUEST, timeout=(5, 70),
        )
        record = response.json()
        return pb.InvokeActionResponse(
            success=record["response"]["success"], activation_id=record["activationId"],
            result=json.dumps(record["response"]["result"]), duration=record.get("duration", 0),
            start_time=record.get("start", 0), end_time=record.get("end", 0),
            status=record["response"]["status"],
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--pool-size", type=int, default=200)
    args = parser.parse_args(argv)
    server = grpc.server(ThreadPoolExecutor(max_workers=args.workers))
    pb_grpc.add_OpenWhiskActionServiceServicer_to_server(
        BareServicer(args.backend, args.pool_size), server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.stop(2).wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
