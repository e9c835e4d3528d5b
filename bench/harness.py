"""Processes for the benchmarks: start, wait, stop, and measure (CPU time, RSS, database
connections) from outside, so the measured servers run exactly as deployed."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode} "
                               f"before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {port} within {timeout} s")


class Server:
    """A process (and its children) started for a phase; output goes to a log file."""

    def __init__(self, name: str, args: list[str], *, env: dict[str, str] | None = None,
                 log_dir: Path, port: int | None = None):
        self.name = name
        self.port = port
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.popen = subprocess.Popen(args, env=full_env, stdout=self._log,
                                      stderr=subprocess.STDOUT, cwd=ROOT,
                                      start_new_session=True)
        if port is not None:
            try:
                wait_for_port(port, self.popen)
            except (RuntimeError, TimeoutError) as exc:
                self.stop()
                raise RuntimeError(f"{name} did not start: {exc}\n{self.tail()}") from None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 20) -> str:
        if not self._log.closed:
            self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def children(self) -> list[psutil.Process]:
        return self.processes()[1:]

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the whole process tree so far."""
        total = 0.0
        for proc in self.processes():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss_mb(self) -> dict[int, float]:
        out = {}
        for proc in self.processes():
            try:
                out[proc.pid] = proc.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                pass
        return out

    def stop(self, timeout: float = 15) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()


class Sampler:
    """Samples, every ``interval`` s in a thread, the peak RSS of a server's processes and the
    peak number of PostgreSQL connections each of them holds (matched by client port)."""

    def __init__(self, server: Server, *, pg_admin=None, database: str | None = None,
                 interval: float = 0.1):
        self.server = server
        self.pg_admin = pg_admin
        self.database = database
        self.interval = interval
        self.peak_rss_mb: dict[int, float] = {}
        self.peak_total_rss_mb = 0.0
        self.peak_db_per_process: dict[int, int] = {}
        self.peak_db_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _db_ports(self) -> list[int]:
        with self.pg_admin.cursor() as cur:
            cur.execute("SELECT client_port FROM pg_stat_activity WHERE datname = %s",
                        (self.database,))
            return [row[0] for row in cur.fetchall() if row[0] is not None]

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.server.rss_mb()
            for pid, mb in rss.items():
                self.peak_rss_mb[pid] = max(self.peak_rss_mb.get(pid, 0.0), mb)
            self.peak_total_rss_mb = max(self.peak_total_rss_mb, sum(rss.values()))
            if self.pg_admin is not None:
                ports = set(self._db_ports())
                self.peak_db_total = max(self.peak_db_total, len(ports))
                for proc in self.server.processes():
                    try:
                        # Linux reuses an ephemeral port towards different peers, so the
                        # peer must be PostgreSQL too, or OpenWhisk connections get counted.
                        mine = sum(1 for c in proc.net_connections(kind="tcp")
                                   if c.laddr and c.laddr.port in ports and c.raddr
                                   and c.raddr.port == self.pg_admin.info.port)
                    except psutil.NoSuchProcess:
                        continue
                    self.peak_db_per_process[proc.pid] = max(
                        self.peak_db_per_process.get(proc.pid, 0), mine)
            self._stop.wait(self.interval)


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    default_type application/json;
    location = /api/v1 {{
      return 200 '{{"description":"OpenWhisk (bench nginx)","api_version":"1.0.0"}}';
    }}
    # Held responses (the one-second burst) come from the gevent backend, which can wait.
    location ~ ^/api/v1/namespaces/[^/]+/actions/hold- {{
      proxy_pass http://127.0.0.1:{hold_port};
      proxy_read_timeout 120s;
    }}
    location ~ ^/api/v1/namespaces/[^/]+/actions/ {{
      add_header x-openwhisk-activation-id $request_id always;
      if ($arg_blocking != "true") {{
        return 202 '{{"activationId":"$request_id"}}';
      }}
      return 200 '{body}';
    }}
    location ~ "^/api/v1/namespaces/[^/]+/activations/([0-9a-f]{{32}})$" {{
      return 200 '{activation}';
    }}
  }}
}}
"""


def _activation_template(id_variable: str) -> str:
    # The gevent backend's record with nginx's variable in place of the id.
    import json

    record = {
        "activationId": "ACTIVATION_ID",
        "annotations": [
            {"key": "path", "value": "guest/hello"}, {"key": "waitTime", "value": 5},
            {"key": "kind", "value": "python:3"}, {"key": "timeout", "value": False},
            {"key": "limits", "value": {"concurrency": 1, "logs": 10, "memory": 256,
                                        "timeout": 60000}},
        ],
        "duration": 3, "end": 1767225600003, "logs": [], "name": "hello",
        "namespace": "guest", "publish": False,
        "response": {"result": {"greeting": "Hello, stranger!", "ok": True}, "size": 45,
                     "status": "success", "success": True},
        "start": 1767225600000, "subject": "guest", "version": "0.0.1",
    }
    return json.dumps(record, separators=(",", ":")).replace("ACTIVATION_ID", id_variable)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)


def start_nginx(work_dir: Path, log_dir: Path, *, hold_port: int) -> Server:
    """nginx answering like OpenWhisk with a fixed record: the fastest backend there is."""
    port = free_port()
    conf_dir = work_dir / "nginx"
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = conf_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=conf_dir, port=port, hold_port=hold_port,
                                      body=_activation_template("$request_id"),
                                      activation=_activation_template("$1")))
    return Server("backend-nginx", [nginx_binary(), "-e", "stderr", "-c", str(conf),
                                     "-p", str(conf_dir)],
                  log_dir=log_dir, port=port)


def start_gevent_backend(log_dir: Path, workers: int = 1) -> Server:
    port = free_port()
    return Server("backend-gevent", [PYTHON, "-m", "bench.backend", "--port", str(port),
                                     "--workers", str(workers)], log_dir=log_dir, port=port)
