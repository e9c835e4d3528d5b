"""gunicorn's configuration of the REST door (``-c python:owaction.gunicorn_conf``).

It lives beside ``owaction.rest``, not inside: importing that package would import Flask, and
with it ssl, before the gevent patch below.
"""

# Patch first: ssl, requests, urllib3 and pydal must import the cooperative socket, ssl and
# threading, or one blocking call would stall every request of a worker.
from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402

from owaction.config import settings_or_exit  # noqa: E402
from owaction.logs import setup_logging  # noqa: E402

# A bad configuration stops the master with every problem listed, before any worker forks.
_settings = settings_or_exit()
setup_logging(_settings, process="rest")

# Prometheus multiprocess mode: every worker writes its metrics under this directory and
# /metrics adds them up. It must be set before any worker imports prometheus_client, and start
# empty, or a previous run's counters would be added in.
_metrics_dir = os.path.join(_settings.data_dir, f"prometheus-rest-{_settings.rest_port}")
shutil.rmtree(_metrics_dir, ignore_errors=True)
os.makedirs(_metrics_dir, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

wsgi_app = "owaction.rest.wsgi:app"
bind = f"{_settings.bind_host}:{_settings.rest_port}"
# gevent's worker, answering the requests gunicorn itself refuses in JSON, like every error.
worker_class = "owaction.rest.gunicorn_worker.JSONErrorsGeventWorker"
workers = _settings.web_workers
worker_connections = _settings.web_worker_connections
keepalive = _settings.web_keepalive
graceful_timeout = _settings.web_graceful_timeout
# A gevent worker heartbeats from its own greenlet, so this only catches a worker whose loop is
# stuck; it must still outlast the longest blocking call, in case a call blocks the loop.
timeout = int(_settings.request_timeout) + 30
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
logger_class = "owaction.rest.gunicorn_logging.AAALogger"
# gunicorn's control socket lives at one per-user path, so two servers on a machine (tests, or
# REST beside a CLI-started one) would take it from each other; nothing here uses gunicornc.
control_socket_disable = True


def _raise_open_files_limit() -> None:
    """Every connection is a file descriptor: a worker holds up to worker_connections callers,
    its OpenWhisk pool and its database sessions. Soft limits (1024 under systemd) are raised
    up to the hard limit here, once, so a busy worker never fails accept() with EMFILE."""
    needed = (worker_connections + _settings.openwhisk_pool_size + _settings.db_pool_size
              + 256)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    if ceiling < needed:
        logging.getLogger("owaction.rest").warning(
            "open files limit %d is below the %d a worker may need (WEB_WORKER_CONNECTIONS + "
            "OPENWHISK_POOL_SIZE + DB_POOL_SIZE + 256); raise LimitNOFILE / ulimit -n", hard,
            needed)


_raise_open_files_limit()


def post_fork(server, worker):
    # Each worker exports its own spans (a span processor's thread does not survive fork).
    from owaction import tracing

    tracing.configure(f"{_settings.module_name}-rest")


def child_exit(server, worker):
    # A dead worker's live gauges must stop counting in /metrics.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    # Done before the first request rather than by it: the database, its writer's thread, the
    # resolver (ServiceCore.warm_up), the token check's code (TokenVerifier.warm_up).
    state = getattr(worker.wsgi, "extensions", {}).get("owaction")
    if state is not None:
        state.service.warm_up()
        state.verifier.warm_up()


def when_ready(server):
    # A SIGHUP with a bad commands or webhooks file must not halt the server.
    from owaction.rest.gunicorn_reload import guard_reload

    guard_reload(server, _settings)
