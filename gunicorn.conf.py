# Patch first: ssl, requests, urllib3 and pydal must import the cooperative socket, ssl and
# threading, or one blocking call would stall every request of a worker.
from gevent import monkey

monkey.patch_all()

from owaction.config import settings_or_exit  # noqa: E402
from owaction.logs import setup_logging  # noqa: E402

# A bad configuration stops the master with every problem listed, before any worker forks.
_settings = settings_or_exit()
setup_logging(_settings, process="rest")

wsgi_app = "wsgi:app"
bind = f"{_settings.bind_host}:{_settings.rest_port}"
worker_class = "gevent"
workers = _settings.web_workers
worker_connections = _settings.web_worker_connections
graceful_timeout = _settings.web_graceful_timeout
# A gevent worker heartbeats from its own greenlet, so this only catches a worker whose loop is
# stuck; it must still outlast the longest blocking call, in case a call blocks the loop.
timeout = int(_settings.request_timeout) + 30
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
# gunicorn's control socket lives at one per-user path, so two servers on a machine (tests, or
# REST beside a CLI-started one) would take it from each other; nothing here uses gunicornc.
control_socket_disable = True
