"""gunicorn's own log lines in the AAA format, through the root logger that setup_logging made."""

from __future__ import annotations

import logging

from gunicorn.glogging import Logger

from owaction.logs import aaa


class AAALogger(Logger):
    """Routes gunicorn's error log to the root logger and writes each access as one AAA line."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True

    def access(self, resp, req, environ, request_time):
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.syslog):
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        headers = dict(resp.headers) if resp.headers else {}
        request_id = next((v for k, v in headers.items() if k.lower() == "x-request-id"), None)
        aaa("SYSTEM", "http_request", str(status),
            level=logging.INFO, method=environ.get("REQUEST_METHOD"),
            path=environ.get("PATH_INFO"), status=status,
            time=f"{int(request_time.total_seconds() * 1000)}ms", request_id=request_id,
            client=environ.get("REMOTE_ADDR"))
