"""B: the bare REST forwarder, on owaction's stack (Flask under gunicorn-gevent, one shared
``requests.Session`` with the same pool), without auth, database or logging.

``gunicorn -k gevent -w 2 bench.bare_rest:app`` with ``BENCH_BACKEND_URL`` and
``BENCH_POOL_SIZE`` in the environment. It is the yardstick owaction's REST door is compared to.
"""

from __future__ import annotations

import os

import requests
from flask import Flask, jsonify, request
from requests.adapters import HTTPAdapter

GUEST = ("23bc46b1-71f6-4ed5-8c54-816aa4f8c502",
         "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP")


def pooled_session(pool_size: int) -> requests.Session:
    """The same pool shape as owaction's client: ``pool_size`` connections, never blocking."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size,
                          pool_block=False, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def create_app(backend_url: str, pool_size: int = 200) -> Flask:
    app = Flask("bench.bare_rest")
    session = pooled_session(pool_size)

    @app.post("/api/v1/actions/invoke")
    def invoke():
        body = request.get_json()
        url = f"{backend_url}/api/v1/namespaces/guest/actions/{body['action_name']}"
        response = session.post(
            url, params={"blocking": "true", "result": "false", "timeout": "60000"},
            json=body.get("payload") or {}, auth=GUEST, timeout=(5, 70),
        )
        record = response.json()
        return jsonify(success=record["response"]["success"],
                       activation_id=record["activationId"],
                       result=record["response"]["result"],
                       duration=record.get("duration")), response.status_code

    @app.get("/health")
    def health():
        return {"healthy": True}

    return app


def _from_environment() -> Flask:
    return create_app(os.environ["BENCH_BACKEND_URL"],
                      int(os.environ.get("BENCH_POOL_SIZE", "200")))


if os.environ.get("BENCH_BACKEND_URL"):
    # gunicorn loads ``bench.bare_rest:app``; the runner sets the variable for that process only.
    app = _from_environment()
