"""The action runtime under gevent, as the emulator runs it: many greenlets, one process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.procs import ROOT

# Runs in its own interpreter: monkey-patching the test process would change every other test.
SCRIPT = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()

    import json, sys, time
    import gevent
    from openwhisk_emulator.runtime import ActionCode, Runtime

    count = int(sys.argv[1])
    runtime = Runtime(max_warm_per_action=4)
    action = ActionCode(key="guest/sleep@0.0.1", kind="python:3", code=(
        "import time\\n"
        "def main(args):\\n"
        "    time.sleep(1)\\n"
        "    return {'n': args['n']}\\n"))
    began = time.monotonic()
    jobs = [gevent.spawn(runtime.run, action, {"n": n}, activation_env={}) for n in range(count)]
    gevent.joinall(jobs, raise_error=True)
    elapsed = time.monotonic() - began
    outcomes = [job.value for job in jobs]
    # A heartbeat greenlet shows the hub was never blocked while activations ran.
    ticks = []
    def heartbeat():
        while True:
            ticks.append(time.monotonic())
            gevent.sleep(0.05)
    beat = gevent.spawn(heartbeat)
    warm = [gevent.spawn(runtime.run, action, {"n": n}, activation_env={}) for n in range(4)]
    gevent.joinall(warm, raise_error=True)
    beat.kill()
    runtime.close()
    print(json.dumps({
        "elapsed": elapsed,
        "results": [[o.status, o.result] for o in outcomes],
        "cold": sum(o.init_ms is not None for o in outcomes),
        "warm_cold": [o.init_ms is not None for o in (j.value for j in warm)],
        "max_gap": max(b - a for a, b in zip(ticks, ticks[1:])),
    }))
""")


def _run(count: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(count)], cwd=ROOT, capture_output=True, text=True,
        timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_two_hundred_concurrent_runs_under_gevent_all_succeed():
    report = _run(200)
    assert report["results"] == [["success", {"n": n}] for n in range(200)]
    assert report["cold"] == 200
    # Sequential would take 200 s; cooperative runs overlap. Generous for a shared 2-core box.
    assert report["elapsed"] < 60
    assert report["warm_cold"] == [False] * 4, "the four warm processes are reused"
    assert report["max_gap"] < 0.9, "a 1 s activation blocked the gevent hub"
