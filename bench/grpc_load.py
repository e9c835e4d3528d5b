"""The gRPC load generator: N processes x M threads calling ``InvokeAction`` for a fixed time,
or a burst of N calls released at once. Prints one JSON object.

``python -m bench.grpc_load --target HOST:PORT --token T --procs 2 --threads 8 --duration 8``
``python -m bench.grpc_load --target HOST:PORT --token T --burst 64 --action hold-1000``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import threading
import time

import grpc

from owaction.rpc import openwhisk_action_pb2 as pb
from owaction.rpc import openwhisk_action_pb2_grpc as pb_grpc

CALL_TIMEOUT = 30.0


def _stub(target: str):
    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=20)
    return channel, pb_grpc.OpenWhiskActionServiceStub(channel)


def _request(action: str) -> pb.InvokeActionRequest:
    return pb.InvokeActionRequest(action_name=action, payload='{"name":"bench"}', blocking=True)


def _error_kind(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    return code.name if code is not None else type(exc).__name__


def _worker_process(args: dict, start_at: float, out) -> None:
    """One client process: its own channel (so its own HTTP/2 connection) and M threads."""
    channel, stub = _stub(args["target"])
    metadata = (("authorization", f"Bearer {args['token']}"),)
    request = _request(args["action"])
    measure_from = start_at + args["warmup"]
    stop_at = measure_from + args["duration"]
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    totals = {"total": 0}

    def loop() -> None:
        mine: list[float] = []
        my_errors: dict[str, int] = {}
        total = 0
        while (now := time.time()) < stop_at:
            try:
                reply = stub.InvokeAction(request, metadata=metadata, timeout=CALL_TIMEOUT)
                kind = None if reply.success else "success=false"
            except grpc.RpcError as exc:
                kind = _error_kind(exc)
            end = time.time()
            total += 1
            if now >= measure_from and end <= stop_at:
                mine.append((end - now) * 1000)
                if kind:
                    my_errors[kind] = my_errors.get(kind, 0) + 1
        with lock:
            latencies.extend(mine)
            totals["total"] += total
            for kind, count in my_errors.items():
                errors[kind] = errors.get(kind, 0) + count

    time.sleep(max(0.0, start_at - time.time()))
    threads = [threading.Thread(target=loop) for _ in range(args["threads"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    channel.close()
    out.put({"latencies": latencies, "errors": errors, "total": totals["total"]})


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def run_load(args: dict) -> dict:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    # Time for every process to start and connect before the common start instant.
    start_at = time.time() + 3.0
    procs = [context.Process(target=_worker_process, args=(args, start_at, out))
             for _ in range(args["procs"])]
    for proc in procs:
        proc.start()
    parts = [out.get(timeout=args["warmup"] + args["duration"] + CALL_TIMEOUT + 30)
             for _ in procs]
    for proc in procs:
        proc.join(10)
    latencies = sorted(x for part in parts for x in part["latencies"])
    errors: dict[str, int] = {}
    for part in parts:
        for kind, count in part["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    return {
        "requests": len(latencies),
        "total_requests": sum(part["total"] for part in parts),
        "errors": errors,
        "rps": len(latencies) / args["duration"],
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
    }


def run_burst(args: dict) -> dict:
    """``burst`` calls released at once from as many threads; wall time to the last reply."""
    channel, stub = _stub(args["target"])
    metadata = (("authorization", f"Bearer {args['token']}"),)
    request = _request(args["action"])
    count = args["burst"]
    barrier = threading.Barrier(count + 1)
    ends: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def call() -> None:
        barrier.wait()
        try:
            reply = stub.InvokeAction(request, metadata=metadata, timeout=CALL_TIMEOUT)
            kind = None if reply.success else "success=false"
        except grpc.RpcError as exc:
            kind = _error_kind(exc)
        with lock:
            ends.append(time.monotonic())
            if kind:
                errors[kind] = errors.get(kind, 0) + 1

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    barrier.wait()
    for thread in threads:
        thread.join()
    channel.close()
    return {"requests": count, "errors": errors, "wall_s": max(ends) - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--action", default="hello")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--burst", type=int, default=0)
    args = vars(parser.parse_args(argv))
    result = run_burst(args) if args["burst"] else run_load(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
