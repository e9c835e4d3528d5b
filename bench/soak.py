"""``make soak``: about two minutes of mixed REST and gRPC load against the OpenWhisk emulator,
with faults injected and one emulator restart, through the whole module (gunicorn, the gRPC
process and ``owaction worker``).

It checks the two promises of issue 9 from the outside: every request the module accepted (its
reply carries an execution id) has exactly one recorded execution, and once the worker has had
time, no execution is left in a non-final state. Exit status 0 when both hold.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import requests

from bench.harness import PYTHON, ROOT, Server, free_port
from bench.run import bench_database, log

FINAL = ("succeeded", "failed", "error", "timeout", "unknown")
CALL_TIMEOUT = 30.0


class Outcomes:
    """What every request got back, by kind, and the execution ids the module acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.kinds: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.acknowledged: dict[str, str] = {}  # request id -> execution id
        self.request_ids: set[str] = set()

    def record(self, door: str, request_id: str, kind: str, execution_id: str | None) -> None:
        with self.lock:
            self.sent[door] += 1
            self.kinds[f"{door} {kind}"] += 1
            self.request_ids.add(request_id)
            if execution_id:
                self.acknowledged[request_id] = execution_id


def _operation(rng: random.Random) -> tuple[str, dict, bool]:
    """An action, its payload and whether the call blocks: mostly quick successes."""
    roll = rng.random()
    if roll < 0.55:
        return "hello", {"name": "soak"}, True
    if roll < 0.70:
        return "echo", {"n": rng.randint(0, 1000)}, True
    if roll < 0.80:
        return "fail", {}, True
    if roll < 0.88:
        return "sleep", {"ms": rng.choice((50, 200, 800))}, True
    return "hello", {"name": "async"}, False


def rest_client(base: str, token: str, stop: threading.Event, out: Outcomes, seed: int) -> None:
    rng = random.Random(seed)
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    while not stop.is_set():
        action, payload, blocking = _operation(rng)
        request_id = f"soak-{uuid.uuid4().hex}"
        path = "/api/v1/actions/invoke" if blocking else "/api/v1/actions/invoke-async"
        try:
            reply = session.post(base + path, json={"action_name": action, "payload": payload},
                                 headers={**headers, "X-Request-ID": request_id},
                                 timeout=CALL_TIMEOUT)
            try:
                body = reply.json()
            except ValueError:
                body = {}
            code = (body.get("error") or {}).get("code") if isinstance(body, dict) else None
            kind = f"{reply.status_code}" + (f" {code}" if code else "")
            out.record("rest", request_id, kind, body.get("execution_id"))
        except requests.RequestException as exc:
            out.record("rest", request_id, type(exc).__name__, None)


def grpc_client(target: str, token: str, stop: threading.Event, out: Outcomes, seed: int) -> None:
    import grpc

    from owaction.rpc import openwhisk_action_pb2 as pb
    from owaction.rpc import openwhisk_action_pb2_grpc as pb_grpc

    rng = random.Random(seed)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.OpenWhiskActionServiceStub(channel)
        while not stop.is_set():
            action, payload, blocking = _operation(rng)
            request_id = f"soak-{uuid.uuid4().hex}"
            metadata = (("authorization", f"Bearer {token}"), ("x-request-id", request_id))
            try:
                if blocking:
                    reply = stub.InvokeAction(
                        pb.InvokeActionRequest(action_name=action, payload=json.dumps(payload),
                                               blocking=True),
                        metadata=metadata, timeout=CALL_TIMEOUT)
                    kind = f"OK {reply.outcome}"
                else:
                    reply = stub.InvokeActionAsync(
                        pb.InvokeActionAsyncRequest(action_name=action,
                                                    payload=json.dumps(payload)),
                        metadata=metadata, timeout=CALL_TIMEOUT)
                    kind = "OK accepted"
                out.record("grpc", request_id, kind, reply.execution_id)
            except grpc.RpcError as exc:
                trailing = dict(exc.trailing_metadata() or ())
                code = trailing.get("error-code")
                kind = exc.code().name + (f" {code}" if code else "")
                out.record("grpc", request_id, kind, trailing.get("execution-id"))


class Emulator:
    """The emulator on a fixed port, so that a restart comes back where the module looks."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.starts = 0
        self.server: Server | None = None

    def start(self) -> None:
        self.starts += 1
        self.server = Server(
            f"emulator-{self.starts}",
            [PYTHON, "-m", "openwhisk_emulator", "--port", str(self.port), "--faults",
             "--seed", str(ROOT / "openwhisk_emulator" / "examples")],
            log_dir=self.log_dir, port=self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def fault(self, **spec) -> None:
        try:
            requests.post(f"{self.url}/_emulator/faults", json=spec, timeout=5).raise_for_status()
            log(f"fault injected: {spec}")
        except requests.RequestException as exc:
            log(f"could not inject {spec}: {exc}")


def _schedule(emulator: Emulator, duration: float, stop: threading.Event) -> None:
    """Faults at fixed fractions of the run, and one restart in the middle."""
    invoke = r"/actions/"
    steps = [
        (0.10, lambda: emulator.fault(method="POST", path=invoke, status=500, times=15)),
        (0.20, lambda: emulator.fault(method="POST", path=invoke, drop=True, times=10)),
        (0.30, lambda: emulator.fault(method="POST", path=invoke, delay_ms=2000, times=20)),
        (0.40, lambda: emulator.fault(method="POST", path=invoke, status=429, times=10,
                                      headers={"Retry-After": "1"})),
        (0.50, lambda: _restart(emulator)),
        (0.70, lambda: emulator.fault(method="POST", path=invoke, status=503, times=10)),
        (0.80, lambda: emulator.fault(method="GET", path=r"/activations/", status=500,
                                      times=10)),
    ]
    started = time.monotonic()
    for fraction, step in steps:
        if stop.wait(max(0.0, started + fraction * duration - time.monotonic())):
            return
        step()


def _restart(emulator: Emulator) -> None:
    log("restarting the emulator")
    emulator.stop()
    time.sleep(2)
    emulator.start()
    log("emulator back")


def executions(database_url: str, pg_name: str | None, admin) -> list[tuple[str, str, str]]:
    """(execution_id, request_id, status) of every recorded execution."""
    query = "SELECT execution_id, request_id, status FROM openwhisk_action_executions"
    if pg_name:
        import psycopg2

        dsn = admin.get_dsn_parameters()
        conn = psycopg2.connect(host=dsn["host"], port=dsn["port"], user=dsn["user"],
                                dbname=pg_name, connect_timeout=3)
    else:
        conn = sqlite3.connect(database_url[len("sqlite://"):], timeout=10)
    try:
        cur = conn.cursor()
        cur.execute(query)
        return list(cur.fetchall())
    finally:
        conn.close()


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="owaction-soak-"))
    logs = work / "logs"
    logs.mkdir()
    servers: list[Server] = []
    emulator = Emulator(logs)
    with bench_database() as (pg_url, pg_name, admin):
        database_url = pg_url or f"sqlite://{work}/soak.sqlite"
        rest_port, grpc_port = free_port(), free_port()
        env = {
            "OPENWHISK_API_HOST": emulator.url,
            "MODULE_SECRET_KEY": "s" + secrets.token_urlsafe(64),
            "ALLOWED_SERVICES": "soak",
            "DATABASE_URL": database_url,
            "DATA_DIR": str(work / "data"),
            "LOG_DIR": str(work / "data" / "log"),
            "REST_PORT": str(rest_port),
            "GRPC_PORT": str(grpc_port),
            "GRPC_METRICS_PORT": "0",
            "WORKER_METRICS_PORT": "0",
            "WORKER_POLL_INTERVAL": "0.5",
            # Short enough that the breaker closes again and lost activations end within the
            # run's bound; the load itself must never be rate limited.
            "BREAKER_RESET_TIMEOUT": "2",
            "ACCEPTED_MAX_AGE": str(args.settle),
            "PENDING_GRACE": "10",
            "RATE_LIMIT_CALLER": "100000000/minute",
            "RATE_LIMIT_ACTION": "100000000/minute",
        }
        from owaction.auth import ALL_PERMISSIONS, TokenVerifier
        from owaction.config import load_settings

        token = TokenVerifier(load_settings(env)).issue("soak", ALL_PERMISSIONS,
                                                        ttl=3600)[0]
        out = Outcomes()
        stop = threading.Event()
        try:
            emulator.start()
            servers.append(Server("rest", [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                           "wsgi:app"], env=env, log_dir=logs, port=rest_port))
            servers.append(Server("grpc", [PYTHON, "grpc_server.py"], env=env, log_dir=logs,
                                  port=grpc_port))
            servers.append(Server("worker", [PYTHON, "-m", "owaction", "worker"], env=env,
                                  log_dir=logs))
            base = f"http://127.0.0.1:{rest_port}"
            _wait_health(base)
            database = "PostgreSQL" if pg_url else "SQLite"
            log(f"soak for {args.duration:g} s: {args.rest_clients} REST and "
                f"{args.grpc_clients} gRPC clients, database {database}")
            threads = [threading.Thread(target=rest_client, args=(base, token, stop, out, i))
                       for i in range(args.rest_clients)]
            threads += [threading.Thread(target=grpc_client,
                                         args=(f"127.0.0.1:{grpc_port}", token, stop, out,
                                               100 + i))
                        for i in range(args.grpc_clients)]
            threads.append(threading.Thread(target=_schedule,
                                            args=(emulator, args.duration, stop)))
            for thread in threads:
                thread.start()
            stop.wait(args.duration)
            stop.set()
            for thread in threads:
                thread.join(CALL_TIMEOUT + 10)
            log("load stopped; waiting for the worker to finish accepted executions")
            rows = _settle(database_url, pg_name, admin, args.settle + 30)
        finally:
            stop.set()
            for server in reversed(servers):
                server.stop()
            emulator.stop()
        return report(out, rows, servers, work)


def _wait_health(base: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base}/health did not answer 200 within {timeout} s")


def _settle(database_url, pg_name, admin, timeout: float) -> list[tuple[str, str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = executions(database_url, pg_name, admin)
        open_rows = [r for r in rows if r[2] not in FINAL]
        if not open_rows or time.monotonic() > deadline:
            return rows
        time.sleep(1)


def report(out: Outcomes, rows, servers: list[Server], work: Path) -> int:
    by_request = {}
    for execution_id, request_id, status in rows:
        by_request.setdefault(request_id, []).append((execution_id, status))
    ours = {rid: recs for rid, recs in by_request.items() if rid in out.request_ids}
    recorded = sum(len(recs) for recs in ours.values())
    accepted = len(out.acknowledged)
    lost = [rid for rid, eid in out.acknowledged.items()
            if eid not in {e for e, _ in ours.get(rid, [])}]
    doubled = [rid for rid, recs in ours.items() if len(recs) > 1]
    unacknowledged = sum(1 for rid in ours if rid not in out.acknowledged)
    stuck = Counter(status for _, _, status in rows if status not in FINAL)
    statuses = Counter(status for _, _, status in rows)
    tracebacks = sum(server.tail(100000).count("Traceback") for server in servers)
    lines = ["", "soak results",
             f"  requests sent: {sum(out.sent.values())} "
             f"({', '.join(f'{k} {v}' for k, v in sorted(out.sent.items()))})",
             "  replies by kind:"]
    lines += [f"    {kind}: {count}" for kind, count in sorted(out.kinds.items())]
    lines += [
        f"  requests accepted (reply carries an execution id): {accepted}",
        f"  executions recorded for the soak's requests: {recorded}",
        f"  accepted but not recorded: {len(lost)}; recorded twice: {len(doubled)}",
    ]
    lines.append(f"  recorded, but the reply carried no execution id: {unacknowledged}")
    lines += [
        f"  recorded executions by status: {dict(sorted(statuses.items()))}",
        f"  executions stuck in a non-final state: {sum(stuck.values())} {dict(stuck)}",
        f"  tracebacks in the module's logs: {tracebacks}",
    ]
    ok = recorded == accepted and not lost and not doubled and not stuck
    lines.append(f"  verdict: {'PASS' if ok else 'FAIL'} (recorded == accepted, none stuck)")
    if not ok:
        lines.append(f"  logs kept in {work / 'logs'}")
    print("\n".join(lines))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="owaction soak with faults (issue 9)")
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--rest-clients", type=int, default=6)
    parser.add_argument("--grpc-clients", type=int, default=4)
    parser.add_argument("--settle", type=int, default=20,
                        help="ACCEPTED_MAX_AGE: seconds before an activation the restarted "
                             "emulator forgot is marked unknown")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
