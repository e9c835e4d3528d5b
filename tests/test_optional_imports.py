"""The OpenWhisk client loads pybreaker without redis (and redis's OpenTelemetry SDK and psutil),
and redis stays importable for whatever uses it."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import owaction.openwhisk.client
loaded = {name: name in sys.modules for name in ("pybreaker", "redis", "psutil")}
import redis
loaded["redis_after"] = bool(redis.Redis)
print(json.dumps(loaded))
"""


def test_the_client_loads_pybreaker_without_redis_and_redis_still_imports():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert json.loads(out) == {"pybreaker": True, "redis": False, "psutil": False,
                               "redis_after": True}
