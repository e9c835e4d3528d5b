"""``make bench``: owaction against a canned OpenWhisk and bare forwarders, side by side.

A  the backend, called directly (the ceiling)
B  a bare Flask forwarder under gunicorn-gevent (bench.bare_rest)
C  owaction REST, on SQLite and on PostgreSQL
D  a bare grpcio forwarder (bench.bare_grpc)
E  owaction gRPC, on SQLite and on PostgreSQL

For each: throughput, p50, p99 and server CPU per request at the same concurrency levels, with the
same load generators (wrk for HTTP, bench.grpc_load for gRPC); then a burst of one-second
invocations all in flight at once; then the RSS after start-up and after 10,000 requests. The
machine is shared and noisy, so the ratios C/B and E/D, measured in the same run, are what count.
Prints a table with the issue's targets (met / missed) and writes bench/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.harness import (
    PYTHON,
    ROOT,
    Sampler,
    Server,
    free_port,
    nginx_binary,
    start_gevent_backend,
    start_nginx,
)

RESULTS = ROOT / "bench" / "results.json"
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
HOLD_ACTION = "hold-1000"
LEAK_REQUESTS = 10_000
# Targets from issue 8.
TARGET_RATIO = 0.75
TARGET_BURST_FACTOR = 1.25
TARGET_IDLE_RSS_MB = 80.0
TARGET_RSS_GROWTH = 0.10

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
{auth}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- tools -----------------------------------------------------------------------------------


def ensure_tool(binary: str, package: str) -> str | None:
    """The tool's path; installs the Debian package when running as root and it is missing."""
    found = shutil.which(binary) or (nginx_binary() if binary == "nginx" else None)
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"{binary} is missing: apt-get install -y {package}")
        for cmd in (["apt-get", "install", "-y", "-q", package],
                    ["sh", "-c", f"apt-get update -q && apt-get install -y -q {package}"]):
            if subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              check=False).returncode == 0:
                break
        found = shutil.which(binary) or (nginx_binary() if binary == "nginx" else None)
    return found


# --- PostgreSQL --------------------------------------------------------------------------------


@contextmanager
def bench_database():
    """A fresh PostgreSQL database and an admin connection, dropped at the end; None if no
    PostgreSQL answers."""
    try:
        import psycopg2

        admin = psycopg2.connect(PG_ADMIN_URL, connect_timeout=3)
    except Exception as exc:  # any failure: run without the PostgreSQL variants
        log(f"no PostgreSQL at {PG_ADMIN_URL} ({exc}); PostgreSQL variants are skipped")
        yield None, None, None
        return
    from urllib.parse import urlsplit, urlunsplit

    admin.autocommit = True
    name = f"owaction_bench_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(PG_ADMIN_URL)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    try:
        yield url, name, admin
    finally:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def count_rows(admin, database: str) -> dict[str, int]:
    """Executions recorded in the bench database, by status."""
    import psycopg2

    dsn = admin.get_dsn_parameters()
    conn = psycopg2.connect(host=dsn["host"], port=dsn["port"], user=dsn["user"],
                            dbname=database, connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status, count(*) FROM openwhisk_action_executions "
                        "GROUP BY status")
            return dict(cur.fetchall())
    finally:
        conn.close()


# --- load ----------------------------------------------------------------------------------------


@dataclass
class Measure:
    target: str
    level: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    cpu_ms_per_request: float | None
    requests: int
    errors: dict[str, int] = field(default_factory=dict)


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path):
        self.args = args
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.wrk_path = shutil.which("wrk")
        self.results: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
            "duration_s": args.duration, "levels": args.levels,
            "throughput": [], "burst": {}, "memory": {},
        }
        self.secret = "b" + secrets.token_urlsafe(64)

    # --- environment of the module's processes

    def module_env(self, backend_url: str, database_url: str, name: str) -> dict[str, str]:
        data = self.work / name
        return {
            "OPENWHISK_API_HOST": backend_url,
            "MODULE_SECRET_KEY": self.secret,
            "ALLOWED_SERVICES": "bench",
            "DATABASE_URL": database_url,
            "DATA_DIR": str(data),
            "LOG_DIR": str(data / "log"),
            "WEB_WORKERS": str(self.args.web_workers),
            "GRPC_MAX_WORKERS": str(self.args.grpc_workers),
            "GRPC_METRICS_PORT": "0",
            "WORKER_METRICS_PORT": "0",
            "WORKER_POLL_INTERVAL": "0.5",
            # The benchmark measures forwarding; the limits' checks still run on every call.
            "RATE_LIMIT_CALLER": "100000000/minute",
            "RATE_LIMIT_ACTION": "100000000/minute",
        }

    def token(self, env: dict[str, str]) -> str:
        from owaction.auth import PERMISSION_EXECUTE, PERMISSION_READ, TokenVerifier
        from owaction.config import load_settings

        settings = load_settings(env)
        return TokenVerifier(settings).issue("bench", (PERMISSION_EXECUTE, PERMISSION_READ),
                                             ttl=3 * 3600)[0]

    # --- servers

    def start_rest(self, name: str, env: dict[str, str]) -> Server:
        port = free_port()
        server = Server(name, [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                        env={**env, "REST_PORT": str(port)}, log_dir=self.logs, port=port)
        self._wait_http(f"http://127.0.0.1:{port}/health", server)
        return server

    def start_bare_rest(self, backend_url: str) -> Server:
        port = free_port()
        # An explicit, empty config: gunicorn would otherwise read owaction's gunicorn.conf.py.
        config = self.work / "bare_gunicorn.conf.py"
        config.write_text("")
        server = Server("B-bare-rest", [
            PYTHON, "-m", "gunicorn", "-c", str(config), "-k", "gevent",
            "-w", str(self.args.web_workers),
            "--worker-connections", "1000", "-b", f"127.0.0.1:{port}", "--backlog", "2048",
            "bench.bare_rest:app",
        ], env={"BENCH_BACKEND_URL": backend_url, "BENCH_POOL_SIZE": "200"},
            log_dir=self.logs, port=port)
        self._wait_http(f"http://127.0.0.1:{port}/health", server)
        return server

    def start_grpc(self, name: str, env: dict[str, str]) -> Server:
        port = free_port()
        return Server(name, [PYTHON, "grpc_server.py"], env={**env, "GRPC_PORT": str(port)},
                      log_dir=self.logs, port=port)

    def start_bare_grpc(self, backend_url: str) -> Server:
        port = free_port()
        return Server("D-bare-grpc", [PYTHON, "-m", "bench.bare_grpc", "--port", str(port),
                                      "--backend", backend_url,
                                      "--workers", str(self.args.grpc_workers)],
                      log_dir=self.logs, port=port)

    def start_worker(self, env: dict[str, str]) -> Server:
        return Server("owaction-worker", [PYTHON, "-m", "owaction", "worker"], env=env,
                      log_dir=self.logs)

    @staticmethod
    def _wait_http(url: str, server: Server, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=2).status_code < 500:
                    return
            except requests.RequestException:
                pass
            if server.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{server.name} never answered {url}:\n{server.tail()}")

    # --- load generators

    def wrk(self, url: str, *, connections: int, duration: float, body: str,
            token: str | None) -> dict[str, Any]:
        script = self.work / f"wrk-{uuid.uuid4().hex[:6]}.lua"
        auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
        script.write_text(WRK_SCRIPT.format(body=body, auth=auth))
        threads = max(1, min(2, connections))
        proc = subprocess.run(
            [self.wrk_path, f"-t{threads}", f"-c{connections}",
             f"-d{max(1, round(duration))}s", "--timeout", "30s", "-s", str(script), url],
            capture_output=True, text=True, timeout=duration + 60, check=False,
        )
        for line in proc.stdout.splitlines():
            if line.startswith("BENCH "):
                return json.loads(line[len("BENCH "):])
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}{proc.stderr}")

    def grpc_load(self, target: str, token: str, *, level: int, duration: float,
                  warmup: float = 1.0, action: str = "hello") -> dict[str, Any]:
        procs = max(1, min(4, level // 8))
        threads = max(1, level // procs)
        out = subprocess.run(
            [PYTHON, "-m", "bench.grpc_load", "--target", target, "--token", token,
             "--action", action, "--procs", str(procs), "--threads", str(threads),
             "--duration", str(duration), "--warmup", str(warmup)],
            capture_output=True, text=True, timeout=duration + warmup + 120, check=False,
            cwd=ROOT,
        )
        if out.returncode != 0:
            raise RuntimeError(f"grpc_load failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    # --- phases

    def http_phase(self, name: str, server: Server, url: str, token: str | None,
                   body: str) -> list[Measure]:
        out = []
        # Warm-up: connections, pools and lazy imports are not part of the measure.
        self.wrk(url, connections=self.args.levels[-1], duration=1, body=body, token=token)
        for level in self.args.levels:
            cpu_before = server.cpu_seconds()
            res = self.wrk(url, connections=level, duration=self.args.duration, body=body,
                           token=token)
            cpu = server.cpu_seconds() - cpu_before
            n = res["requests"]
            errors = {k: res[k] for k in ("connect", "read", "write", "status", "timeout")
                      if res[k]}
            m = Measure(name, level, n / (res["duration_us"] / 1e6), res["p50_us"] / 1000,
                        res["p99_us"] / 1000, cpu * 1000 / n if n else None, n, errors)
            self.served[name] = self.served.get(name, 0) + n
            log(f"{name} c={level}: {m.rps:.0f} req/s p50 {m.p50_ms:.1f} ms "
                f"p99 {m.p99_ms:.1f} ms cpu {m.cpu_ms_per_request or 0:.2f} ms/req {errors}")
            out.append(m)
        return out

    def grpc_phase(self, name: str, server: Server, target: str, token: str) -> list[Measure]:
        out = []
        for level in self.args.levels:
            cpu_before = server.cpu_seconds()
            res = self.grpc_load(target, token, level=level, duration=self.args.duration)
            cpu = server.cpu_seconds() - cpu_before
            total = res["total_requests"]
            m = Measure(name, level, res["rps"], res["p50_ms"], res["p99_ms"],
                        cpu * 1000 / total if total else None, res["requests"], res["errors"])
            self.served[name] = self.served.get(name, 0) + total
            log(f"{name} c={level}: {m.rps:.0f} req/s p50 {m.p50_ms or 0:.1f} ms "
                f"p99 {m.p99_ms or 0:.1f} ms cpu {m.cpu_ms_per_request or 0:.2f} ms/req "
                f"{res['errors']}")
            out.append(m)
        return out

    def http_burst(self, name: str, server: Server, url: str, body: str, token: str | None,
                   *, pg=None) -> dict[str, Any]:
        admin, database = pg or (None, None)
        with Sampler(server, pg_admin=admin, database=database) as sampler:
            out = subprocess.run(
                [PYTHON, "-m", "bench.http_burst", "--url", url, "--body", body,
                 "--token", token or "", "--count", str(self.args.burst)],
                capture_output=True, text=True, timeout=180, check=False, cwd=ROOT,
            )
        if out.returncode != 0:
            raise RuntimeError(f"http_burst failed: {out.stderr[-2000:]}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        self.served[name] = self.served.get(name, 0) + self.args.burst
        return self._burst_result(name, res, sampler, admin is not None)

    def grpc_burst(self, name: str, server: Server, target: str, token: str,
                   *, pg=None) -> dict[str, Any]:
        admin, database = pg or (None, None)
        with Sampler(server, pg_admin=admin, database=database) as sampler:
            out = subprocess.run(
                [PYTHON, "-m", "bench.grpc_load", "--target", target, "--token", token,
                 "--action", HOLD_ACTION, "--burst", str(self.args.grpc_workers)],
                capture_output=True, text=True, timeout=180, check=False, cwd=ROOT,
            )
        if out.returncode != 0:
            raise RuntimeError(f"grpc burst failed: {out.stderr[-2000:]}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        self.served[name] = self.served.get(name, 0) + self.args.grpc_workers
        return self._burst_result(name, res, sampler, admin is not None)

    def _burst_result(self, name, res, sampler: Sampler, with_db: bool) -> dict[str, Any]:
        result = {
            "requests": res["requests"], "wall_s": res["wall_s"], "errors": res["errors"],
            "peak_rss_mb_total": round(sampler.peak_total_rss_mb, 1),
            "peak_rss_mb_max_process": round(max(sampler.peak_rss_mb.values(), default=0), 1),
        }
        if with_db:
            result["peak_db_connections_total"] = sampler.peak_db_total
            result["peak_db_connections_per_process"] = max(
                sampler.peak_db_per_process.values(), default=0)
        log(f"burst {name}: {result}")
        return result

    def top_up(self, name: str, send) -> None:
        """Bring the requests a server has handled up to LEAK_REQUESTS."""
        while self.served.get(name, 0) < LEAK_REQUESTS:
            self.served[name] = self.served.get(name, 0) + send()


def rss_of(server: Server, *, children_only: bool) -> float:
    values = server.rss_mb()
    if children_only:
        values.pop(server.pid, None)
    return round(max(values.values(), default=0.0), 1)


# --- the run -------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    bench_wrk = ensure_tool("wrk", "wrk")
    if not bench_wrk:
        print("bench: wrk is required and missing. Install it (Debian/Ubuntu: "
              "sudo apt-get install -y wrk) and run make bench again.", file=sys.stderr)
        return 2
    use_nginx = not args.no_nginx and ensure_tool("nginx", "nginx")
    if not use_nginx:
        log("nginx is missing: the gevent backend (bench.backend) serves every phase")
    work = Path(tempfile.mkdtemp(prefix="owaction-bench-"))
    log(f"work directory {work}; {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    bench = Bench(args, work)
    bench.served = {}
    res = bench.results
    res["backend"] = "nginx" if use_nginx else "gevent"
    body = '{"action_name": "hello", "payload": {"name": "bench"}}'
    hold_body = json.dumps({"action_name": HOLD_ACTION, "payload": {}})
    try:
        with ExitStack() as stack, bench_database() as (pg_url, pg_name, pg_admin):
            hold = start_gevent_backend(bench.logs, workers=2)
            stack.callback(hold.stop)
            if use_nginx:
                backend = start_nginx(work, bench.logs, hold_port=hold.port)
            else:
                backend = hold
            stack.callback(backend.stop)
            backend_url = f"http://127.0.0.1:{backend.port}"
            invoke_path = "/api/v1/namespaces/guest/actions"

            # A: the ceiling, and the burst straight to the backend.
            a = bench.http_phase("A", backend,
                                 f"{backend_url}{invoke_path}/hello?blocking=true&result=false",
                                 None, '{"name": "bench"}')
            res["throughput"] += [m.__dict__ for m in a]
            res["burst"]["A"] = bench.http_burst(
                "A", backend, f"{backend_url}{invoke_path}/{HOLD_ACTION}?blocking=true", "{}",
                None)

            # B: the bare REST forwarder.
            b_server = bench.start_bare_rest(backend_url)
            try:
                url = f"http://127.0.0.1:{b_server.port}/api/v1/actions/invoke"
                res["throughput"] += [m.__dict__ for m in
                                      bench.http_phase("B", b_server, url, None, body)]
                res["burst"]["B"] = bench.http_burst("B", b_server, url, hold_body, None)
            finally:
                b_server.stop()

            databases = [("sqlite", f"sqlite://{work}/rest.sqlite")]
            if pg_url:
                databases.append(("postgres", pg_url))
            worker = None
            for db_name, db_url in databases:
                name = f"C-{db_name}"
                env = bench.module_env(backend_url, db_url, name)
                token = bench.token(env)
                server = bench.start_rest(name, env)
                idle = rss_of(server, children_only=True)
                if db_name == "postgres":
                    worker = bench.start_worker(env)
                    stack.callback(worker.stop)
                    time.sleep(1.5)
                    res["memory"]["worker_idle_mb"] = rss_of(worker, children_only=False)
                try:
                    url = f"http://127.0.0.1:{server.port}/api/v1/actions/invoke"
                    res["throughput"] += [m.__dict__ for m in
                                          bench.http_phase(name, server, url, token, body)]
                    pg = (pg_admin, pg_name) if db_name == "postgres" else None
                    res["burst"][name] = bench.http_burst(name, server, url, hold_body, token,
                                                          pg=pg)
                    # After the burst: the heap has seen its peak concurrency once.
                    warm = rss_of(server, children_only=True)
                    bench.top_up(name, lambda url=url, token=token: bench.wrk(
                        url, connections=16, duration=3, body=body, token=token)["requests"])
                    res["memory"][name] = {
                        "rest_worker_idle_mb": idle,
                        "rest_worker_warm_mb": warm,
                        "rest_worker_after_mb": rss_of(server, children_only=True),
                        "requests": bench.served[name],
                    }
                    if db_name == "postgres":
                        _async_for_worker(bench, server, token, res)
                finally:
                    server.stop()

            # D: the bare gRPC forwarder; E: owaction gRPC.
            d_server = bench.start_bare_grpc(backend_url)
            try:
                target = f"127.0.0.1:{d_server.port}"
                res["throughput"] += [m.__dict__ for m in
                                      bench.grpc_phase("D", d_server, target, "none")]
                res["burst"]["D"] = bench.grpc_burst("D", d_server, target, "none")
            finally:
                d_server.stop()
            for db_name, db_url in databases:
                name = f"E-{db_name}"
                env = bench.module_env(backend_url, db_url, name)
                token = bench.token(env)
                server = bench.start_grpc(name, env)
                time.sleep(0.5)
                idle = rss_of(server, children_only=False)
                try:
                    target = f"127.0.0.1:{server.port}"
                    res["throughput"] += [m.__dict__ for m in
                                          bench.grpc_phase(name, server, target, token)]
                    pg = (pg_admin, pg_name) if db_name == "postgres" else None
                    res["burst"][name] = bench.grpc_burst(name, server, target, token, pg=pg)
                    warm = rss_of(server, children_only=False)
                    bench.top_up(name, lambda target=target, token=token: bench.grpc_load(
                        target, token, level=16, duration=3, warmup=0)["total_requests"])
                    res["memory"][name] = {
                        "grpc_process_idle_mb": idle,
                        "grpc_process_warm_mb": warm,
                        "grpc_process_after_mb": rss_of(server, children_only=False),
                        "requests": bench.served[name],
                    }
                finally:
                    server.stop()
            if worker is not None:
                res["memory"]["worker_after_mb"] = rss_of(worker, children_only=False)
            if pg_admin is not None:
                res["db_rows"] = count_rows(pg_admin, pg_name)
    except Exception:
        log(f"the run failed; server logs are in {work / 'logs'}")
        raise
    res["elapsed_s"] = round(time.monotonic() - started, 1)
    res["targets"] = targets(res)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(report(res))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _async_for_worker(bench: Bench, server: Server, token: str, res: dict) -> None:
    """Non-blocking invocations, so that the worker has executions to complete."""
    url = f"http://127.0.0.1:{server.port}/api/v1/actions/invoke-async"
    sent = bench.wrk(url, connections=8, duration=2, body='{"action_name": "hello"}',
                     token=token)["requests"]
    res["memory"]["worker_async_invocations"] = sent


# --- report --------------------------------------------------------------------------------------


def _by(res: dict, target: str, level: int) -> dict | None:
    return next((m for m in res["throughput"] if m["target"] == target and m["level"] == level),
                None)


def targets(res: dict) -> list[dict[str, Any]]:
    """Each target of issue 8 with the measured figure and met / missed."""
    out = []

    def add(what: str, value: Any, met: bool | None) -> None:
        out.append({"target": what, "value": value,
                    "met": met, "verdict": "n/a" if met is None else ("met" if met else "MISSED")})

    for level in res["levels"]:
        for variant in ("sqlite", "postgres"):
            for ours, bare, rule in (("C", "B", "C/B"), ("E", "D", "E/D")):
                m, ref = _by(res, f"{ours}-{variant}", level), _by(res, bare, level)
                if m and ref and ref["rps"]:
                    ratio = m["rps"] / ref["rps"]
                    add(f"{rule} >= {TARGET_RATIO} ({variant}, c={level})", round(ratio, 2),
                        ratio >= TARGET_RATIO)
    burst = res["burst"]
    for variant in ("sqlite", "postgres"):
        c = burst.get(f"C-{variant}")
        if c and "B" in burst:
            factor = c["wall_s"] / burst["B"]["wall_s"]
            add(f"REST burst wall <= {TARGET_BURST_FACTOR} x bare ({variant})",
                round(factor, 2), factor <= TARGET_BURST_FACTOR)
            add(f"REST burst errors == 0 ({variant})", sum(c["errors"].values()),
                not c["errors"])
        e = burst.get(f"E-{variant}")
        if e and "D" in burst:
            factor = e["wall_s"] / burst["D"]["wall_s"]
            add(f"gRPC burst wall <= {TARGET_BURST_FACTOR} x bare ({variant})",
                round(factor, 2), factor <= TARGET_BURST_FACTOR)
            add(f"gRPC burst errors == 0 ({variant})", sum(e["errors"].values()),
                not e["errors"])
    for name in ("C-postgres", "E-postgres"):
        b = burst.get(name)
        if b and "peak_db_connections_per_process" in b:
            peak = b["peak_db_connections_per_process"]
            add(f"{name} burst DB connections per process <= DB_POOL_SIZE (10)", peak,
                peak <= 10)
    mem = res["memory"]
    for name, idle_key, after_key in (
        ("C-sqlite", "rest_worker_idle_mb", "rest_worker_after_mb"),
        ("C-postgres", "rest_worker_idle_mb", "rest_worker_after_mb"),
        ("E-sqlite", "grpc_process_idle_mb", "grpc_process_after_mb"),
        ("E-postgres", "grpc_process_idle_mb", "grpc_process_after_mb"),
    ):
        if name in mem:
            idle, after = mem[name][idle_key], mem[name][after_key]
            add(f"{name} idle RSS <= {TARGET_IDLE_RSS_MB:g} MB", idle, idle <= TARGET_IDLE_RSS_MB)
            growth = (after - idle) / idle if idle else 0
            add(f"{name} RSS growth, start-up to {mem[name]['requests']} requests < 10 %",
                f"{growth * 100:+.1f} %", growth < TARGET_RSS_GROWTH)
            # Pools, caches, threads and the burst's peak fill the heap first; what grows after
            # that, over the remaining requests, is what a leak would look like.
            warm = mem[name][idle_key.replace("idle", "warm")]
            growth = (after - warm) / warm if warm else 0
            add(f"{name} RSS growth, warm to {mem[name]['requests']} requests < 10 % "
                "(leak check)", f"{growth * 100:+.1f} %", growth < TARGET_RSS_GROWTH)
    if "worker_idle_mb" in mem:
        idle = mem["worker_idle_mb"]
        add(f"worker idle RSS <= {TARGET_IDLE_RSS_MB:g} MB", idle, idle <= TARGET_IDLE_RSS_MB)
        if "worker_after_mb" in mem:
            growth = (mem["worker_after_mb"] - idle) / idle if idle else 0
            add("worker RSS growth over the run < 10 %", f"{growth * 100:+.1f} %",
                growth < TARGET_RSS_GROWTH)
    return out


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def report(res: dict) -> str:
    lines = [f"owaction benchmark ({res['cpus']} CPUs, load at start "
             f"{res['load_average_at_start'][0]:.2f}, backend {res['backend']}, "
             f"{res['duration_s']:g} s per measure, {res['elapsed_s']:.0f} s in all)", ""]
    lines.append(f"{'target':<12} {'conc':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
                 f"{'CPU ms/req':>10} {'ratio':>7}  errors")
    for m in res["throughput"]:
        ref = {"C": "B", "E": "D"}.get(m["target"][0])
        base = _by(res, ref, m["level"]) if ref else None
        ratio = m["rps"] / base["rps"] if base and base["rps"] else None
        lines.append(f"{m['target']:<12} {m['level']:>5} {m['rps']:>8.0f} {_fmt(m['p50_ms']):>8} "
                     f"{_fmt(m['p99_ms']):>8} {_fmt(m['cpu_ms_per_request'], '.2f'):>10} "
                     f"{_fmt(ratio, '.2f'):>7}  {m['errors'] or ''}")
    lines += ["", f"{'burst':<12} {'calls':>6} {'wall s':>7} {'errors':>7} {'peak RSS MB':>12} "
                  f"{'peak DB conns (per process)':>28}"]
    for name, b in res["burst"].items():
        db = (f"{b['peak_db_connections_total']} ({b['peak_db_connections_per_process']})"
              if "peak_db_connections_total" in b else "-")
        lines.append(f"{name:<12} {b['requests']:>6} {b['wall_s']:>7.2f} "
                     f"{sum(b['errors'].values()):>7} {b['peak_rss_mb_total']:>12.1f} {db:>28}")
    lines += ["", "memory (RSS MB)"]
    for name, m in res["memory"].items():
        lines.append(f"  {name}: {m}")
    lines += ["", "targets (issue 8)"]
    for t in res["targets"]:
        lines.append(f"  [{t['verdict']:>6}] {t['target']}: {t['value']}")
    lines.append(f"\nfull results: {RESULTS.relative_to(ROOT)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="owaction benchmarks (issue 8)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measure")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")],
                        default=[16, 64], help="concurrency levels, comma-separated")
    parser.add_argument("--burst", type=int, default=1000, help="REST calls in the burst")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--grpc-workers", type=int, default=64)
    parser.add_argument("--no-nginx", action="store_true", help="use the gevent backend only")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
